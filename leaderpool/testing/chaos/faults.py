"""The faults a chaos run injects, and the order they come in.

Each fault is a function that applies itself to the pool, holds for its duration (drawn from the
run's random generator, in leases), undoes itself, and returns a :class:`~.timeline.Fault`
saying when. Kinds come from shuffled decks of every kind, so each run of ``len(KINDS)``
faults has one of each, in an order the seed decides.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from leaderpool.testing.chaos import skewed_clock
from leaderpool.testing.chaos.pool import ChaosPool
from leaderpool.testing.chaos.tail import ActTail
from leaderpool.testing.chaos.timeline import DATA_LOSS, FLUSHALL, FRESH_FIRST, Fault
from leaderpool.testing.processes import Child

CLOCK_BACK, CLOCK_BACK_CUT = "clock_back", "clock_back_cut"
EXIT_REFUSED = 2
"""A worker's exit code when its member id is held by another live process (or a config error)."""
LEADER_SHARE = 0.75
"""How often a fault that targets one member targets the leader."""


@dataclass
class Stage:
    """What a fault works on."""

    pool: ChaosPool
    rng: random.Random
    tail: ActTail
    ttl_s: float
    recovery_s: float
    """The longest a fault waits for the pool to act again before it undoes itself."""

    def leases(self, low: float, high: float) -> float:
        return self.ttl_s * self.rng.uniform(low, high)


def _fault(
    stage: Stage, kind: str, target: str | None, act: Callable[[], tuple[float, float, dict[str, Any]]]
) -> Fault:
    leader, term = stage.pool.leader()
    start, healed, detail = act()
    return Fault(kind, target, start, healed, leader, term if leader is not None else None, detail)


def _informed(stage: Stage, name: str) -> dict[str, Any]:
    """Wait until a restarted member has read the pool (so it knows its term): one fault at a
    time. A fresh process that meets an emptied Redis first is a fault of its own (fresh_first)."""
    if stage.pool.wait_until_informed(name, stage.recovery_s):
        return {}
    return {"not_informed_within_s": stage.recovery_s}


def sigkill(stage: Stage) -> Fault:
    """SIGKILL; once someone acts again, the member is started again (a supervisor's restart)."""
    name = stage.pool.pick(stage.rng, LEADER_SHARE)

    def act() -> tuple[float, float, dict[str, Any]]:
        proc = stage.pool.proc(name)
        sent = proc.kill()
        stage.tail.wait_for_act_after(sent, stage.recovery_s)
        stage.pool.start_worker(name)
        return sent, time.time(), _informed(stage, name)

    return _fault(stage, "sigkill", name, act)


def sigterm(stage: Stage) -> Fault:
    """SIGTERM (a kind shutdown: the lead is handed over), then started again once it exited."""
    name = stage.pool.pick(stage.rng, LEADER_SHARE)

    def act() -> tuple[float, float, dict[str, Any]]:
        proc = stage.pool.proc(name)
        sent = proc.terminate()
        try:
            code = proc.wait(stage.recovery_s)
        except Exception:  # it did not exit: a finding of its own
            proc.kill()
            code = None
        stage.pool.start_worker(name)
        return sent, time.time(), {"exit_code": code, **_informed(stage, name)}

    return _fault(stage, "sigterm", name, act)


def restart(stage: Stage) -> Fault:
    """SIGKILL and an immediate start of a new process with the same member id."""
    name = stage.pool.pick(stage.rng, LEADER_SHARE)

    def act() -> tuple[float, float, dict[str, Any]]:
        proc = stage.pool.proc(name)
        sent = proc.kill()
        stage.pool.start_worker(name)
        return sent, time.time(), _informed(stage, name)

    return _fault(stage, "restart", name, act)


def sigstop(stage: Stage) -> Fault:
    """SIGSTOP for longer than the lease (1.2 to 2.5 leases), then SIGCONT."""
    name = stage.pool.pick(stage.rng, LEADER_SHARE)
    hold = stage.leases(1.2, 2.5)

    def act() -> tuple[float, float, dict[str, Any]]:
        member = stage.pool.members[name]
        assert member.proc is not None
        sent = member.proc.signal(signal.SIGSTOP)
        time.sleep(hold)
        member.proc.signal(signal.SIGCONT)
        return sent, time.time(), {"hold_s": round(hold, 3)}

    return _fault(stage, "sigstop", name, act)


