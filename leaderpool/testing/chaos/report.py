"""The chaos run's summary: a Markdown table per concern, printed and written to a file."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from leaderpool.testing.chaos.checker import FaultOutcome, Findings, percentile
from leaderpool.testing.chaos.timeline import Timeline
from leaderpool.testing.history import edn
from leaderpool.testing.history.ops import NEMESIS, Op


def _spread(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> str:
    if not values:
        return "-"
    xs = [v * scale for v in values]
    return f"{percentile(xs, 0.5):.{digits}f} / {max(xs):.{digits}f}"


def safety_table(findings: Findings) -> str:
    c = findings.counts
    allowed = [o for o in findings.overlaps if o.in_data_loss_window]
    longest = max((o.duration_s for o in allowed), default=0.0) * 1000
    rows = [
        ("overlapping leadership outside the data-loss window (must be 0)", str(len(findings.violations))),
        ("overlaps inside the data-loss window (allowed; longest)", f"{len(allowed)} ({longest:.1f} ms)"),
        ("stale-term fenced writes accepted (must be 0)", str(len(findings.stale_accepted))),
        (
            "stale-term writes refused: by the lead / zombie writes after it",
            f"{c['fenced_refused']} / {c['zombie_refused']}",
        ),
        ("terms reused (must be 0)", str(len(findings.reused_terms))),
        ("terms that went back (must be 0)", str(len(findings.terms_went_back))),
        ("fenced writes accepted / errors (outcome unknown)", f"{c['fenced_ok']} / {c['fenced_errors']}"),
        ("zombie writes accepted (no newer term had written yet)", str(c["zombie_accepted"])),
        ("terms / leads acted on / unfenced acts", f"{c['terms']} / {c['leads']} / {c['acts']}"),
    ]
    return "\n".join(["| check | result |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


def history_table(findings: Findings) -> str:
    """The history checks: what was recorded, each model's verdict."""
    h, c = findings.history, findings.history.counts
    if not c.get("operations"):
        return "- history: no operation recorded"

    def n(key: str) -> int:
        return c.get(key, 0)

    def verdicts(results: Sequence[object]) -> str:
        names = [getattr(r, "verdict", "?") for r in results]
        return ", ".join(f"{names.count(v)} {v}" for v in sorted(set(names))) or "-"

    lost = sum(len(x.lost) for x in h.counter)
    rows = [
        ("operations recorded (processes; stretches between data losses)",
         f"{c['operations']} ({c['processes']}; {c['stretches']})"),
        ("register writes ok / refused or not sent / indeterminate",
         f"{n('write_ok')} / {n('write_fail')} / {n('write_invoke') - n('write_ok') - n('write_fail')}"),
        ("register reads ok / failed or indeterminate", f"{n('read_ok')} / {n('read_invoke') - n('read_ok')}"),
        ("counter increments ok / refused or not sent / indeterminate",
         f"{n('incr_ok')} / {n('incr_fail')} / {n('incr_invoke') - n('incr_ok') - n('incr_fail')}"),
        ("register linearizable, per stretch (WGL search)", verdicts(h.register)),
        ("acknowledged increments lost (must be 0)", str(lost)),
        ("counter at the end / acknowledged increments in its last stretch",
         f"{h.counter[-1].final if h.counter else '-'} / {h.counter[-1].acknowledged if h.counter else '-'}"),
        ("leads as a mutex (WGL search)", h.mutex.verdict if h.mutex else "-"),
        ("search steps in all", str(n("search_steps"))),
    ]  # fmt: skip
    return "\n".join(["| history check | result |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


def faults_table(findings: Findings) -> str:
    by_kind: dict[str, list[FaultOutcome]] = {}
    for o in findings.outcomes:
        by_kind.setdefault(o.fault.kind, []).append(o)
    bound = findings.vacancy_bound_s
    lines = [
        f"| fault | n | on the leader | leader changed | new leader acting after (s) p50 / max | "
        f"no leader acting (s) p50 / max | vacancy <= ttl+hb ({bound:.2f}s) | "
        "signal to successor elected (ms) p50 / max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, outs in sorted(by_kind.items()):
        changed = [o for o in outs if o.new_term is not None]
        vacant = [o.vacant_s for o in changed if o.vacant_s is not None]
        within = sum(1 for v in vacant if v <= bound)
        signalled = [o.handover_ms for o in outs if o.handover_ms is not None]
        lines.append(
            f"| {kind} | {len(outs)} | {sum(o.fault.on_leader for o in outs)} | {len(changed)} | "
            f"{_spread([o.failover_s for o in changed if o.failover_s is not None])} | {_spread(vacant)} | "
            f"{within}/{len(vacant)} | {_spread(signalled, digits=1)} |"
        )
    return "\n".join(lines)


def handovers(findings: Findings, kind: str) -> list[float]:
    return [o.handover_ms for o in findings.outcomes if o.fault.kind == kind and o.handover_ms is not None]


def summary(timeline: Timeline, findings: Findings) -> str:
    s = timeline.settings
    term_ms = handovers(findings, "sigterm")
    kill_ms = handovers(findings, "sigkill")

    def line(name: str, xs: list[float]) -> str:
        if not xs:
            return f"- {name}: none in this run"
        return (f"- {name}: p50 {percentile(xs, 0.5):.1f} ms, p99 {percentile(xs, 0.99):.1f} ms, "
                f"max {max(xs):.1f} ms ({len(xs)})")  # fmt: skip

    verdict = "SAFE" if findings.safe else "UNSAFE"
    stuck = [o for o in findings.outcomes if "no_leader_within_s" in o.fault.detail]
    parts = [
        f"chaos run: seed {s.seed}, {s.members} workers, ttl {s.ttl_s:g}s (heartbeat {s.heartbeat_s:.3f}s, "
        f"renew deadline {s.renew_deadline_s:.3f}s), {len(timeline.faults)} faults in "
        f"{timeline.ended - timeline.started:.0f}s: {verdict}",
        "",
        safety_table(findings),
        "",
        history_table(findings),
        "",
        faults_table(findings),
        "",
        line("SIGTERM of the leader to the successor's elected (kind hand-over)", term_ms),
        line("SIGKILL of the leader to the successor's elected (fast failover)", kill_ms),
        f"- faults after which no leader acted within the recovery bound: {len(stuck)}",
    ]
    if not findings.safe:
        parts += ["", "Problems:", *(f"- {p}" for p in findings.problems())]
    return "\n".join(parts)


def fault_list(findings: Findings, started: float) -> str:
    """Every fault, one row: for the results file."""
    head = "| # | at (s) | fault | target | leader (term) | held (s) | new term | new leader acting after (s) |"
    rows = [f"{head} no leader acting (s) | detail |", "|---|---|---|---|---|---|---|---|---|---|"]
    for i, o in enumerate(findings.outcomes, 1):
        f = o.fault

        def num(x: float | None) -> str:
            return "-" if x is None or math.isnan(x) else f"{x:.3f}"

        rows.append(
            f"| {i} | {f.start - started:.1f} | {f.kind} | {f.target or 'all'} | {f.leader} ({f.leader_term}) | "
            f"{f.healed - f.start:.2f} | {o.new_term or '-'} | {num(o.failover_s)} | {num(o.vacant_s)} | "
            f"{json.dumps(f.detail) if f.detail else ''} |"
        )
    return "\n".join(rows)


def write(path: Path, timeline: Timeline, findings: Findings, command: str) -> None:
    """The summary and the fault list as Markdown at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join([
        f"# Chaos run, seed {timeline.settings.seed}", "", f"`{command}`", "",
        summary(timeline, findings), "", "## Every fault", "", fault_list(findings, timeline.started), "",
    ])  # fmt: skip
    path.write_text(text)


def write_history(path: Path, timeline: Timeline) -> None:
    """The leader's recorded work in Jepsen's EDN, with each fault as a ``:nemesis`` event."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(edn.dumps([*timeline.ops, *nemesis_events(timeline)]))


def nemesis_events(timeline: Timeline) -> list[Op]:
    """Each fault as Jepsen's nemesis records one: ``info`` at its start and at its end."""
    off, out = timeline.mono_offset, []
    for f in timeline.faults:
        value = f.target
        out += [
            Op("info", f.kind, value, NEMESIS, f.start, f.start - off),
            Op("info", f"{f.kind}_healed", value, NEMESIS, f.healed, f.healed - off),
        ]
    return out


def write_timeline(path: Path, timeline: Timeline) -> None:
    """The raw timeline as JSON (:func:`~.timeline.load` reads it back), for the checker offline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(timeline.to_json()))
