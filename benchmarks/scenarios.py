"""One contender's pool of three processes, and the rounds played on it: crash failover
(SIGKILL the leader) and graceful handoff (SIGTERM the leader)."""

from __future__ import annotations

import math
import random
import subprocess
import sys
import time
from collections.abc import Callable
from typing import IO, Any

import redis

from benchmarks.registry import Contender
from benchmarks.timeline import Event, Timeline, acting_intervals, overlaps, parse_line
from leaderpool.testing.processes import Child, ChildGroup


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def lease_expiry(client: redis.Redis, key: str) -> tuple[float | None, int]:
    """When the lease in ``key`` ends (unix s) and its PTTL (ms). Redis 7's PEXPIRETIME gives
    the exact instant (ms); older servers: the instant PTTL was answered plus PTTL."""
    pttl = int(client.pttl(key))
    t = time.time()
    if pttl <= 0:
        return None, pttl
    try:
        at_ms = int(client.pexpiretime(key))
    except redis.ResponseError:
        at_ms = -1
    return (at_ms / 1000 if at_ms > 0 else t + pttl / 1000), pttl


class BenchError(RuntimeError):
    """A scenario could not go on (a pool never settled, a process died at start...)."""


def elected_after(t: float, not_proc: str) -> Callable[[list[Event]], Event | None]:
    def find(events: list[Event]) -> Event | None:
        return next((e for e in events if e.kind == "elected" and e.proc != not_proc and e.t >= t), None)

    return find


