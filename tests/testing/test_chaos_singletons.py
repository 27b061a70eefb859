"""The singletons' chaos run: its checker on synthetic timelines (fed bad histories, it must
report each broken promise), the act logs read back, and a short real run (3 worker processes,
16 singletons, a real redis-server, crashes, freezes, partitions and rebalances in a seeded
order) whose findings must all be zero.

The seed is printed; LEADERPOOL_CHAOS_SEED replays one. The long form is
``python -m leaderpool.testing.chaos --singletons 64 --duration 600``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from leaderpool.testing.chaos import singleton_report
from leaderpool.testing.chaos.__main__ import main as chaos_main
from leaderpool.testing.chaos.singleton_checker import check, interval
from leaderpool.testing.chaos.singleton_runner import SingletonRunConfig, run
from leaderpool.testing.chaos.singleton_task import history_key
from leaderpool.testing.chaos.singleton_timeline import (
    Ownership,
    SingletonSettings,
    SingletonTimeline,
    SingletonWrite,
    load,
    read_logs,
)
from leaderpool.testing.chaos.timeline import Fault
from leaderpool.testing.history.ops import Op
from tests.conftest import REDIS_BINARIES

SETTINGS = SingletonSettings(ttl_s=1.0, seed=7, members=3, singletons=2)


def tl(
    owned: list[Ownership],
    writes: list[SingletonWrite] | None = None,
    ops: list[Op] | None = None,
    kills: dict[int, float] | None = None,
    finals: dict[str, int | None] | None = None,
) -> SingletonTimeline:
    return SingletonTimeline(SETTINGS, 0.0, 100.0, owned, writes or [], ops or [], kills or {}, [], finals or {})


def own(
    name: str, term: int, pid: int, start: float, last: float, stop: float | None = None, lapsed: bool = False
) -> Ownership:
    return Ownership(name, term, f"m{pid}", pid, start, last, stop, lapsed, acts=10)


def write(
    name: str, term: int, sent: float, replied: float, outcome: str = "ok", zombie: bool = False
) -> SingletonWrite:
    return SingletonWrite(name, term, f"m{term}", term, sent, replied, outcome, zombie)


def incr(name: str, process: str, term: int, at: float, read: int, outcome: str = "ok") -> list[Op]:
    key = history_key(name)
    pair = [read, read + 1]
    return [
        Op("invoke", "incr", None, process, at, at, key, process, term),
        Op(outcome, "incr", pair, process, at + 0.01, at + 0.01, key, process, term),  # type: ignore[arg-type]
    ]


class TestTheCheckerReportsBrokenPromises:
    def test_owners_one_after_another_are_safe(self) -> None:
        """A hand-off (stopped at 2, the next from 2.1), a lapse (last act 4, stop noted late at 9),
        a kill (at 7): one owner at a time, every singleton its own."""
        found = check(tl([
            own("a", 1, 11, 0.0, 1.9, stop=2.0), own("a", 2, 12, 2.1, 4.0, stop=9.0, lapsed=True),
            own("a", 3, 13, 5.0, 6.9), own("a", 4, 11, 7.1, 8.0, stop=8.5), own("b", 1, 12, 0.5, 3.0, stop=3.0),
        ], kills={13: 7.0}))  # fmt: skip
        assert found.safe, found.problems()
        assert {"ended_stopped": 3, "ended_lapsed": 1, "ended_killed": 1} == {
            k: v for k, v in found.counts.items() if k.startswith("ended_")
        }

    def test_two_owners_overlapping_are_reported(self) -> None:
        """The first stopped at 2.5, the second started at 2.0: 500 ms with two owners."""
        found = check(tl([own("a", 1, 11, 0.0, 2.4, stop=2.5), own("a", 2, 12, 2.0, 3.0, stop=3.0)]))
        assert not found.safe
        assert 1 == len(found.overlaps) and 500 == round(found.overlaps[0].duration_s * 1000)
        assert "a: two owners for 500.0 ms" in found.problems()[0]

    def test_a_killed_owner_ends_at_its_kill_not_its_last_act(self) -> None:
        """Killed at 3 (last act 2.9), the next owner from 2.95: an overlap; killed at 2.92, none."""
        owned = [own("a", 1, 11, 0.0, 2.9), own("a", 2, 12, 2.95, 4.0, stop=4.0)]
        assert 1 == len(check(tl(owned, kills={11: 3.0})).overlaps)
        assert check(tl(owned, kills={11: 2.92})).safe
        assert "killed" == interval(owned[0], {11: 3.0}).how

    def test_a_stopped_owners_interval_ends_at_its_stop_a_lapsed_ones_at_its_last_act(self) -> None:
        """A stop noted at 5 after its last act at 2 overlaps a start at 3 unless it lapsed."""
        nxt = own("a", 2, 12, 3.0, 4.0, stop=4.0)
        assert not check(tl([own("a", 1, 11, 0.0, 2.0, stop=5.0), nxt])).safe
        assert check(tl([own("a", 1, 11, 0.0, 2.0, stop=5.0, lapsed=True), nxt])).safe

    def test_a_stale_term_write_accepted_is_reported(self) -> None:
        """Term 1's write sent at 3, after term 2's was accepted at 2.1, and accepted: reported;
        refused, or in flight together with it, it is not."""
        newer = write("a", 2, 2.0, 2.1)
        found = check(tl([], [write("a", 1, 1.0, 1.1), newer, write("a", 1, 3.0, 3.1, zombie=True)]))
        assert 1 == len(found.stale_accepted) and "a: stale write accepted: term 1" in found.problems()[0]
        assert check(tl([], [newer, write("a", 1, 3.0, 3.1, "stale", zombie=True)])).safe
        assert check(tl([], [newer, write("a", 1, 2.05, 2.2)])).safe

    def test_another_singletons_newer_term_does_not_make_a_write_stale(self) -> None:
        """Terms count per singleton: b's term 5 says nothing about a's term 1."""
        assert check(tl([], [write("b", 5, 1.0, 1.1), write("a", 1, 2.0, 2.1)])).safe

    def test_a_term_owned_by_two_processes_and_a_term_going_back_are_reported(self) -> None:
        owned = [own("a", 3, 11, 0.0, 1.0, stop=1.0), own("a", 3, 12, 2.0, 3.0, stop=3.0)]
        found = check(tl([*owned, own("a", 2, 13, 4.0, 5.0, stop=5.0)]))
        assert {"a": {3: ["m11/11", "m12/12"]}} == found.reused_terms
        assert [(3, 2)] == [(a.term, b.term) for _, a, b in found.terms_went_back]

    def test_a_lost_update_of_a_singletons_counter_is_reported(self) -> None:
        """Two owners both read 4 and were acknowledged for writing 5; and the counter ends short."""
        ops = [*incr("a", "m1/11/a/1", 1, 1.0, 4), *incr("a", "m2/12/a/2", 2, 2.0, 4)]
        found = check(tl([own("a", 1, 11, 0.0, 1.5, stop=1.5)], ops=ops, finals={"a": 5}))
        assert ["twice", "read_behind"] == [x.kind for x in found.lost_updates["a"]]
        good = [*incr("a", "m1/11/a/1", 1, 1.0, 4), *incr("a", "m2/12/a/2", 2, 2.0, 5)]
        assert check(tl([own("a", 1, 11, 0.0, 1.5, stop=1.5)], ops=good, finals={"a": 6})).safe
        short = check(tl([own("a", 1, 11, 0.0, 1.5, stop=1.5)], ops=good, finals={"a": 5}))
        assert ["final_short"] == [x.kind for x in short.lost_updates["a"]]


def test_the_task_lines_read_back_and_a_cut_line_is_skipped(tmp_path: Path) -> None:
    """sstart/sact/sstop/sfence/szombie lines become ownerships and writes; a torn line is counted."""
    log = tmp_path / "m1.acts"
    log.write_text(
        "sstart x 3 m1 100 1.0\nsact x 3 m1 100 1.1\nsact x 3 m1 100 1.4\n"
        "sfence x 3 m1 100 1.2 1.25 ok\nsstop x 3 m1 100 9.0 1\nszombie x 3 m1 100 9.1 9.2 stale\n"
        "sstart y 1 m1 100 2.0\nsact y 1 m1 1"
    )
    owned, writes, ops, malformed = read_logs([log])
    assert [Ownership("x", 3, "m1", 100, 1.0, 1.4, 9.0, True, 2), Ownership("y", 1, "m1", 100, 2.0, 2.0)] == owned
    assert [("ok", False), ("stale", True)] == [(w.outcome, w.zombie) for w in writes]
    assert ([], 1) == (ops, malformed)


def test_a_rebalance_kind_without_singletons_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        chaos_main(["--kinds", "move"])
    assert 2 == exited.value.code
    err = capsys.readouterr().err
    assert 1 == len(err.splitlines()) and "only apply with --singletons" in err


@pytest.mark.timeout(120)
def test_a_short_singletons_chaos_run_keeps_every_promise(tmp_path: Path) -> None:
    """3 workers, 16 singletons, a 1 s lease, seven faults (crashes, a freeze, a partition,
    resets, a kind leave and join, a move by the CLI): never two owners of a singleton, no stale
    write accepted, no term reused or going back, no increment lost; every singleton acts again
    after each fault."""
    seed = int(os.environ.get("LEADERPOOL_CHAOS_SEED") or int(time.time() * 1000) % 1_000_000)
    print(f"chaos seed {seed} (LEADERPOOL_CHAOS_SEED={seed} replays it)")
    kinds = ("sigkill", "sigstop", "sigterm", "partition", "reset", "leave_join", "move")
    config = SingletonRunConfig(
        seed=seed, duration_s=60.0, max_faults=len(kinds), members=3, singletons=16, ttl_s=1.0,
        workdir=tmp_path, redis_binary=REDIS_BINARIES[0][0], kinds=kinds,
    )  # fmt: skip
    timeline, findings = run(config)
    text = singleton_report.summary(timeline, findings)
    print(text)
    assert findings.safe, f"seed {seed}:\n" + "\n".join(findings.problems())
    assert sorted(kinds) == sorted(f.kind for f in timeline.faults)
    assert [] == [f.kind for f in timeline.faults if "not_all_acting_within_s" in f.detail], text
    c = findings.counts
    assert 16 == c["singletons"] and c["fenced_ok"] > 0 and c["increments_acknowledged"] > 0, text
    assert c["ownerships"] > 16, text  # the faults and rebalances moved singletons
    moves = [m for f in timeline.faults for m in f.detail.get("moves", [])]
    assert moves and all(0 == m["exit"] for m in moves), moves
    assert all(v is not None for v in timeline.finals.values()), timeline.finals
    saved = tmp_path / "timeline.json"
    singleton_report.write_timeline(saved, timeline)
    assert check(load(saved)).counts == c


def test_a_fault_list_row_per_fault() -> None:
    fault = Fault("move", None, 1.0, 1.5, detail={"moves": [{"singleton": "a", "to": "m1", "exit": 0}]})
    timeline = tl([own("a", 1, 11, 0.0, 0.9, stop=1.0), own("a", 2, 12, 1.2, 3.0, stop=3.0)])
    timeline.faults = [fault]
    rows = singleton_report.fault_list(timeline).splitlines()
    assert 3 == len(rows) and "| move | all | 0.50 | 0.200 |" in rows[2]
