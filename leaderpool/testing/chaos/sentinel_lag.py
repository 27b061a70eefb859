"""A Sentinel failover to a replica that lags: the window the guarantees name for it, and how
``--wait-replicas`` closes it. A scenario of its own (the workers reach Redis through the
Sentinel, not through the runner's proxies), run once without and once with ``--wait-replicas 1``:

1. a master, a replica and a Sentinel (:mod:`leaderpool.testing.sentinel`); three workers on the
   Sentinel URL, each running the chaos task (acts and fenced writes, as in the main run);
2. the replica is cut off (``REPLICAOF`` an unused port: it keeps its data, which goes stale);
3. the lead moves on the master (SIGTERM of the leader: the next in line is handed a lead the
   replica never gets);
4. the master is killed (SIGKILL); the Sentinel promotes the stale replica.

What it measures: how long the lead the replica never had was acted on (without
``--wait-replicas``, as documented; with it, not at all: the member holds it without acting),
whether two leads' acts overlapped, and when a leader acted again after the failover (with
``--wait-replicas 1`` and no replica left, none does: the pool chooses safety). Returns plain
records; the checker's :func:`~.checker.overlaps` judges the acts.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from leaderpool.testing.chaos import task
from leaderpool.testing.chaos.checker import Overlap, overlaps
from leaderpool.testing.chaos.pool import PACKAGE_ROOT, TASK
from leaderpool.testing.chaos.tail import ActTail
from leaderpool.testing.chaos.timeline import Lead, read_act_logs
from leaderpool.testing.processes import Child, ChildGroup, clean_env
from leaderpool.testing.redis_server import free_port
from leaderpool.testing.sentinel import SentinelSet

MEMBERS = ("s1", "s2", "s3")
_NOT_REPLICATED = re.compile(r"lead_not_replicated\W.*?leader_term\W+(\d+)")


@dataclass
class LagOutcome:
    wait_replicas: int
    ttl_s: float
    lagged_at: float = 0.0
    moved_at: float = 0.0
    killed_at: float = 0.0
    promoted_at: float | None = None
    unreplicated_term: int | None = None
    """The term the lead moved to while the replica was cut off (the master granted it)."""
    unreplicated_acts: int = 0
    unreplicated_acted_s: float = 0.0
    """How long the lead the replica never had was acted on (first to last act)."""
    acted_after_failover_s: float | None = None
    """From the master's SIGKILL to the first act of a lead granted by the promoted replica."""
    leads: list[Lead] = field(default_factory=list)
    overlaps: list[Overlap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def run_lag(
    wait_replicas: int,
    *,
    ttl_s: float = 1.0,
    workdir: Path | None = None,
    redis_binary: str | None = None,
    settle_s: float = 6.0,
    say: Callable[[str], None] = print,
) -> LagOutcome:
    """One scenario (see the module docstring); bounded: each wait has a timeout."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="leaderpool-lag-") as tmp:
            return run_lag(
                wait_replicas, ttl_s=ttl_s, workdir=Path(tmp), redis_binary=redis_binary, settle_s=settle_s, say=say
            )
    workdir.mkdir(parents=True, exist_ok=True)
    out = LagOutcome(wait_replicas, ttl_s)
    logs = {name: workdir / f"{name}-w{wait_replicas}.acts" for name in MEMBERS}
    with SentinelSet(redis_binary) as sentinel, ChildGroup() as group:
        procs: dict[str, Child] = {}
        for name in MEMBERS:
            argv = [
                sys.executable, "-m", "leaderpool.worker", "--redis", sentinel.url, "--pool", "lag",
                "--member-id", name, "--ttl", f"{ttl_s:g}", "--json-events", "--task", TASK,
                "--wait-replicas", str(wait_replicas),
            ]  # fmt: skip
            env = clean_env(PYTHONPATH=str(PACKAGE_ROOT), **{task.LOG_VAR: str(logs[name])})
            stderr = workdir / f"{name}-w{wait_replicas}.stderr"
            procs[name] = group.start(argv, name=name, env=env, cwd=PACKAGE_ROOT, stderr=stderr)
        tail = ActTail(logs.values())
        if tail.wait_for_act_after(0, 60) is None:
            raise RuntimeError("no leader acted within 60s of the start")
        leader = _leader(procs)
        for proc in procs.values():  # every member knows the term before the lag
            proc.wait_for(lambda e: e.get("event") == "leader" and e.get("term") is not None, 30)
        replica = redis.Redis(port=sentinel.replica_port, socket_timeout=5)
        try:
            out.lagged_at = time.time()
            replica.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))  # stale from here on
        finally:
            replica.close()
        say(f"sentinel-lag w{wait_replicas}: replica cut off; moving the lead from {leader}")
        out.moved_at = procs[leader].terminate()
        procs[leader].wait(30)
        successor = _await_claim(procs, leader, out, timeout=10 * ttl_s + 10)
        time.sleep(1.5 * ttl_s)  # the unreplicated lead runs (or is held) for a while
        out.killed_at = time.time()
        sentinel.master.stop()
        say(f"sentinel-lag w{wait_replicas}: master killed (lead {successor}, term {out.unreplicated_term})")
        try:
            sentinel.wait_for_failover(sentinel.master.port, timeout=30)
            out.promoted_at = time.time()
        except Exception as exc:
            out.notes.append(f"no failover within 30s: {exc}")
        time.sleep(settle_s)
    leads, _, _ = read_act_logs(logs.values())
    out.leads = leads
    out.overlaps = overlaps(leads, [out.killed_at], (ttl_s + ttl_s / 3) / 2)
    term = out.unreplicated_term
    mine = [lead for lead in leads if term is not None and lead.term == term]
    out.unreplicated_acts = sum(lead.acts for lead in mine)
    out.unreplicated_acted_s = sum(lead.end - lead.start for lead in mine)
    after = [lead.start for lead in leads if lead.start > out.killed_at and (term is None or lead.term != term)]
    out.acted_after_failover_s = min(after) - out.killed_at if after else None
    return out


def _leader(procs: dict[str, Child]) -> str:
    best: tuple[int, str] | None = None
    for name, proc in procs.items():
        for e in proc.of("elected"):
            if isinstance(e.get("term"), int) and (best is None or e["term"] > best[0]):
                best = (e["term"], name)
    if best is None:
        raise RuntimeError("nobody was elected")
    return best[1]


def _await_claim(procs: dict[str, Child], old: str, out: LagOutcome, timeout: float) -> str:
    """The member the lead moved to, and its term: from its ``elected`` event, or with
    ``--wait-replicas``, from the lead it holds without acting (``lead_not_replicated``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if name == old:
                continue
            for e in proc.of("elected"):
                if e.get("event") == "elected" and isinstance(e.get("term"), int) and e["t"] >= out.moved_at:
                    out.unreplicated_term = e["term"]
                    return name
            held = _NOT_REPLICATED.search(proc.stderr)
            if held is not None:
                out.unreplicated_term = int(held.group(1))
                out.notes.append(f"{name} held term {held.group(1)} without acting on it (lead_not_replicated)")
                return name
        time.sleep(0.05)
    out.notes.append(f"the lead did not move within {timeout:g}s")
    return "?"


def safe(outcome: LagOutcome) -> bool:
    """No overlap outside the documented window; with ``--wait-replicas``, the lead the replica
    never had was never acted on."""
    if any(not o.in_data_loss_window for o in outcome.overlaps):
        return False
    return not (outcome.wait_replicas and outcome.unreplicated_acts)


def table(outcomes: list[LagOutcome]) -> str:
    """One row per scenario, Markdown."""
    lines = [
        "| --wait-replicas | lead the replica never had: acts (acted for, s) | overlaps (in the window) | "
        "a leader acting again after the master's kill (s) | notes |",
        "|---|---|---|---|---|",
    ]
    for o in outcomes:
        inside = sum(1 for x in o.overlaps if x.in_data_loss_window)
        again = (
            "never (no replica left to acknowledge)"
            if o.acted_after_failover_s is None
            else f"{o.acted_after_failover_s:.2f}"
        )
        lines.append(
            f"| {o.wait_replicas} | {o.unreplicated_acts} ({o.unreplicated_acted_s:.2f}) | "
            f"{len(o.overlaps)} ({inside}) | {again} | {'; '.join(o.notes)} |"
        )
    return "\n".join(lines)
