"""Big pools (issue 13): what one pool of many members costs, and whether one process keeps up.

``python -m benchmarks.bigpool [--quick] [--members N] [--processes P] [--crowd N] [--out DIR]``
writes ``bigpool-TIMESTAMP.json`` to ``benchmarks/results/`` on its own redis-server:

- **crowd**: ``--crowd`` (300) members of one pool in ONE process (one client, one event loop,
  lease 5 s) for a window: heartbeats logged late (the target is none), Redis and process CPU.
- **big pool**: ``--members`` (1,000) members of one pool over ``--processes`` (10) processes:
  P - 1 worker processes and this one, which hosts the last share itself so it can join, leave
  and restart members. Steady state (Redis CPU, commands/s); then one join, one leave and a
  rolling restart of this process's members (each stopped and started again, one at a time):
  wall time, and the Redis work each caused beyond the steady beats (CPU, and records read:
  a full listing of the pool reads every record with one HGET, a glance reads at most two);
  then crash failovers: a member of higher priority in its own process (without fast failover)
  takes the lead (the leader is asked to resign to it), then that process is SIGKILLed; the time from the kill and
  from the dead lead's lease expiry until the next member was elected (Redis clock, history).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import psutil
import redis
import redis.asyncio

from benchmarks.cost import Snapshot, between
from benchmarks.results_file import fill_defaults, run_alone
from benchmarks.scale import ScaleCounts, warning_counts
from benchmarks.scenarios import BenchError, lease_expiry, progress
from benchmarks.stats import summary
from leaderpool import AsyncElection, MemberConfig
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.pool_store import PoolStore
from leaderpool.testing.processes import Child, ChildGroup

POOL = "bigpool"


def _argv(url: str, pool: str, label: str, members: int, ttl: float, priority: int = 0, fast: bool = True) -> list[str]:
    return [sys.executable, "-m", "benchmarks.bigpool_member", "--redis", url, "--pool", pool, "--label", label,
            "--members", str(members), "--ttl", repr(ttl), "--priority", str(priority),
            *([] if fast else ["--no-fast-failover"])]  # fmt: skip


def _cpu_s(pid: int) -> float:
    return float(sum(psutil.Process(pid).cpu_times()[:2]))


def _extra(a: Snapshot, b: Snapshot, steady: dict[str, Any]) -> dict[str, Any]:
    """The Redis work between ``a`` and ``b`` beyond the steady rate: CPU ms, commands, records read."""
    window = between(a, b)
    wall = window["wall_s"]
    rate = steady["by_command_per_s"]
    hget = window["by_command_per_s"].get("hget", 0) * wall - rate.get("hget", 0) * wall
    return {
        "wall_s": wall,
        "redis_cpu_ms": round(10 * (window["redis_cpu_pct"] - steady["redis_cpu_pct"]) * wall, 1),
        "commands": round((window["commands_per_s"] - steady["commands_per_s"]) * wall),
        "records_read": max(0, round(hget)),
    }


def crowd(url: str, members: int, ttl: float, window_s: float, log: IO[str]) -> dict[str, Any]:
    """``members`` members of one pool in one process: late heartbeats over ``window_s``."""
    counts = ScaleCounts()
    client = redis.Redis.from_url(url)
    procs = ChildGroup()
    try:
        t0 = time.monotonic()
        child = procs.start(_argv(url, "crowd", "c", members, ttl), name="crowd", stderr=log, on_line=counts.on_line)
        if not counts.wait(lambda: "crowd" in counts.ready, timeout=60 + members * 0.2):
            raise BenchError(f"crowd: the {members} members never all knew the leader")
        up_s = time.monotonic() - t0
        progress(f"crowd: {members} members up in {up_s:.1f}s; window {window_s:.0f}s")
        late_before = warning_counts(log).get("heartbeat_late", 0)
        cpu0, before = _cpu_s(child.pid), Snapshot(client)
        time.sleep(window_s)
        after = Snapshot(client)
        steady = between(before, after)
        cpu = _cpu_s(child.pid) - cpu0
        rss = psutil.Process(child.pid).memory_info().rss / 2**20
    finally:
        procs.close()
        client.close()
    warnings = warning_counts(log)
    return {
        "members": members,
        "ttl_s": ttl,
        "up_s": round(up_s, 2),
        "window_s": window_s,
        "heartbeat_late_in_window": warnings.get("heartbeat_late", 0) - late_before,
        "heartbeat_late_total": warnings.get("heartbeat_late", 0),
        "warnings": warnings,
        "process_cpu_pct": round(100 * cpu / steady["wall_s"], 1),
        "process_rss_mb": round(rss, 1),
        "redis_cpu_pct": steady["redis_cpu_pct"],
        "redis_commands_per_s": steady["commands_per_s"],
    }


class _Local:
    """This process's share of the big pool, on one client."""

    def __init__(self, url: str, ttl: float, count: int) -> None:
        self.client = redis.asyncio.Redis(
            connection_pool=redis.asyncio.BlockingConnectionPool.from_url(url, max_connections=16, timeout=None)
        )
        self.ttl = ttl
        self.ids = [f"local-{i:04d}" for i in range(count)]
        self.members: dict[str, AsyncElection] = {}

    def make(self, member: str) -> AsyncElection:
        return AsyncElection(MemberConfig(pool=POOL, member_id=member, ttl_s=self.ttl), self.client)

    async def join(self, member: str, timeout: float = 30.0) -> float:
        """Start ``member``; seconds until it knows the leader."""
        e = self.members[member] = self.make(member)
        t0 = time.monotonic()
        await e.start()
        while e.leader is None:
            if time.monotonic() - t0 > timeout:
                raise BenchError(f"big pool: {member} never learnt the leader")
            await asyncio.sleep(0.001)
        return time.monotonic() - t0

    async def leave(self, member: str) -> float:
        t0 = time.monotonic()
        await self.members.pop(member).stop()
        return time.monotonic() - t0

    async def close(self) -> None:
        await asyncio.gather(*(e.stop() for e in self.members.values()), return_exceptions=True)
        await self.client.aclose()


