"""The overlap policies with real workers: ``--every 0.2`` and a task that runs 0.5 s, three
``python -m leaderpool.worker`` processes on a real redis-server. The leader is SIGKILLed mid-run,
then the next one is SIGSTOPped mid-run (and resumed past its lease); the runs of every lead obey
the policy, no slot runs twice, and every slot a policy passed over is in ``schedules history``."""

from __future__ import annotations

import itertools
import json
import signal
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from leaderpool.testing.redis_server import RedisServer
from tests.support.schedule_tasks import LONG_RUN_S, RUNS_FILE, read_runs, starts
from tests.support.worker_procs import PATIENCE, WorkerProc, cli, eventually, workers_for

TASK = "tests.support.schedule_tasks:record_long_slot"
PERIOD = 0.2
NAME = "overlapping"
SLACK_S = 0.05
"""Between a run's own clock reading and the runner's (the same machine's clock, read a few
steps apart): an ordering, not a speed."""

assert LONG_RUN_S > 2 * PERIOD  # each run outlasts two slots


def grid(slot: float) -> int:
    return round(slot / PERIOD)


def mid_run(path: Path, member: str) -> bool:
    """``member`` has begun a run it has not finished (nor had cancelled), after two before it."""
    runs = [r for r in read_runs(path) if r["member"] == member]
    begun = [r for r in runs if r["event"] == "start"]
    done = {r["slot"] for r in runs if r["event"] != "start"}
    return len(begun) >= 3 and begun[-1]["slot"] not in done


def skipped_in_history(url: str) -> set[int]:
    """The grid slots ``schedules history`` lists as skipped."""
    shown = cli("--redis", url, "schedules", "history", "p", NAME, "--json", "--count", "1000")
    assert 0 == shown.returncode, shown.stderr
    slots: set[int] = set()
    for entry in json.loads(shown.stdout)["slots"]:
        if entry["outcome"] == "skipped":
            last = entry["last_slot"] if entry["last_slot"] is not None else entry["slot"]
            slots.update(range(grid(entry["slot"]), grid(last) + 1))
    return slots


def leads(runs: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    """Each lead's starts (one term), in slot order."""
    begun = sorted((r for r in runs if r["event"] == "start"), key=lambda r: r["slot"])
    for _, group in itertools.groupby(begun, key=lambda r: r["term"]):
        yield list(group)


class TestOverlapAcrossFailover:
    @pytest.mark.parametrize("overlap", ["skip", "buffer_one", "buffer_all", "allow", "cancel_other"])
    def test_each_lead_obeys_the_policy_across_a_sigkill_and_a_sigstop(
        self, overlap: str, redis_server: RedisServer, tmp_path: Path
    ) -> None:
        """a leads and is SIGKILLed mid-run; the next leader is SIGSTOPped mid-run and the third
        leads; the frozen one, resumed past its lease, starts nothing. Across the three leads no
        slot starts twice; within each lead: skip and buffer_one run one slot at a time and every
        slot they pass over is logged as skipped (skip runs no slot that came due during the run;
        which slot buffer_one keeps is a matter of timing, pinned by the pure TestOverlap);
        buffer_all runs one at a time and passes over none; allow lets runs overlap and passes over
        none; cancel_other cancels each run when the next slot comes and passes over none."""
        runs_file = tmp_path / "runs.jsonl"
        env = {RUNS_FILE: str(runs_file)}
        args = ("--task", TASK, "--every", str(PERIOD), "--overlap", overlap, "--schedule-grace", "10",
                "--schedule-name", NAME)  # fmt: skip
        with workers_for(redis_server.url) as workers:
            procs = {"a": workers.start("a", *args, env=env)}
            procs["a"].elected()
            for name in ("b", "c"):
                procs[name] = workers.start(name, *args, env=env)
                procs[name].sees("a")
            eventually(lambda: mid_run(runs_file, "a"), PATIENCE)
            killed_at = procs["a"].signal(signal.SIGKILL)

            second = self._next_leader(runs_file, procs, after=killed_at, besides="a")
            eventually(lambda: mid_run(runs_file, second.name), PATIENCE)
            frozen_at = second.signal(signal.SIGSTOP)
            try:
                third = self._next_leader(runs_file, procs, after=frozen_at, besides=second.name)
                eventually(lambda: len(starts(runs_file, third.name)) >= 3, PATIENCE)
            finally:
                woken_at = second.signal(signal.SIGCONT)
            second.wait_for(lambda e: e["event"] == "revoked")
            seen = len(starts(runs_file, third.name))
            eventually(lambda: len(starts(runs_file, third.name)) >= seen + 2, PATIENCE)  # time to act, if it would
            for proc in (second, third):
                proc.signal(signal.SIGTERM)
                assert 0 == proc.wait()
            skipped = skipped_in_history(redis_server.url)

        runs = read_runs(runs_file)
        slots = [r["slot"] for r in runs if r["event"] == "start"]
        assert len(slots) == len(set(slots)), "a slot started twice"
        assert [] == [r for r in starts(runs_file, second.name) if r["t"] >= woken_at], "the frozen leader ran again"
        assert [] == [r for r in starts(runs_file, "a") if r["t"] > killed_at]
        assert 3 == len({r["term"] for r in runs if r["event"] == "start"})
        ended = {r["slot"]: r for r in runs if r["event"] in ("end", "cancelled")}
        passed_over: set[int] = set()
        overlapped = False
        for lead in leads(runs):
            for before, after in itertools.pairwise(lead):
                holes = set(range(grid(before["slot"]) + 1, grid(after["slot"])))
                passed_over |= holes
                finished = ended.get(before["slot"])
                if finished is None:  # allow: runs beside the one a was killed in died with it
                    assert "allow" == overlap and "a" == before["member"], f"the run of {before['slot']} never ended"
                    continue
                overlapped |= finished["t"] > after["t"]
                if overlap in ("skip", "buffer_one"):
                    assert finished["t"] <= after["t"] + SLACK_S, f"{overlap}: runs overlapped"
                    assert holes <= skipped, f"{overlap}: slots {sorted(holes - skipped)} passed over, not logged"
                if overlap == "skip":  # the runner read the time after the run's own end line
                    assert after["slot"] > finished["t"] - SLACK_S, "skip: a slot due during the run ran"
                if overlap in ("buffer_all", "allow", "cancel_other"):
                    assert set() == holes, f"{overlap}: slots {sorted(holes)} passed over"
                if overlap == "buffer_all":
                    assert finished["t"] <= after["t"] + SLACK_S, "buffer_all: runs overlapped"
                if overlap == "cancel_other":
                    assert "cancelled" == finished["event"] and finished["t"] <= after["t"] + SLACK_S
        if overlap in ("skip", "buffer_one"):
            assert passed_over, f"{overlap}: no slot was passed over, though each run outlasts two periods"
        if overlap == "allow":
            assert overlapped, "allow: no two runs overlapped, though each run outlasts two periods"
        assert skipped == set() or overlap in ("skip", "buffer_one"), f"{overlap} logged skipped slots"

    @staticmethod
    def _next_leader(runs_file: Path, procs: dict[str, WorkerProc], *, after: float, besides: str) -> WorkerProc:
        """The worker other than ``besides`` whose run starts first after ``after`` (the next leader)."""
        first = eventually(
            lambda: next((r for r in starts(runs_file) if r["t"] > after and r["member"] != besides), None), PATIENCE
        )
        return procs[first["member"]]