def duplicate_id(stage: Stage) -> Fault:
    """A second process under a live member's id (a copied unit, one LEADERPOOL_MEMBER_ID for two
    hosts): it must be refused (exit 2) and never act; the member keeps its lead."""
    name = stage.pool.pick(stage.rng, LEADER_SHARE)

    def act() -> tuple[float, float, dict[str, Any]]:
        twin = stage.pool.start_twin(name)
        start = time.time()
        code = _exit_code(twin, stage.recovery_s)
        return start, time.time(), {"twin_exit": code, "refused": code == EXIT_REFUSED}

    return _fault(stage, "duplicate_id", name, act)


def frozen_restart(stage: Stage) -> Fault:
    """SIGSTOP a member, start its id again (a supervisor that gave up on it), and SIGCONT it 0.3 to
    1.8 leases later: woken within its lease it keeps its id and the newcomer is refused; woken
    after, the newcomer leads in a new term and the old process finds its lead lapsed (exit 2).
    Never both acting, and never the old term inherited."""
    name = stage.pool.pick(stage.rng, LEADER_SHARE)
    hold = stage.leases(0.3, 1.8)

    def act() -> tuple[float, float, dict[str, Any]]:
        old = stage.pool.proc(name)
        sent = old.signal(signal.SIGSTOP)
        twin = stage.pool.start_twin(name)
        time.sleep(hold)
        old.signal(signal.SIGCONT)
        deadline = time.time() + stage.recovery_s
        while old.alive() and twin.alive() and time.time() < deadline:
            time.sleep(0.05)
        detail: dict[str, Any] = {"hold_s": round(hold, 3)}
        if old.alive() and twin.alive():  # a finding: the id is held twice
            detail["both_alive"] = True
            twin.kill()
        survivor = old if old.alive() else twin
        detail["kept"] = "old" if survivor is old else "new"
        detail["other_exit"] = _exit_code(twin if survivor is old else old, stage.recovery_s)
        stage.pool.adopt(name, survivor)
        return sent, time.time(), detail

    return _fault(stage, "frozen_restart", name, act)


def _exit_code(proc: Child, timeout: float) -> int | None:
    """Its exit code; None (and SIGKILLed) if it still ran after ``timeout``."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return None


def partition(stage: Stage) -> Fault:
    """Cut one member off (its Redis path and its liveness endpoint go silent) for 1.5 to 3 leases."""
    name = stage.pool.pick(stage.rng, LEADER_SHARE)
    hold = stage.leases(1.5, 3.0)

    def act() -> tuple[float, float, dict[str, Any]]:
        member = stage.pool.members[name]
        start = time.time()
        member.redis_proxy.blackhole()
        member.liveness_proxy.blackhole()
        time.sleep(hold)
        member.redis_proxy.heal()
        member.liveness_proxy.heal()
        return start, time.time(), {"hold_s": round(hold, 3)}

    return _fault(stage, "partition", name, act)


def partition_all(stage: Stage) -> Fault:
    """Cut every member off Redis for 1.5 to 3 leases: nobody can lead. What each sent meanwhile
    waits in the proxies and reaches Redis, in order, when healed, as TCP delivers what it
    retransmitted: the old leader's last writes land late, and the fence must order them."""
    hold = stage.leases(1.5, 3.0)

    def act() -> tuple[float, float, dict[str, Any]]:
        start = time.time()
        for member in stage.pool.members.values():
            member.redis_proxy.blackhole()
        time.sleep(hold)
        for member in stage.pool.members.values():
            member.redis_proxy.heal()
        return start, time.time(), {"hold_s": round(hold, 3)}

    return _fault(stage, "partition_all", None, act)


def latency(stage: Stage) -> Fault:
    """Add 5 to 30% of a lease each way, to one member's Redis path (or to everyone's), for 1 to 3 leases."""
    everyone = stage.rng.random() < 0.3
    name = None if everyone else stage.pool.pick(stage.rng, LEADER_SHARE)
    delay, hold = stage.leases(0.05, 0.3), stage.leases(1.0, 3.0)

    def act() -> tuple[float, float, dict[str, Any]]:
        proxies = [m.redis_proxy for n, m in stage.pool.members.items() if everyone or n == name]
        start = time.time()
        for proxy in proxies:
            proxy.set_delay(delay)
        time.sleep(hold)
        for proxy in proxies:
            proxy.set_delay(0.0)
        return start, time.time(), {"delay_ms": round(delay * 1000, 1), "hold_s": round(hold, 3)}

    return _fault(stage, "latency", name, act)