async def big_pool(
    url: str, members: int, processes: int, ttl: float, window_s: float, failovers: int, log: IO[str]
) -> dict[str, Any]:
    share = members // processes
    counts = ScaleCounts()
    client = redis.Redis.from_url(url)
    local = _Local(url, ttl, members - share * (processes - 1))
    procs = ChildGroup()
    out: dict[str, Any] = {"members": members, "processes": processes, "ttl_s": ttl}
    try:
        t0 = time.monotonic()
        for i in range(processes - 1):
            label = f"w{i:02d}"
            procs.start(_argv(url, POOL, label, share, ttl), name=label, stderr=log, on_line=counts.on_line)
            ok = await asyncio.to_thread(counts.wait, lambda label=label: label in counts.ready, 60 + share * 0.2)
            if not ok:
                raise BenchError(f"big pool: process {label} never had every member know the leader")
        for member in local.ids:
            await local.join(member)
        out["up_s"] = round(time.monotonic() - t0, 2)
        progress(f"big pool: {members} members over {processes} processes up in {out['up_s']:.1f}s")
        await asyncio.sleep(ttl)

        pids = {c.name: c.pid for c in procs.started}
        cpu0 = {label: _cpu_s(pid) for label, pid in pids.items()}
        own0, before = _cpu_s(psutil.Process().pid), Snapshot(client)
        late0 = warning_counts(log).get("heartbeat_late", 0)
        await asyncio.sleep(window_s)
        after = Snapshot(client)
        steady = between(before, after)
        wall = steady["wall_s"]
        out["steady"] = steady
        out["worker_cpu_pct"] = {
            label: round(100 * (_cpu_s(pid) - cpu0[label]) / wall, 1) for label, pid in pids.items()
        }
        out["this_process_cpu_pct"] = round(100 * (_cpu_s(psutil.Process().pid) - own0) / wall, 1)
        out["heartbeat_late_in_window"] = warning_counts(log).get("heartbeat_late", 0) - late0
        progress(f"big pool: steady {steady['commands_per_s']:.0f} cmd/s, Redis CPU {steady['redis_cpu_pct']:.1f}%")

        async def measured(action: Any, settle_s: float = 1.0) -> dict[str, Any]:
            a = Snapshot(client)
            took = await action
            await asyncio.sleep(settle_s)  # the looks the change made due
            return {"action_wall_ms": round(took * 1000, 2), **_extra(a, Snapshot(client), steady)}

        out["join"] = await measured(local.join("late-joiner"))
        progress(f"big pool: one join {out['join']}")
        out["leave"] = await measured(local.leave("late-joiner"))
        progress(f"big pool: one leave {out['leave']}")

        async def rolling() -> float:
            t = time.monotonic()
            for member in local.ids:
                await local.leave(member)
                await local.join(member)
            return time.monotonic() - t

        out["rolling_restart"] = {"restarted": len(local.ids), **await measured(rolling())}
        progress(f"big pool: rolling restart of {len(local.ids)}: {out['rolling_restart']}")
        out["crash_failover"] = await _crash_failovers(url, client, procs, counts, ttl, failovers, log)
        return out
    finally:
        await local.close()
        procs.close()
        client.close()


