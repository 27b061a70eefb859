"""A worker's --task under the kit: the worker's own task runner on the kit's Redis and clock."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from leaderpool.testkit.kit_pool import KitPool

PoolFactory = Callable[..., KitPool]


class TestWorkerTasks:
    def test_an_async_task_runs_while_leading_and_sleeps_on_the_kit_clock(self, leaderpool_pool: PoolFactory) -> None:
        """The task starts when elected, loops on ctx.sleep (simulated time), and stops with the lead."""
        ticks: list[tuple[str, int]] = []
        stopped: list[str] = []

        async def task(ctx: Any) -> None:
            while not await ctx.sleep(1.0):
                ticks.append((ctx.member, ctx.term))
            stopped.append(ctx.member)

        pool = leaderpool_pool("scheduler", members=2, task=task)
        first = pool.wait_for_leader()
        pool.advance(3.0)
        assert [(first, 1)] * 3 == ticks
        pool.freeze(first)
        pool.advance(3.0)  # frozen: the lead lapses; the other member's task starts and ticks
        second = pool.leader
        assert second not in (None, first)
        assert (second, 2) in ticks
        pool.thaw(first)
        assert first in stopped
        pool.assert_single_leader()

    def test_a_task_per_slot_with_every(self, leaderpool_pool: PoolFactory) -> None:
        """--every: the task runs once per slot, on the leader, as the worker runs it."""
        slots: list[float] = []

        async def digest(ctx: Any) -> None:
            slots.append(ctx.slot)

        pool = leaderpool_pool("reports", members=1, task=digest, worker_args=["--every", "1"])
        pool.wait_for_leader()
        pool.advance(3.0)
        assert 3 <= len(slots) <= 4
        assert [1.0] * (len(slots) - 1) == [b - a for a, b in itertools.pairwise(slots)]

    def test_a_crashing_task_steps_its_member_down(self, leaderpool_pool: PoolFactory) -> None:
        """A task named as --task takes it, which raises: the member steps down (task_failed)."""
        pool = leaderpool_pool("p", members=2, task="tests.support.worker_tasks:crash_soon")
        assert "m0" == pool.wait_for_leader()
        pool.advance(0.3)  # the task sleeps 0.2 s, then raises: the lead moves on
        assert "m1" == pool.leader
        events = [(m, k, term, r) for _, m, k, term, r in pool.history()]
        assert [("m0", "elected", 1, None), ("m0", "revoked", 1, "task_failed"), ("m1", "elected", 2, None)] == events
        pool.assert_single_leader()