def reset(stage: Stage) -> Fault:
    """Reset every Redis connection of one member (RST), as a middlebox or a flaky NIC can."""
    name = stage.pool.pick(stage.rng, LEADER_SHARE)

    def act() -> tuple[float, float, dict[str, Any]]:
        start = time.time()
        stage.pool.members[name].redis_proxy.reset_clients()
        return start, time.time(), {}

    return _fault(stage, "reset", name, act)


def liveness_reset(stage: Stage) -> Fault:
    """Reset the connections to one member's liveness endpoint while it lives: a trigger that
    Redis does not confirm (no takeover may follow)."""
    name = stage.pool.pick(stage.rng, LEADER_SHARE)

    def act() -> tuple[float, float, dict[str, Any]]:
        start = time.time()
        stage.pool.members[name].liveness_proxy.reset_clients()
        return start, time.time(), {}

    return _fault(stage, "liveness_reset", name, act)


def redis_restart(stage: Stage) -> Fault:
    """Kill redis-server and start it again, empty, on the same port: Redis without persistence
    (its append-only file removed) lost its data."""

    def act() -> tuple[float, float, dict[str, Any]]:
        start = time.time()
        stage.pool.redis.restart()
        return start, time.time(), {}

    return _fault(stage, DATA_LOSS, None, act)


def redis_restart_aof(stage: Stage) -> Fault:
    """Kill redis-server (SIGKILL) and start it again from its append-only file (synced before
    each reply): every connection drops, no acknowledged write is lost, the leader key and the
    term counter come back with their expiry."""

    def act() -> tuple[float, float, dict[str, Any]]:
        start = time.time()
        stage.pool.redis.restart(keep_data=True)
        return start, time.time(), {}

    return _fault(stage, "redis_restart_aof", None, act)


def flushall(stage: Stage) -> Fault:
    """FLUSHALL: every key gone while every connection stays up (an operator's mistake, a script
    run against the wrong database)."""

    def act() -> tuple[float, float, dict[str, Any]]:
        client = redis.Redis(port=stage.pool.redis.port, socket_timeout=5)
        try:
            start = time.time()
            client.flushall()
            return start, time.time(), {}
        finally:
            client.close()

    return _fault(stage, FLUSHALL, None, act)


def fresh_first(stage: Stage) -> Fault:
    """Redis loses its data while every member but one is cut off, and that one is a process
    that just started (it remembers no term): it reaches the empty Redis first. The others are
    healed once it acts (or after the recovery bound). Not in the default plan: it breaks
    "terms only grow" (see docs/operations/chaos-testing.md), which the checker reports."""
    name = stage.pool.pick(stage.rng, 0.0)

    def act() -> tuple[float, float, dict[str, Any]]:
        others = [m for n, m in stage.pool.members.items() if n != name]
        for member in others:
            member.redis_proxy.blackhole()
        proc = stage.pool.proc(name)
        proc.kill()
        start = time.time()
        stage.pool.redis.restart()
        stage.pool.start_worker(name)
        acted = stage.tail.wait_for_act_after(start, stage.recovery_s, path=stage.pool.members[name].log_path)
        for member in others:
            member.redis_proxy.heal()
        return start, time.time(), {"fresh_member_acted": acted is not None}

    return _fault(stage, FRESH_FIRST, name, act)


def _offsets(path: Path) -> tuple[float, float]:
    try:
        raw = json.loads(path.read_text())
        return float(raw["wall_s"]), float(raw["monotonic_s"])
    except (OSError, ValueError, KeyError):
        return 0.0, 0.0


def _jump(stage: Stage, name: str, wall_s: float, monotonic_s: float) -> None:
    member = stage.pool.members[name]
    skewed_clock.write(member.clock_path, wall_s=wall_s, monotonic_s=monotonic_s)
    stage.pool.proc(name).signal(signal.SIGUSR1)