async def _crash_failovers(
    url: str, client: Any, procs: ChildGroup, counts: ScaleCounts, ttl: float, rounds: int, log: IO[str]
) -> dict[str, Any]:
    """Each round: a member of higher priority in its own process is handed the lead (the leader
    is asked to resign), then its process is SIGKILLed. It runs without fast failover (no
    endpoint to watch), so the next in line takes over when the lease expires."""
    keys = Keyspace(POOL)
    aio = redis.asyncio.Redis.from_url(url)
    store = PoolStore(aio, keys)
    from_kill, from_expiry = [], []
    try:
        for k in range(rounds):
            label = f"crash{k}"
            child: Child = procs.start(
                _argv(url, POOL, label, 1, ttl, priority=k + 1, fast=False),
                name=label,
                stderr=log,
                on_line=counts.on_line,
            )
            if not await asyncio.to_thread(counts.wait, lambda label=label: label in counts.ready, 60):
                raise BenchError(f"crash failover: {label} never joined")
            await asyncio.sleep(0.3)  # the leader's next beat names the newcomer next in line
            for _ in range(50):
                await store.request_resign()
                if await asyncio.to_thread(counts.wait, lambda label=label: label in counts.elected, 1.0):
                    break
            else:
                raise BenchError(f"crash failover: {label} was never handed the lead")
            # the resigned member ranks last for one lease, and when that ends the next in line
            # changes silently (members learn it from their beats): kill only after it settled
            await asyncio.sleep(ttl + 2 * ttl / 3)
            newest = client.xrevrange(keys.history, count=1)
            t_kill = time.time()
            child.kill()
            expires, _ = lease_expiry(client, keys.leader)
            elected_ms = None
            for _ in range(int((3 * ttl + 5) / 0.05)):
                entries = client.xrevrange(keys.history, count=5)
                fresh = [f for i, f in entries if newest and i > newest[0][0] and f[b"event"] == b"elected"]
                if fresh:
                    elected_ms = int(fresh[-1][b"t_ms"])
                    break
                await asyncio.sleep(0.05)
            if elected_ms is None:
                raise BenchError(f"crash failover: nobody was elected after {label} died")
            from_kill.append(elected_ms / 1000 - t_kill)
            if expires is not None:  # None: the lead was gone already (released by fast failover)
                from_expiry.append(elected_ms / 1000 - expires)
            after = f"{from_expiry[-1] * 1000:.1f}ms" if expires is not None else "(the lead was gone at once)"
            progress(f"crash failover {k}: from kill {from_kill[-1]:.3f}s, from expiry {after}")
            await asyncio.sleep(1.0)
    finally:
        await aio.aclose()
    return {
        "rounds": rounds,
        "from_kill_ms": summary(from_kill, scale=1e3),
        "from_lease_expiry_ms": summary(from_expiry, scale=1e3),
        "note": "the killed leader ran without fast failover: the next in line claims at lease expiry",
    }


