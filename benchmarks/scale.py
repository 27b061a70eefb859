"""Many pools on one Redis: ``pools`` x ``members``, member i of every pool living in process i.

Process 0 starts first, so it leads every pool; the others start one after another (so the
ranking is the same in every pool). With ``lead_share`` K above 1, process 0 is preferred only
in every K-th pool and the others take the rest over as they join (the issue's scenario: the
process killed leads a tenth of the pools); the run waits until the leads have moved. Then a
steady window (Redis ops/s and CPU, worker CPU and RSS), then SIGKILL of process 0 (one leader
per pool it leads, at once) and the time until each of those pools has a new leader, from the
survivors' reports, checked by reading every leader key in one pipeline.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import Counter
from typing import IO, Any

import psutil
import redis

from benchmarks.cost import Snapshot, between
from benchmarks.scenarios import BenchError, progress
from benchmarks.stats import summary
from benchmarks.timeline import parse_line
from leaderpool.backend.keys import Keyspace
from leaderpool.testing.processes import Child, ChildGroup


class ScaleCounts:
    """Per process: pools it won (first win time per pool) and whether it is ready."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.elected: dict[str, dict[str, float]] = {}
        self.ready: set[str] = set()

    def on_line(self, label: str, line: str) -> None:
        event = parse_line(label, line)
        if event is None:
            return
        with self.cond:
            if event.kind == "ready":
                self.ready.add(label)
            elif event.kind == "elected":
                pool = _pool_of(line)
                if pool is not None:
                    self.elected.setdefault(label, {})[pool] = event.t
            self.cond.notify_all()

    def wait(self, predicate: Any, timeout: float) -> bool:
        with self.cond:
            return bool(self.cond.wait_for(predicate, timeout))


def exact_expiries(client: redis.Redis, pools: list[str]) -> dict[str, float]:
    """Each pool's lease end (unix s) from PEXPIRETIME (Redis 7), read right after the kill: nobody
    renews a dead leader's lease, and the first expiry is a lease minus a heartbeat away, so the
    reading is exact. Older servers: {} (the PTTL estimate taken before the kill stays)."""
    pipe = client.pipeline(transaction=False)
    for pool in pools:
        pipe.pexpiretime(Keyspace(pool).leader)
    try:
        replies = pipe.execute()
    except redis.ResponseError:
        return {}
    return {pool: int(ms) / 1000 for pool, ms in zip(pools, replies, strict=True) if int(ms) > 0}


def _pool_of(line: str) -> str | None:
    import json

    try:
        pool = json.loads(line).get("pool")
    except ValueError:
        return None
    return str(pool) if pool else None


def warning_counts(log: IO[str]) -> dict[str, int]:
    """Warning events the workers logged (JSON lines on their shared stderr file)."""
    log.flush()
    found: Counter[str] = Counter()
    try:
        with open(log.name) as f:
            for line in f:
                if '"level": "warning"' in line or '"level":"warning"' in line:
                    match = re.search(r'"event": ?"([a-z_]+)"', line)
                    found[match.group(1) if match else "other"] += 1
    except (OSError, TypeError):
        pass
    return dict(found)


def leaders_of(client: redis.Redis, names: list[str]) -> list[str | None]:
    """Each pool's leader (member id), from one pipeline."""
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.get(Keyspace(name).leader)
    return [None if v is None else v.decode().partition("|")[2] for v in pipe.execute()]