def clock_jump(stage: Stage) -> Fault:
    """One member's clocks jump (:mod:`.skewed_clock`): its wall clock by 2 to 10 leases either
    way, and its monotonic clock forward by 0.5 to 2 leases (a suspended VM's); after 1 to 2
    leases the wall clock jumps back. Neither may matter to safety: the core reads only the
    monotonic clock and Redis's, and a clock running ahead only ends a lead early."""
    name = stage.pool.pick(stage.rng, LEADER_SHARE)
    wall, ahead, hold = stage.leases(2, 10) * stage.rng.choice((-1, 1)), stage.leases(0.5, 2), stage.leases(1, 2)

    def act() -> tuple[float, float, dict[str, Any]]:
        _, mono = _offsets(stage.pool.members[name].clock_path)
        start = time.time()
        _jump(stage, name, wall, mono + ahead)
        time.sleep(hold)
        _jump(stage, name, 0.0, mono + ahead)
        return start, time.time(), {"wall_s": round(wall, 3), "monotonic_s": round(ahead, 3)}

    return _fault(stage, "clock_jump", name, act)


def clock_back(stage: Stage) -> Fault:
    """The leader's monotonic clock jumps *back* 2 to 3 leases: it believes its lease has that
    much longer to run. Not in the default plan: no OS moves CLOCK_MONOTONIC back, and the
    guarantees assume a clock that advances (see docs/design/safety.md); the checker is expected
    to report the overlap it causes."""
    name = stage.pool.pick(stage.rng, 1.0)
    back, hold = stage.leases(2, 3), stage.leases(3, 4)

    def act() -> tuple[float, float, dict[str, Any]]:
        wall, mono = _offsets(stage.pool.members[name].clock_path)
        start = time.time()
        _jump(stage, name, wall, mono - back)
        time.sleep(hold)
        return start, time.time(), {"monotonic_s": -round(back, 3)}

    return _fault(stage, CLOCK_BACK, name, act)


def clock_back_cut(stage: Stage) -> Fault:
    """:func:`clock_back`, and the leader cut off Redis meanwhile, so that no notification of
    the next claim can reach it: it acts on past its lease while the next leader acts. Not in
    the default plan: a split brain the guarantees do not cover (a clock that goes back), made
    on purpose to show that the checkers catch one in a real run."""
    name = stage.pool.pick(stage.rng, 1.0)
    back, hold = stage.leases(2, 3), stage.leases(4, 5)

    def act() -> tuple[float, float, dict[str, Any]]:
        member = stage.pool.members[name]
        wall, mono = _offsets(member.clock_path)
        start = time.time()
        member.redis_proxy.blackhole()
        _jump(stage, name, wall, mono - back)
        time.sleep(hold)
        member.redis_proxy.heal()
        return start, time.time(), {"monotonic_s": -round(back, 3), "hold_s": round(hold, 3)}

    return _fault(stage, CLOCK_BACK_CUT, name, act)


FAULTS: dict[str, Callable[[Stage], Fault]] = {
    "sigkill": sigkill,
    "sigstop": sigstop,
    "sigterm": sigterm,
    "restart": restart,
    "duplicate_id": duplicate_id,
    "frozen_restart": frozen_restart,
    "partition": partition,
    "partition_all": partition_all,
    "latency": latency,
    "reset": reset,
    "liveness_reset": liveness_reset,
    DATA_LOSS: redis_restart,
    "redis_restart_aof": redis_restart_aof,
    FLUSHALL: flushall,
    "clock_jump": clock_jump,
    FRESH_FIRST: fresh_first,
    CLOCK_BACK: clock_back,
    CLOCK_BACK_CUT: clock_back_cut,
}
ON_DEMAND = (FRESH_FIRST, CLOCK_BACK, CLOCK_BACK_CUT)
"""Kinds outside the guarantees' assumptions, run only when named (``--kinds``)."""
KINDS = tuple(k for k in FAULTS if k not in ON_DEMAND)
"""The default plan's kinds: every fault under which the guarantees (docs/design/guarantees.md) promise safety."""


def plan(rng: random.Random, kinds: tuple[str, ...] = KINDS) -> Iterator[str]:
    """Endless kinds: each deck of ``kinds`` shuffled, one deck after another."""
    while True:
        deck = list(kinds)
        rng.shuffle(deck)
        yield from deck
