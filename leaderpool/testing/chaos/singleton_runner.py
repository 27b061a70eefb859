"""The singletons' chaos run: a pool of workers running many singletons (``--singletons-count N``,
each run doing unfenced acts and fenced increments, :mod:`.singleton_task`) under the chaos
suite's faults and rebalances, then the per-singleton checker (:mod:`.singleton_checker`).

Rebalances are faults of their own here: ``leave_join`` (a member stops kindly, SIGTERM, its
singletons are handed over; 0.5 to 1.5 leases later it starts again and takes its share back) and
``move`` (``leaderpool-cli move POOL NAME MEMBER`` for one to three singletons, the real CLI,
then the pins are lifted so the placer may balance them again). After each fault the runner
waits until every singleton acts again (the report times the gaps from the ownerships).
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

from leaderpool.singletons.singleton_store import SingletonStore
from leaderpool.testing.chaos import faults
from leaderpool.testing.chaos.pool import PACKAGE_ROOT, ChaosPool
from leaderpool.testing.chaos.singleton_checker import SingletonFindings, check
from leaderpool.testing.chaos.singleton_task import TASK, counter_key
from leaderpool.testing.chaos.singleton_timeline import SingletonSettings, SingletonTimeline, read_logs
from leaderpool.testing.chaos.tail import ActTail
from leaderpool.testing.chaos.timeline import Fault
from leaderpool.testing.processes import clean_env
from leaderpool.util.log import get_logger

log = get_logger("leaderpool.chaos")

REBALANCES = ("leave_join", "move")
KINDS = (
    "sigkill", "sigstop", "sigterm", "restart", "duplicate_id", "frozen_restart", "partition", "partition_all",
    "latency", "reset", "liveness_reset", "redis_restart_aof", "clock_jump", *REBALANCES,
)  # fmt: skip
"""Every fault of the election's default plan but the data losses (a Redis that lost its data
forgets the singletons' terms too: the documented window, not judged here), and the rebalances."""


class SingletonTail(ActTail):
    """:attr:`latest` is the time by which *every* singleton had acted: "after this instant each
    of them acted" is what the runner waits for."""

    def __init__(self, paths: Any, names: list[str]) -> None:
        super().__init__(paths)
        self._per = dict.fromkeys(names, 0.0)

    def take(self, path: Path, fields: list[bytes]) -> None:
        if len(fields) == 6 and fields[0] == b"sact":
            try:
                name, t = fields[1].decode(), float(fields[5])
            except ValueError:
                return
            if name in self._per and t > self._per[name]:
                self._per[name] = t

    def poll(self) -> float:
        super().poll()
        self.latest = min(self._per.values(), default=0.0)
        return self.latest


@dataclass(frozen=True)
class SingletonRunConfig:
    seed: int
    duration_s: float = 60.0
    max_faults: int = 10_000
    members: int = 4
    singletons: int = 32
    ttl_s: float = 1.0
    workdir: Path | None = None
    redis_binary: str | None = None
    kinds: tuple[str, ...] = KINDS

    @property
    def renew_deadline_s(self) -> float:
        return (self.ttl_s + self.ttl_s / 3) / 2

    @property
    def recovery_s(self) -> float:
        """The longest the runner waits for every singleton to act again: generous (a loaded machine)."""
        return 10 * self.ttl_s * 4 / 3 + 10

    @property
    def names(self) -> list[str]:
        return [f"shard-{i}" for i in range(self.singletons)]


def leave_join(stage: faults.Stage) -> Fault:
    """A member leaves kindly (SIGTERM: each of its singletons stopped, saved, handed over), stays
    away 0.5 to 1.5 leases, and joins again (the placer gives it its share back)."""
    name = stage.pool.pick(stage.rng, 0.25)
    hold = stage.leases(0.5, 1.5)

    def act() -> tuple[float, float, dict[str, Any]]:
        proc = stage.pool.proc(name)
        sent = proc.terminate()
        try:
            code: int | None = proc.wait(stage.recovery_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = None
        stage.tail.wait_for_act_after(time.time(), stage.recovery_s)
        time.sleep(hold)
        stage.pool.start_worker(name)
        informed = stage.pool.wait_until_informed(name, stage.recovery_s)
        return sent, time.time(), {"exit_code": code, "hold_s": round(hold, 3), "informed": informed}

    return faults._fault(stage, "leave_join", name, act)


def move(stage: faults.Stage, names: list[str]) -> Fault:
    """``leaderpool-cli move`` one to three singletons to a member each (a kind hand-off), then
    lift the pins."""
    pool = stage.pool
    picked = stage.rng.sample(names, stage.rng.randint(1, 3))

    def act() -> tuple[float, float, dict[str, Any]]:
        start, moved = time.time(), []
        url = f"redis://127.0.0.1:{pool.redis.port}/0"
        for singleton in picked:
            target = stage.rng.choice(sorted(n for n, m in pool.members.items() if m.running()))
            argv = [sys.executable, "-m", "leaderpool.cli", "--redis", url, "move", pool.pool, singleton, target,
                    "--timeout", f"{stage.recovery_s:g}"]  # fmt: skip
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=stage.recovery_s + 30, cwd=PACKAGE_ROOT, env=clean_env()
            )
            moved.append({"singleton": singleton, "to": target, "exit": done.returncode})
        asyncio.run(_unpin(url, pool.pool, picked))
        return start, time.time(), {"moves": moved}

    return faults._fault(stage, "move", None, act)


