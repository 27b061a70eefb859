"""The singletons' chaos run summary: the checks, what was recorded, and per fault kind how long a
singleton went without an owner acting (the longest gap between two of its ownerships that
touches the fault's span), as Markdown."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from leaderpool.testing.chaos.checker import percentile
from leaderpool.testing.chaos.singleton_checker import Interval, SingletonFindings, interval
from leaderpool.testing.chaos.singleton_timeline import SingletonTimeline
from leaderpool.testing.chaos.timeline import Fault


def gaps(timeline: SingletonTimeline) -> dict[int, float]:
    """Per fault (its index): the longest time any singleton had no owner acting, among the gaps
    open at some time between the fault's start and the next fault's (a frozen owner's last act
    comes before the freeze: its gap begins before the fault)."""
    per: dict[str, list[Interval]] = defaultdict(list)
    for o in timeline.ownerships:
        per[o.name].append(interval(o, timeline.kills))
    holes: list[tuple[float, float]] = []
    for spans in per.values():
        spans.sort(key=lambda i: i.start)
        reach = spans[0].end if spans else 0.0
        for nxt in spans[1:]:
            if nxt.start > reach:
                holes.append((reach, nxt.start - reach))
            reach = max(reach, nxt.end)
    faults = sorted(timeline.faults, key=lambda f: f.start)
    out: dict[int, float] = {}
    for k, f in enumerate(faults):
        until = faults[k + 1].start if k + 1 < len(faults) else timeline.ended
        inside = [length for began, length in holes if began < until and began + length > f.start]
        out[k] = max(inside, default=0.0)
    return out


def safety_table(findings: SingletonFindings) -> str:
    c = findings.counts
    lost = sum(len(x) for x in findings.lost_updates.values())
    rows = [
        ("two owners of one singleton at once (must be 0)", str(len(findings.overlaps))),
        ("stale-term fenced writes accepted (must be 0)", str(len(findings.stale_accepted))),
        ("terms owned by two processes (must be 0)", str(sum(len(t) for t in findings.reused_terms.values()))),
        ("terms that went back (must be 0)", str(len(findings.terms_went_back))),
        ("acknowledged increments lost (must be 0)", str(lost)),
        ("singletons / ownerships / unfenced acts", f"{c['singletons']} / {c['ownerships']} / {c['acts']}"),
        (
            "ownerships ended: stopped / lapsed / killed / unterminated",
            " / ".join(str(c.get(f"ended_{k}", 0)) for k in ("stopped", "lapsed", "killed", "unterminated")),
        ),
        ("fenced writes accepted / refused (stale) / errors",
         f"{c['fenced_ok']} / {c['fenced_refused']} / {c['fenced_errors']}"),
        ("zombie writes refused / accepted (no newer term had written yet)",
         f"{c['zombie_refused']} / {c['zombie_accepted']}"),
        ("increments recorded / acknowledged", f"{c['operations']} / {c['increments_acknowledged']}"),
    ]  # fmt: skip
    return "\n".join(["| check | result |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


def faults_table(timeline: SingletonTimeline, bound_s: float) -> str:
    by_kind: dict[str, list[float]] = defaultdict(list)
    ordered = sorted(timeline.faults, key=lambda f: f.start)
    for k, gap in gaps(timeline).items():
        by_kind[ordered[k].kind].append(gap)
    lines = [
        f"| fault | n | longest singleton without an owner (s) p50 / max | within ttl+hb ({bound_s:.2f}s) |",
        "|---|---|---|---|",
    ]
    for kind, xs in sorted(by_kind.items()):
        within = sum(1 for x in xs if x <= bound_s)
        lines.append(f"| {kind} | {len(xs)} | {percentile(xs, 0.5):.3f} / {max(xs):.3f} | {within}/{len(xs)} |")
    return "\n".join(lines)


def summary(timeline: SingletonTimeline, findings: SingletonFindings) -> str:
    s = timeline.settings
    stuck = [f for f in timeline.faults if "not_all_acting_within_s" in f.detail]
    moves = [m for f in timeline.faults if f.kind == "move" for m in f.detail.get("moves", [])]
    parts = [
        f"chaos singletons run: seed {s.seed}, {s.members} workers, {s.singletons} singletons, ttl {s.ttl_s:g}s, "
        f"{len(timeline.faults)} faults in {timeline.ended - timeline.started:.0f}s: "
        f"{'SAFE' if findings.safe else 'UNSAFE'}",
        "",
        safety_table(findings),
        "",
        faults_table(timeline, s.ttl_s * 4 / 3),
        "",
        f"- `leaderpool-cli move` runs: {len(moves)}, exit 0: {sum(1 for m in moves if m.get('exit') == 0)}",
        f"- faults after which not every singleton acted again within the recovery bound: {len(stuck)}",
    ]
    if not findings.safe:
        parts += ["", "Problems:", *(f"- {p}" for p in findings.problems())]
    return "\n".join(parts)


def fault_list(timeline: SingletonTimeline) -> str:
    gap = gaps(timeline)
    rows = ["| # | at (s) | fault | target | held (s) | longest without an owner (s) | detail |",
            "|---|---|---|---|---|---|---|"]  # fmt: skip
    for k, f in enumerate(sorted(timeline.faults, key=lambda f: f.start)):
        rows.append(
            f"| {k + 1} | {f.start - timeline.started:.1f} | {f.kind} | {f.target or 'all'} | "
            f"{f.healed - f.start:.2f} | {gap[k]:.3f} | {_detail(f)} |"
        )
    return "\n".join(rows)


def _detail(f: Fault) -> str:
    return json.dumps(f.detail, separators=(",", ":")) if f.detail else ""


def write(path: Path, timeline: SingletonTimeline, findings: SingletonFindings, command: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join([
        f"# Chaos run of singletons, seed {timeline.settings.seed}", "", f"`{command}`", "",
        summary(timeline, findings), "", "## Every fault", "", fault_list(timeline), "",
    ])  # fmt: skip
    path.write_text(text)


def write_timeline(path: Path, timeline: SingletonTimeline) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(timeline.to_json()))
