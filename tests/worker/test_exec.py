"""``leaderpool-worker --exec -- COMMAND``: a program that runs only while its worker leads, stops
before the next leader's starts, and dies with its worker."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from leaderpool.console.args import UsageError
from leaderpool.testing.redis_server import RedisServer
from leaderpool.worker.settings import parse_settings
from tests.support.schedule_tasks import RUNS_FILE
from tests.support.worker_procs import PATIENCE, ROOT, eventually, workers_for

COMMAND = ("--exec", "--", sys.executable, str(ROOT / "tests" / "support" / "exec_child.py"))


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def gone(pid: int) -> bool:
    """The process has ended: no such process, or a zombie nobody reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


class TestFlags:
    def test_the_command_after_the_dashes_is_kept_whole(self) -> None:
        """Everything after ``--`` is the command, flags included."""
        s = parse_settings(["--pool", "p", "--exec", "--", "sh", "-c", "exec sleep 1", "--pool"], {})
        assert ("sh", "-c", "exec sleep 1", "--pool") == s.exec_argv

    def test_with_a_schedule_the_command_runs_once_per_slot(self) -> None:
        """--exec with --every: the schedule is named after the program unless --schedule-name says."""
        s = parse_settings(["--pool", "p", "--every", "60", "--exec", "--", "/bin/sh", "-c", "true"], {})
        assert s.schedule is not None and (60, "exec:sh:") == (s.schedule.every_s, s.schedule.name[:8])
        assert ("/bin/sh", "-c", "true") == s.exec_argv
        alone = parse_settings(["--pool", "p", "--every", "60", "--exec", "--", "/bin/true"], {})
        assert alone.schedule is not None and "exec:true" == alone.schedule.name

    def test_two_shell_commands_in_one_pool_get_schedules_of_their_own(self) -> None:
        """exec:PROGRAM plus a hash of the whole command line: sh -c 'a' and sh -c 'b' differ (issue 24)."""
        names = set()
        for command in ("echo a", "echo b", "echo a"):
            s = parse_settings(["--pool", "p", "--every", "60", "--exec", "--", "sh", "-c", command], {})
            assert s.schedule is not None
            names.add(s.schedule.name)
        assert 2 == len(names) and all(n.startswith("exec:sh:") and len(n) == 16 for n in names)

    def test_the_command_may_come_from_leaderpool_exec(self) -> None:
        """LEADERPOOL_EXEC holds the command as a shell would write it; a bad one names the variable."""
        s = parse_settings([], {"LEADERPOOL_POOL": "p", "LEADERPOOL_EXEC": "sh -c 'exec sleep 1'"})
        assert ("sh", "-c", "exec sleep 1") == s.exec_argv
        with pytest.raises(UsageError) as raised:
            parse_settings([], {"LEADERPOOL_POOL": "p", "LEADERPOOL_EXEC": "sh -c 'unclosed"})
        assert "argument LEADERPOOL_EXEC: cannot be split into a command" in str(raised.value)

    @pytest.mark.parametrize(
        ("args", "line"),
        [
            (["--exec"], "argument --exec: needs a command after '--'"),
            (["--exec", "--"], "argument --exec: needs a command after '--'"),
            (["--exec", "--", "no-such-command-here"], "command 'no-such-command-here' not found on PATH"),
            (["--", "sh"], "argument --: a command after '--' needs --exec"),
            (
                ["--task", "tests.support.schedule_tasks:record_slot", "--exec", "--", "sh"],
                "give --exec or --task, not both",
            ),
        ],
    )
    def test_a_bad_exec_names_what_is_wrong(self, args: list[str], line: str) -> None:
        with pytest.raises(UsageError) as raised:
            parse_settings(["--pool", "p", *args], {})
        assert line in str(raised.value)