class PoolRun:
    """``size`` members of ``contender`` in ``pool``; a killed or stopped slot is restarted with
    a new member id (``<contender>-<slot>-<generation>``)."""

    def __init__(self, contender: Contender, url: str, pool: str, ttl: float, size: int, log: IO[str]) -> None:
        self.contender = contender
        self.url = url
        self.pool = pool
        self.ttl = ttl
        self.timeline = Timeline()
        self.procs = ChildGroup()
        self.slots: list[Child | None] = [None] * size
        self._generation = [0] * size
        self._log = log
        self.redis = redis.Redis.from_url(url)
        self.settle_s = max(0.2, ttl / 4)

    # ---- processes ----

    def spawn(self, slot: int) -> Child:
        gen = self._generation[slot] = self._generation[slot] + 1
        label = f"{self.contender.name}-{slot}-{gen}"
        argv = self.contender.argv(self.url, self.pool, label, self.ttl)
        member = self.procs.start(argv, name=label, stderr=self._log, on_line=self._on_line, on_exit=self._on_exit)
        self.slots[slot] = member
        return member

    def _on_line(self, label: str, line: str) -> None:
        event = parse_line(label, line)
        if event is not None:
            self.timeline.add(event)

    def _on_exit(self, member: Child) -> None:
        self.timeline.mark_ended(member.name, time.time())

    def kill(self, member: Child) -> float:
        """SIGKILL; returns the instant it was sent (the process can act no more after it)."""
        t = member.kill()
        self.timeline.mark_ended(member.name, t)
        return t

    def start(self) -> None:
        for slot in range(len(self.slots)):
            self.spawn(slot)
            time.sleep(0.05)  # start order = join order, so the ranking is the same every run

    def close(self) -> None:
        self.procs.close()
        self.redis.close()

    def slot_of(self, member: Child) -> int:
        return self.slots.index(member)

    def pids(self) -> dict[str, int]:
        return {m.name: m.pid for m in self.slots if m is not None and m.alive()}

    # ---- waiting ----

    def wait_stable(self, timeout: float | None = None) -> Child:
        """Every slot's process runs and has spoken, exactly one acts as leader, and nothing
        happened for ``settle_s``; returns the leader."""
        timeout = timeout if timeout is not None else 10 * self.ttl + 30
        deadline = time.monotonic() + timeout
        current = {m.name: m for m in self.slots if m is not None}
        while time.monotonic() < deadline:
            dead = [label for label, m in current.items() if not m.alive()]
            if dead:
                raise BenchError(f"{self.contender.name}: process {dead[0]} exited; see the log")
            events = self.timeline.events()
            spoke = {e.proc for e in events}
            acting = self.timeline.acting() & set(current)
            quiet = not events or time.time() - max(e.t for e in events) >= self.settle_s
            if set(current) <= spoke and len(acting) == 1 and quiet:
                return current[acting.pop()]
            time.sleep(0.02)
        raise BenchError(f"{self.contender.name}: the pool did not settle within {timeout:.0f}s")

    def _await_new_leader(self, t: float, old: Child) -> Event | None:
        return self.timeline.wait_for(elected_after(t, old.name), timeout=3 * self.ttl + 10)

    def _expiry(self, key: str) -> tuple[float | None, int]:
        return lease_expiry(self.redis, key)

    # ---- rounds ----

    def crash_round(self) -> dict[str, Any]:
        """SIGKILL the leader; the next member acting as leader, from the kill and from the
        lease's expiry in Redis (read right before the kill, and again right after: a renewal
        may land in between, and nobody renews a dead holder's lease)."""
        old = self.wait_stable()
        time.sleep(random.uniform(0, self.ttl / 3))  # any phase of the renewal and polling loops
        key = self.contender.leader_key(self.pool)
        expiry_before, pttl_before = self._expiry(key)
        t_kill = self.kill(old)
        expiry_after, pttl_after = self._expiry(key)  # exact: nobody renews a dead holder's lease
        expiry = expiry_after if expiry_after is not None else expiry_before
        new = self._await_new_leader(t_kill, old)
        self.spawn(self.slot_of(old))
        if new is None:
            return {"ok": False, "pttl_before_ms": pttl_before}
        return {
            "ok": True,
            "from_kill_s": new.t - t_kill,
            "from_expiry_s": None if expiry is None else new.t - expiry,
            "pttl_before_ms": pttl_before,
            "pttl_after_ms": pttl_after,
            "killed": old.name,
            "t_kill": t_kill,
            "t_expiry": expiry,
            "t_elected": new.t,
            "new_leader": new.proc,
        }

    def handoff_round(self) -> dict[str, Any]:
        """SIGTERM the leader; the next member acting as leader, from the signal."""
        old = self.wait_stable()
        time.sleep(random.uniform(0, self.ttl / 3))
        t_term = old.terminate()
        new = self._await_new_leader(t_term, old)
        try:
            old.wait(self.ttl * 3 + 10)
            exited = True
        except subprocess.TimeoutExpired:
            exited = False
            self.kill(old)
        released = next(
            (e.t for e in self.timeline.events() if e.proc == old.name and e.kind == "revoked" and e.t >= t_term), None
        )
        self.spawn(self.slot_of(old))
        if new is None:
            return {"ok": False, "exited": exited}
        return {
            "ok": True,
            "from_signal_s": new.t - t_term,
            "from_revoked_s": None if released is None else new.t - released,
            "exited_cleanly": exited and old.proc.returncode == 0,
            "stopped": old.name,
            "t_signal": t_term,
            "t_revoked": released,
            "t_elected": new.t,
            "new_leader": new.proc,
        }

    def safety(self) -> dict[str, Any]:
        """Moments with two acting leaders over the whole run of this pool."""
        found = overlaps(acting_intervals(self.timeline.events(), dict(self.timeline.ended)))
        return {
            "two_leader_moments": found.count,
            "overlap_total_ms": round(found.total_s * 1000, 3),
            "overlap_worst_ms": None if not found.count else round(found.worst_s * 1000, 3)
            if math.isfinite(found.worst_s) else "open",
            "cases": found.cases[:20],
            "leaderships": sum(1 for e in self.timeline.events() if e.kind == "elected"),
        }  # fmt: skip