def run_scale(
    url: str, pools: int, members: int, ttl: float, window_s: float, log: IO[str], lead_share: int = 1
) -> dict[str, Any]:
    prefix = "scale-"
    counts = ScaleCounts()
    procs = ChildGroup()
    client = redis.Redis.from_url(url)
    labels = [f"scale-p{i}" for i in range(members)]
    t_setup = time.monotonic()
    try:

        def start(i: int) -> Child:
            argv = [sys.executable, "-m", "benchmarks.scale_member", "--redis", url, "--prefix", prefix,
                    "--pools", str(pools), "--member-id", labels[i], "--ttl", repr(ttl)]  # fmt: skip
            if lead_share > 1:
                argv += ["--lead-share", str(lead_share), "--index", str(i), "--processes", str(members)]
            return procs.start(argv, name=labels[i], stderr=log, on_line=counts.on_line)

        first = start(0)
        if not counts.wait(lambda: labels[0] in counts.ready and len(counts.elected.get(labels[0], {})) == pools,
                           timeout=120 + pools * 0.1):  # fmt: skip
            raise BenchError(f"scale: process 0 did not lead all {pools} pools")
        progress(f"scale: process 0 leads all {pools} pools ({time.monotonic() - t_setup:.1f}s)")
        for i in range(1, members):
            start(i)
            if not counts.wait(lambda i=i: labels[i] in counts.ready, timeout=120 + pools * 0.1):
                raise BenchError(f"scale: process {i} did not see every pool's leader")
        names = [f"{prefix}{i}" for i in range(pools)]
        if lead_share > 1:  # the leads move to their preferred members: wait until they have
            share = sum(1 for i in range(pools) if i % lead_share == 0)
            deadline = time.monotonic() + 60 + pools * 0.01
            while sum(1 for h in leaders_of(client, names) if h == labels[0]) != share:
                if time.monotonic() > deadline:
                    raise BenchError(f"scale: the leads did not move to their preferred members ({share} to p0)")
                time.sleep(0.5)
        setup_s = time.monotonic() - t_setup
        progress(f"scale: {pools} pools x {members} members up in {setup_s:.1f}s; settling {ttl:.1f}s")
        time.sleep(ttl)

        handles = {m.name: psutil.Process(m.pid) for m in procs.started}
        cpu0 = {label: sum(p.cpu_times()[:2]) for label, p in handles.items()}
        before = Snapshot(client)
        time.sleep(window_s)
        after = Snapshot(client)
        steady = between(before, after)
        wall = after.t - before.t
        workers = {
            label: {
                "cpu_pct": round(100 * (sum(p.cpu_times()[:2]) - cpu0[label]) / wall, 2),
                "rss_mb": round(p.memory_info().rss / 2**20, 1),
            }
            for label, p in handles.items()
        }
        progress(f"scale: steady {steady['commands_per_s']:.0f} cmd/s, Redis CPU {steady['redis_cpu_pct']:.1f}%")

        keys = [Keyspace(name).leader for name in names]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
            pipe.pttl(key)
        t_read = time.time()
        replies = pipe.execute()
        values, pttls = replies[0::2], replies[1::2]
        held = {n for n, v in zip(names, values, strict=True) if v is not None and v.decode().endswith(f"|{labels[0]}")}
        expiry_of = {n: t_read + int(p) / 1000 for n, p in zip(names, pttls, strict=True) if int(p) > 0}
        survivors_cpu = {label: sum(p.cpu_times()[:2]) for label, p in handles.items() if label != labels[0]}
        redis_before_kill = Snapshot(client)
        t_kill = first.kill()
        expiry_of.update(exact_expiries(client, [n for n in names if n in held]))
        expiries = [expiry_of[name] for name in held if name in expiry_of]
        survivors = labels[1:]

        def won_since_kill() -> dict[str, float]:
            firsts: dict[str, float] = {}
            for s in survivors:
                for pool, t in counts.elected.get(s, {}).items():
                    if t >= t_kill and pool in held:
                        firsts[pool] = min(t, firsts.get(pool, t))
            return firsts

        def all_led() -> bool:
            return len(won_since_kill()) == len(held)

        led = counts.wait(all_led, timeout=3 * ttl + 30)
        recovery = between(redis_before_kill, Snapshot(client))
        recovery_wall = time.time() - t_kill
        recovery_cpu = {
            label: round(100 * (sum(handles[label].cpu_times()[:2]) - cpu) / recovery_wall, 1)
            for label, cpu in survivors_cpu.items()
        }
        with counts.cond:
            firsts = won_since_kill()
        holders = leaders_of(client, names)
        per_pool = list(firsts.values())
        last = max(per_pool) if per_pool else None
        with counts.cond:
            moved = {pool for s in survivors for pool, t in counts.elected.get(s, {}).items() if t < t_kill}
        result = {
            "pools": pools,
            "members": members,
            "lead_share": lead_share,
            "ttl_s": ttl,
            "heartbeat_s": round(ttl / 3, 4),
            "setup_s": round(setup_s, 2),
            "steady": steady,
            "redis_commands_per_s_per_member": round(steady["commands_per_s"] / (pools * members), 3),
            "workers": workers,
            "worker_cpu_pct_total": round(sum(w["cpu_pct"] for w in workers.values()), 2),
            "worker_rss_mb_max": max(w["rss_mb"] for w in workers.values()),
            "pools_whose_lead_moved_before_the_kill": len(moved),
            "worker_warnings": warning_counts(log),
            "mass_kill": {
                "all_led_again": led,
                "pools_led_by_killed_process": len(held),
                "pools_led_again": len(firsts),
                "all_led_from_kill_s": None if last is None else round(last - t_kill, 4),
                # the bound: each pool of the killed process led again within the lease + 1 s
                "bound_s": ttl + 1,
                "pools_led_again_within_bound": sum(1 for t in per_pool if t - t_kill <= ttl + 1),
                "all_within_bound": led and last is not None and last - t_kill <= ttl + 1,
                "all_led_from_last_expiry_s": None if last is None or not expiries else round(last - max(expiries), 4),
                "per_pool_from_kill_s": summary([t - t_kill for t in per_pool], digits=4),
                "per_pool_from_expiry_ms": summary(
                    [t - expiry_of[pool] for pool, t in firsts.items() if pool in expiry_of], scale=1e3
                ),
                "lease_expiry_spread_s": round(max(expiries) - min(expiries), 4) if expiries else None,
                "pools_held_by_killed_process_after": sum(1 for h in holders if h == labels[0]),
                "pools_vacant_after": sum(1 for h in holders if h is None),
                "during": {
                    "wall_s": round(recovery_wall, 3),
                    "redis_commands_per_s": recovery["commands_per_s"],
                    "redis_cpu_pct": recovery["redis_cpu_pct"],
                    "by_command_per_s": recovery["by_command_per_s"],
                    "survivor_cpu_pct": recovery_cpu,
                },
            },
        }  # fmt: skip
        return result
    finally:
        procs.close()
        client.close()
