"""One chaos run: start the pool, inject faults one after another from a seed, let the pool
recover after each, then gather the timeline and check it.

The seed fixes the order of fault kinds (its own generator) and the draws that shape each
fault; which member is the leader at a given moment depends on timing, so a rerun with the
same seed replays the same plan on a pool that may differ in detail.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from leaderpool.testing.chaos import faults
from leaderpool.testing.chaos.checker import Findings, check
from leaderpool.testing.chaos.pool import ChaosPool
from leaderpool.testing.chaos.tail import ActTail
from leaderpool.testing.chaos.timeline import Fault, Settings, Timeline, read_act_logs, read_ops
from leaderpool.util.log import get_logger

log = get_logger("leaderpool.chaos")


@dataclass(frozen=True)
class RunConfig:
    seed: int
    duration_s: float = 60.0
    """Faults start while the run is younger than this."""
    max_faults: int = 10_000
    members: int = 5
    ttl_s: float = 1.0
    workdir: Path | None = None
    """Where the act logs and the workers' stderr go (a temporary directory, removed, if None)."""
    redis_binary: str | None = None
    kinds: tuple[str, ...] = faults.KINDS

    @property
    def heartbeat_s(self) -> float:
        return self.ttl_s / 3

    @property
    def renew_deadline_s(self) -> float:
        return (self.ttl_s + self.heartbeat_s) / 2

    @property
    def recovery_s(self) -> float:
        """The longest the runner waits for a leader to act after a fault: generous, the
        machine may be loaded."""
        return 10 * (self.ttl_s + self.heartbeat_s) + 10


def run(config: RunConfig, say: Callable[[str], None] = print) -> tuple[Timeline, Findings]:
    """Run the pool under faults; returns its timeline and the checker's findings."""
    if config.workdir is not None:
        return _run(config, config.workdir, say)
    with tempfile.TemporaryDirectory(prefix="leaderpool-chaos-") as tmp:
        return _run(config, Path(tmp), say)


def _run(config: RunConfig, workdir: Path, say: Callable[[str], None]) -> tuple[Timeline, Findings]:
    say(f"chaos: seed {config.seed}, {config.members} members, ttl {config.ttl_s:g}s, {config.duration_s:g}s of faults")
    settings = Settings(config.ttl_s, config.heartbeat_s, config.renew_deadline_s, config.seed, config.members)
    pool = ChaosPool(workdir, size=config.members, ttl_s=config.ttl_s, redis_binary=config.redis_binary)
    recorded: list[Fault] = []
    finals: dict[str, int | None] = {}
    started, mono_offset = time.time(), time.time() - time.monotonic()
    try:
        pool.start()
        tail = ActTail(m.log_path for m in pool.members.values())
        if tail.wait_for_act_after(0, config.recovery_s + 30) is None:  # 5 cold starts on a busy machine
            raise RuntimeError(f"no leader acted within {config.recovery_s + 30:g}s of the start")
        # Every member has read who leads (so it knows the term) before the first fault, as after
        # every restart: a member that knows no term when Redis loses its data is the fault
        # fresh_first, the gap the guarantees name, not one of these (a run began with a Redis
        # restart while one member had not read the pool yet, and it was granted term 1 again).
        for name in pool.members:
            if not pool.wait_until_informed(name, config.recovery_s + 30):
                raise RuntimeError(f"{name} did not read the pool within {config.recovery_s + 30:g}s of the start")
        stage = faults.Stage(pool, random.Random(config.seed + 1), tail, config.ttl_s, config.recovery_s)
        kinds = faults.plan(random.Random(config.seed), config.kinds)
        began = time.monotonic()
        while time.monotonic() - began < config.duration_s and len(recorded) < config.max_faults:
            fault = faults.FAULTS[next(kinds)](stage)
            # a leader acting a renew deadline after the fault was undone: a lead the fault
            # ended (the old leader acting on until its deadline) does not count
            recovered = tail.wait_for_act_after(fault.healed + config.renew_deadline_s, config.recovery_s)
            if recovered is None:
                fault.detail["no_leader_within_s"] = config.recovery_s
            recorded.append(fault)
            log.info("fault_done", kind=fault.kind, target=fault.target, leader=fault.leader, term=fault.leader_term)
            say(f"chaos: {len(recorded):3d} {fault.kind:<14} {fault.target or 'all':<4} "
                 f"(leader {fault.leader}, term {fault.leader_term})")  # fmt: skip
            time.sleep(stage.leases(0.5, 1.5))  # settle: the next fault meets a pool at rest
        ended = time.time()
        finals = pool.finals()
    finally:
        elected = pool.elected
        pool.close()
    logs = [m.log_path for m in pool.members.values()]
    leads, writes, malformed = read_act_logs(logs)
    ops, cut_short = read_ops(logs)
    timeline = Timeline(
        settings, started, ended, leads, writes, elected, recorded, malformed + cut_short, ops, finals, mono_offset
    )
    return timeline, check(timeline)