async def _unpin(url: str, pool: str, names: list[str]) -> None:
    client = redis.asyncio.Redis.from_url(url, socket_timeout=5)
    try:
        store = SingletonStore(client, pool)
        for name in names:
            await store.pin(name, "")
    finally:
        await client.aclose()


def run(config: SingletonRunConfig, say: Callable[[str], None] = print) -> tuple[SingletonTimeline, SingletonFindings]:
    """Run the pool under faults and rebalances; returns its timeline and the checker's findings."""
    if config.workdir is not None:
        return _run(config, config.workdir, say)
    with tempfile.TemporaryDirectory(prefix="leaderpool-chaos-singletons-") as tmp:
        return _run(config, Path(tmp), say)


def _run(
    config: SingletonRunConfig, workdir: Path, say: Callable[[str], None]
) -> tuple[SingletonTimeline, SingletonFindings]:
    say(f"chaos singletons: seed {config.seed}, {config.members} members, {config.singletons} singletons, "
        f"ttl {config.ttl_s:g}s, {config.duration_s:g}s of faults")  # fmt: skip
    pool = ChaosPool(
        workdir, size=config.members, ttl_s=config.ttl_s, redis_binary=config.redis_binary, pool="chaos",
        task=TASK, worker_args=("--singletons-count", str(config.singletons)),
    )  # fmt: skip
    recorded: list[Fault] = []
    finals: dict[str, int | None] = {}
    started = time.time()
    ended = started
    names = config.names
    table: dict[str, Callable[[faults.Stage], Fault]] = {
        **faults.FAULTS, "leave_join": leave_join, "move": lambda s: move(s, names)
    }  # fmt: skip
    try:
        pool.start()
        tail = SingletonTail([m.log_path for m in pool.members.values()], names)
        if tail.wait_for_act_after(0, config.recovery_s + 30) is None:
            raise RuntimeError(f"not every singleton acted within {config.recovery_s + 30:g}s of the start")
        for name in pool.members:
            if not pool.wait_until_informed(name, config.recovery_s + 30):
                raise RuntimeError(f"{name} did not read the pool within {config.recovery_s + 30:g}s of the start")
        stage = faults.Stage(pool, random.Random(config.seed + 1), tail, config.ttl_s, config.recovery_s)
        kinds = faults.plan(random.Random(config.seed), config.kinds)
        began = time.monotonic()
        while time.monotonic() - began < config.duration_s and len(recorded) < config.max_faults:
            fault = table[next(kinds)](stage)
            back = tail.wait_for_act_after(fault.healed + config.renew_deadline_s, config.recovery_s)
            if back is None:
                fault.detail["not_all_acting_within_s"] = config.recovery_s
            # the next fault meets a balanced pool (the rebalance after a return moves one at a time)
            fault.detail["balanced_after_s"] = _wait_balanced(pool, config.singletons, config.recovery_s)
            recorded.append(fault)
            log.info("fault_done", kind=fault.kind, target=fault.target)
            say(f"chaos singletons: {len(recorded):3d} {fault.kind:<17} {fault.target or 'all':<4}")
            time.sleep(stage.leases(0.5, 1.5))
        ended = time.time()
        pool.finals()  # every worker SIGKILLed (their kill times recorded), every proxy cut
        finals = _counters(pool.redis.port, pool.pool, names)
    finally:
        kills = {c.pid: c.killed_at for c in pool.group.started if c.killed_at is not None}
        pool.close()
    owned, writes, ops, malformed = read_logs(m.log_path for m in pool.members.values())
    settings = SingletonSettings(config.ttl_s, config.seed, config.members, config.singletons)
    timeline = SingletonTimeline(settings, started, ended, owned, writes, ops, kills, recorded, finals, malformed)
    return timeline, check(timeline)


def _wait_balanced(pool: ChaosPool, count: int, timeout: float) -> float | None:
    """Wait until every singleton runs, on every running member, none holding more than
    ceil(N/M); the seconds it took, None if not within ``timeout``."""
    began = time.monotonic()
    return asyncio.run(_balanced(f"redis://127.0.0.1:{pool.redis.port}/0", pool, count, began + timeout, began))


async def _balanced(url: str, pool: ChaosPool, count: int, deadline: float, began: float) -> float | None:
    client = redis.asyncio.Redis.from_url(url, socket_timeout=5)
    try:
        store = SingletonStore(client, pool.pool)
        while time.monotonic() < deadline:
            running = {n for n, m in pool.members.items() if m.running()}
            try:
                listed = await store.list()
            except (redis.RedisError, OSError):  # Redis restarting: ask again
                await asyncio.sleep(0.05)
                continue
            per = Counter(s.member for s in listed)
            bound = -(-count // max(1, len(running)))
            if None not in per and set(per) == running and max(per.values(), default=0) <= bound:
                return round(time.monotonic() - began, 3)
            await asyncio.sleep(0.05)
        return None
    finally:
        await client.aclose()


def _counters(port: int, pool: str, names: list[str]) -> dict[str, int | None]:
    client = redis.Redis(port=port, socket_timeout=5)
    try:
        raw = client.mget([counter_key(pool, n) for n in names])
    finally:
        client.close()
    return {n: None if v is None else int(v) for n, v in zip(names, raw, strict=True)}