def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    load = psutil.getloadavg()
    out: dict[str, Any] = {"cpus": psutil.cpu_count(), "load_avg_at_start": [round(x, 2) for x in load]}
    with tempfile.NamedTemporaryFile("w+", prefix="bigpool-", suffix=".log", delete=False) as log:
        out["crowd"] = crowd(url, args.crowd, args.ttl, args.window, log)
        progress(f"crowd: {out['crowd']['heartbeat_late_in_window']} late heartbeats in the window")
    with tempfile.NamedTemporaryFile("w+", prefix="bigpool-", suffix=".log", delete=False) as log:
        out["big_pool"] = asyncio.run(
            big_pool(url, args.members, args.processes, args.ttl, args.window, args.failovers, log)
        )
        out["big_pool"]["worker_warnings"] = warning_counts(log)
    out["load_avg_at_end"] = [round(x, 2) for x in psutil.getloadavg()]
    return out


def table(result: dict[str, Any]) -> str:
    c, b = result["crowd"], result["big_pool"]
    lines = [
        f"crowd: {c['members']} members in one process, lease {c['ttl_s']}s: "
        f"{c['heartbeat_late_in_window']} late heartbeats in {c['window_s']}s, "
        f"process CPU {c['process_cpu_pct']}%, Redis CPU {c['redis_cpu_pct']}%",
        f"big pool: {b['members']} members over {b['processes']} processes: steady Redis CPU "
        f"{b['steady']['redis_cpu_pct']}%, {b['steady']['commands_per_s']:.0f} commands/s",
    ]
    for key in ("join", "leave", "rolling_restart"):
        r = b[key]
        lines.append(
            f"  {key}: {r['action_wall_ms']} ms, Redis +{r['redis_cpu_ms']} ms CPU, "
            f"+{r['commands']} commands, {r['records_read']} records read"
        )
    f = b["crash_failover"]
    lines.append(f"  crash failover: from kill p50 {f['from_kill_ms']['p50']} ms, from lease expiry p50 "
                 f"{f['from_lease_expiry_ms']['p50']} ms")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bigpool", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="a smoke run of a few seconds (small pools)")
    p.add_argument("--members", type=int, help="members of the big pool (1000; quick 20)")
    p.add_argument("--processes", type=int, help="processes they live in (10; quick 2)")
    p.add_argument("--crowd", type=int, help="members of one pool in one process (300; quick 20)")
    p.add_argument("--ttl", type=float, help="lease (5 s; quick 1 s)")
    p.add_argument("--window", type=float, help="steady windows, seconds (20; quick 2)")
    p.add_argument("--failovers", type=int, help="crash failover rounds (5; quick 1)")
    p.add_argument("--out", type=Path, help="directory for the result file")
    p.add_argument("--name", help="result file name without .json (bigpool-TIMESTAMP)")
    args = p.parse_args(argv)
    q = args.quick
    fill_defaults(args, (("members", 1000, 20), ("processes", 10, 2), ("crowd", 300, 20), ("ttl", 5.0, 1.0),
                         ("window", 20.0, 2.0), ("failovers", 5, 1)))  # fmt: skip
    if args.members < args.processes or args.processes < 2 or min(args.crowd, args.failovers) < 1:
        print("bigpool: need --processes >= 2, --members >= --processes, --crowd and --failovers >= 1", file=sys.stderr)
        return 2
    return run_alone("bigpool", lambda url: measure(url, args), table, out=args.out, name=args.name, quick=q)


if __name__ == "__main__":
    raise SystemExit(main())
