"""The chaos run's history checks on synthetic timelines: the leader's recorded work judged as a
register, a counter and a mutex, with data losses cutting the history; a deliberately broken
history is caught; the files a run leaves (its act logs, the EDN history) read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from leaderpool.testing.chaos import report
from leaderpool.testing.chaos.checker import check
from leaderpool.testing.chaos.history_checks import check_history
from leaderpool.testing.chaos.timeline import FLUSHALL, Fault, Lead, Settings, Timeline, read_ops
from leaderpool.testing.history.ops import Op

SETTINGS = Settings(ttl_s=1.0, heartbeat_s=1 / 3, renew_deadline_s=2 / 3, seed=7, members=3)


class Recorder:
    """Builds a history as the leader task writes it: one process per (member, term)."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def op(
        self, f: str, key: str, start: float, end: float, value: Any, result: Any, *, term: int, how: str = "ok"
    ) -> None:
        process = f"m{term}/{100 + term}"
        self.ops.append(Op("invoke", f, value, process, 1000 + start, start, key, f"{100 + term}-0", term))
        self.ops.append(Op(how, f, result, process, 1000 + end, end, key, f"{100 + term}-0", term))  # type: ignore[arg-type]

    def write(self, v: int, start: float, *, term: int, how: str = "ok") -> None:
        self.op("write", "register", start, start + 0.01, v, v, term=term, how=how)

    def read(self, v: int | None, start: float, *, term: int) -> None:
        self.op("read", "register", start, start + 0.01, None, v, term=term)

    def incr(self, read: int, start: float, *, term: int, how: str = "ok") -> None:
        self.op("incr", "counter", start, start + 0.01, None, [read, read + 1], term=term, how=how)


def timeline(
    rec: Recorder, *, faults: list[Fault] | None = None, finals: dict[str, int | None] | None = None
) -> Timeline:
    leads = [Lead(1, "m1", 101, 1000.0, 1004.9, 100), Lead(2, "m2", 102, 1005.5, 1009.0, 100)]
    return Timeline(SETTINGS, 1000.0, 1010.0, leads, [], [], faults or [], 0, rec.ops, finals or {}, 1000.0)


def clean() -> Recorder:
    rec = Recorder()
    rec.write(11, 1.0, term=1)
    rec.read(11, 1.1, term=1)
    rec.incr(0, 1.2, term=1)
    rec.incr(1, 1.3, term=1)
    rec.write(21, 6.0, term=2)
    rec.read(21, 6.1, term=2)
    rec.incr(2, 6.2, term=2)
    return rec


def test_a_clean_history_passes_every_check() -> None:
    findings = check(timeline(clean(), finals={"register": 21, "counter": 3}))
    assert findings.safe and [] == findings.problems()
    h = findings.history
    assert ["linearizable"] == [r.verdict for r in h.register] and h.mutex is not None
    assert "linearizable" == h.mutex.verdict and 3 == h.counter[0].acknowledged and 7 == h.counts["operations"]


def test_a_stale_write_accepted_is_caught() -> None:
    """Deliberately broken: term 1's write is acknowledged after term 2 wrote and read its own
    value (a fence that let it through), and term 2 then reads it back: not linearizable."""
    rec = clean()
    rec.write(12, 7.0, term=1)
    rec.read(12, 7.1, term=2)
    rec.read(21, 7.2, term=2)
    findings = check(timeline(rec))
    assert not findings.safe
    [problem] = findings.problems()
    assert problem.startswith("register, stretch 0: not linearizable at m2/102 read 21")


def test_a_value_read_twice_and_incremented_twice_is_a_lost_update() -> None:
    """Terms 1 and 2 both read 2, at about the same time, and both were acknowledged for writing 3."""
    rec = clean()
    rec.incr(2, 6.195, term=1)
    problems = check(timeline(rec)).problems()
    assert 1 == len(problems) and problems[0].startswith("counter, stretch 0: lost update (twice): 2 acknowledged")


def test_an_increment_that_read_behind_an_acknowledged_one_is_a_lost_update() -> None:
    """Term 2 read 1 after term 1 had been acknowledged for writing 2: it overwrote it."""
    rec = clean()
    rec.incr(1, 6.3, term=2)
    assert any("lost update (read_behind)" in p for p in check(timeline(rec)).problems())


def test_a_final_counter_below_the_acknowledged_increments_is_caught() -> None:
    findings = check(timeline(clean(), finals={"counter": 2}))
    assert any("lost update (final_short)" in p for p in findings.problems())


def test_a_data_loss_starts_a_new_stretch_from_empty() -> None:
    """After a FLUSHALL the register reads empty and the counter counts from 0 again: allowed.
    The same reads with no data loss are anomalies."""
    rec = clean()
    rec.read(None, 8.0, term=2)
    rec.incr(0, 8.1, term=2)
    loss = Fault(FLUSHALL, None, 1007.5, 1007.6, "m2", 2)
    assert check(timeline(rec, faults=[loss], finals={"counter": 1})).history.safe
    broken = check(timeline(rec, finals={"counter": 1}))
    assert not broken.history.safe and 2 <= len(broken.history.problems())


def test_leads_that_overlap_are_not_a_mutex() -> None:
    """The leads as acquire/release: a second acquire before the first release is refused."""
    tl = timeline(clean())
    tl.leads = [Lead(1, "m1", 101, 1000.0, 1006.0, 100), Lead(2, "m2", 102, 1005.5, 1009.0, 100)]
    history = check_history(tl)
    assert history.mutex is not None and "not linearizable" == history.mutex.verdict
    assert any(p.startswith("leads as a mutex: not linearizable") for p in history.problems())


def test_act_log_op_lines_read_back_and_a_cut_line_is_counted(tmp_path: Path) -> None:
    event = {"type": "invoke", "f": "write", "key": "register", "value": 5, "process": "m1/7", "incarnation": "7-1",
             "term": 3, "wall": 1000.0, "mono": 5.0}  # fmt: skip
    log = tmp_path / "m1.acts"
    log.write_text(f"act 3 m1 7 1.0 1.0\nop {json.dumps(event)}\nop {json.dumps(event)[:20]}\n")
    ops, cut = read_ops([log])
    assert [Op("invoke", "write", 5, "m1/7", 1000.0, 5.0, "register", "7-1", 3)] == ops and 1 == cut


def test_the_history_is_written_in_edn_with_the_faults_as_nemesis_events(tmp_path: Path) -> None:
    tl = timeline(clean(), faults=[Fault(FLUSHALL, None, 1007.5, 1007.6, "m2", 2)])
    path = tmp_path / "history.edn"
    report.write_history(path, tl)
    lines = path.read_text().splitlines()
    assert 16 == len(lines) and all(line.startswith("{:type :") and line.endswith("}") for line in lines)
    assert any(":f :flushall, :value nil, :process :nemesis" in line for line in lines)


def test_a_history_that_is_not_one_is_reported_not_judged() -> None:
    """A process that invokes again with an operation open breaks Jepsen's rule (each lead is a
    process of its own for that reason): the checks say so instead of judging, or raising."""
    rec = clean()
    rec.ops.append(Op("invoke", "write", 31, "m2/102", 1008.0, 8.0, "register", "102-0", 2))
    rec.ops.append(Op("invoke", "write", 32, "m2/102", 1008.1, 8.1, "register", "102-0", 2))
    findings = check(timeline(rec))
    assert not findings.safe
    assert findings.problems()[0].startswith("history malformed, not judged: process m2/102 invoked write")