class TestLeaderOnlyCommand:
    def test_it_runs_on_the_leader_with_its_term_and_stops_before_the_next_starts(
        self, redis_server: RedisServer, tmp_path: Path
    ) -> None:
        """Only the leader runs the command, with LEADERPOOL_POOL/MEMBER/TERM; SIGTERM to its worker
        stops it (SIGTERM) before the next leader's command starts; the worker exits 0."""
        runs = tmp_path / "runs.jsonl"
        with workers_for(redis_server.url, pool="ex") as workers:
            a = workers.start("a", *COMMAND, env={RUNS_FILE: str(runs)})
            term_a = a.elected()["term"]
            b = workers.start("b", *COMMAND, env={RUNS_FILE: str(runs)})
            b.sees("a")
            eventually(lambda: lines(runs), PATIENCE)
            a.signal(signal.SIGTERM)
            term_b = b.elected()["term"]
            assert 0 == a.wait()
            eventually(lambda: len(lines(runs)) >= 3, PATIENCE)
            assert [] == a.other_stdout  # with --json-events the command's stdout goes to stderr
            assert "command output from pid" in a.stderr
        started_a, stopped_a, started_b = lines(runs)[:3]
        assert ("started", "ex", "a", str(term_a)) == tuple(started_a[k] for k in ("event", "pool", "member", "term"))
        assert ("stopped", started_a["pid"]) == (stopped_a["event"], stopped_a["pid"])
        assert ("started", "b", str(term_b)) == (started_b["event"], started_b["member"], started_b["term"])
        assert stopped_a["t"] <= started_b["t"]

    def test_it_dies_within_a_second_when_its_worker_is_sigkilled(
        self, redis_server: RedisServer, tmp_path: Path
    ) -> None:
        """No orphan keeps acting as leader: the parent-death signal kills the command at once."""
        runs = tmp_path / "runs.jsonl"
        with workers_for(redis_server.url, pool="orphan") as workers:
            a = workers.start("a", *COMMAND, env={RUNS_FILE: str(runs)})
            a.elected()
            (started,) = eventually(lambda: lines(runs), PATIENCE)
            assert not gone(started["pid"])
            a.signal(signal.SIGKILL)
            killed = time.monotonic()
            eventually(lambda: gone(started["pid"]), PATIENCE, interval=0.01)
            assert time.monotonic() - killed < 1.0
        assert ["started"] == [x["event"] for x in lines(runs)]  # killed, not asked to stop

    def test_its_exit_while_leading_is_a_task_crash(self, redis_server: RedisServer, tmp_path: Path) -> None:
        """A command that exits while its member leads makes the member step down (task_failed)."""
        runs = tmp_path / "runs.jsonl"
        with workers_for(redis_server.url, pool="crash") as workers:
            a = workers.start("a", *COMMAND, "exit", "3", env={RUNS_FILE: str(runs)})
            revoked = a.wait_for(lambda e: e["event"] == "revoked")
            assert "task_failed" == revoked["reason"]
            assert "exited with code 3 while leading" in a.stderr
        assert os.path.exists(runs)

    def test_a_command_that_ignores_sigterm_is_killed_after_the_grace(
        self, redis_server: RedisServer, tmp_path: Path
    ) -> None:
        """SIGTERM ignored: SIGKILL after --task-grace, then the lead moves and the next command starts."""
        runs = tmp_path / "runs.jsonl"
        stubborn = (*COMMAND, "stubborn")
        with workers_for(redis_server.url, pool="stubborn") as workers:
            a = workers.start("a", "--task-grace", "0.3", *stubborn, env={RUNS_FILE: str(runs)})
            a.elected()
            b = workers.start("b", "--task-grace", "0.3", *stubborn, env={RUNS_FILE: str(runs)})
            b.sees("a")
            (started_a,) = eventually(lambda: lines(runs), PATIENCE)
            a.signal(signal.SIGTERM)
            b.elected()
            assert 0 == a.wait()
            assert "command_killed" in a.stderr
            assert gone(started_a["pid"])
            eventually(lambda: len(lines(runs)) >= 2, PATIENCE)
        assert ["started", "started"] == [x["event"] for x in lines(runs)]
        assert "b" == lines(runs)[1]["member"]


class TestScheduledCommand:
    def test_the_command_runs_to_completion_once_per_slot_with_its_slot(
        self, redis_server: RedisServer, tmp_path: Path
    ) -> None:
        """--exec with --every 0.2: one run of the program per slot, LEADERPOOL_SLOT set, in order."""
        runs = tmp_path / "runs.jsonl"
        with workers_for(redis_server.url, pool="cron") as workers:
            a = workers.start("a", "--every", "0.2", *COMMAND, "exit", "0", env={RUNS_FILE: str(runs)})
            a.elected()
            eventually(lambda: len(lines(runs)) >= 3, PATIENCE)
            a.signal(signal.SIGTERM)
            assert 0 == a.wait()
            assert "revoked" == a.events[-1]["event"] and "shutdown" == a.events[-1]["reason"]
        slots = [float(x["slot"]) for x in lines(runs)]
        assert [round(s - slots[0], 3) for s in slots[:3]] == [0.0, 0.2, 0.4]
        assert {"exiting"} == {x["event"] for x in lines(runs)}

    def test_a_failing_scheduled_run_is_a_crash(self, redis_server: RedisServer, tmp_path: Path) -> None:
        """A scheduled run that exits non-zero while leading makes the member step down (task_failed)."""
        runs = tmp_path / "runs.jsonl"
        with workers_for(redis_server.url, pool="cronfail") as workers:
            a = workers.start("a", "--every", "0.2", *COMMAND, "exit", "4", env={RUNS_FILE: str(runs)})
            assert "task_failed" == a.wait_for(lambda e: e["event"] == "revoked")["reason"]
            assert "exited with code 4" in a.stderr
