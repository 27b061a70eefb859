"""``leaderpool-worker --task MODULE:FUNCTION --every SECONDS`` (or ``--cron EXPR``): the task
runs once per slot of a schedule (:mod:`leaderpool.schedules.schedule`), on the leader only, each slot
claimed in Redis under the leader's term (:mod:`leaderpool.schedules.periodic`).

:func:`scheduled` wraps the task into the leader task the worker runs while it leads: it walks
the schedule's slots -- waiting on ``ctx.sleep`` (so the end of the lead interrupts it), claiming
each slot, setting ``ctx.slot`` and calling the task once per slot, recording how the run ended.
An async task stays async, a thread task runs every slot in its thread. A run that raises is a
task crash (the worker's crash policy: step down, rejoin as the youngest); its slot is recorded
``failed`` and is not run again.

With ``--overlap allow`` or ``cancel_other`` an async task's runs may start while an earlier one
goes on (each with its own copy of the context, ``ctx.slot`` its own); a thread task runs one slot
at a time, so those two are refused for it.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import time
from typing import Any

from leaderpool.backend.protocol import LeaderValue
from leaderpool.errors import ConfigError
from leaderpool.schedules.schedule import Overlap, Schedule
from leaderpool.schedules.schedule_store import ScheduleStore
from leaderpool.schedules.slot_walker import SlotWalker, Wait
from leaderpool.worker.task_context import AsyncTaskContext, TaskContext, ThreadTaskContext
from leaderpool.worker.tasks import Task, is_async


def _walker(election: Any, schedule: Schedule, grace_s: float, ctx: TaskContext) -> SlotWalker:
    store = ScheduleStore(election.client, election.keys)
    clock = getattr(election, "clock", None)  # the election's wall clock (a test's kit moves it)
    wall = clock.wall if clock is not None else time.time
    return SlotWalker(store, schedule, LeaderValue(ctx.term, ctx.member), grace_s, ctx.log, wall)


BESIDE = (Overlap.ALLOW, Overlap.CANCEL_OTHER)
"""The overlap policies whose runs do not wait for the one before."""


async def _run_one_async(task: Task, ctx: AsyncTaskContext, walker: SlotWalker, slot_ms: int) -> None:
    ctx.slot = slot_ms / 1000
    await walker.run(slot_ms, lambda: task(ctx), lambda: ctx.stopping)


def scheduled(task: Task, schedule: Schedule, election: Any, grace_s: float) -> Task:
    """``task`` run once per slot of ``schedule`` while the worker leads."""
    if is_async(task):

        @functools.wraps(task)
        async def run_async(ctx: AsyncTaskContext) -> None:
            walker = _walker(election, schedule, grace_s, ctx)
            beside: set[asyncio.Future[None]] = set()  # runs that did not wait (allow, cancel_other)
            try:
                while not ctx.stopping:
                    for done in [run for run in beside if run.done()]:
                        beside.discard(done)
                        if not done.cancelled() and (failure := done.exception()) is not None:
                            raise failure  # a task crash, as when the run was awaited
                    step = await walker.step()
                    if isinstance(step, Wait):
                        await ctx.sleep(step.seconds)
                        continue
                    if schedule.overlap not in BESIDE:
                        await _run_one_async(task, ctx, walker, step.slot_ms)
                        continue
                    if schedule.overlap is Overlap.CANCEL_OTHER:
                        for run in beside:
                            run.cancel()
                        await asyncio.gather(*beside, return_exceptions=True)
                        beside.clear()
                    beside.add(asyncio.ensure_future(_run_one_async(task, copy.copy(ctx), walker, step.slot_ms)))
            except BaseException:  # cancelled past --task-grace, or a run failed: the others end too
                for run in beside:
                    run.cancel()
                raise
            finally:  # the lead is over: the runs still going end as a lone run would (or are cancelled with us)
                await asyncio.gather(*beside, return_exceptions=True)

        return run_async

    if schedule.overlap in BESIDE:
        raise ConfigError(
            f"--overlap {schedule.overlap.value} needs an async task (async def): a thread task runs one slot at a time"
        )

    @functools.wraps(task)
    def run_in_thread(ctx: ThreadTaskContext) -> None:
        walker = _walker(election, schedule, grace_s, ctx)
        while not ctx.stopping:
            step = ctx.call_on_loop(walker.step(), timeout=None)
            if isinstance(step, Wait):
                ctx.sleep(step.seconds)
                continue
            ctx.slot = step.slot_ms / 1000
            walker.log.info("slot_started", slot_ms=step.slot_ms)
            try:
                task(ctx)
            except BaseException:
                ctx.call_on_loop(walker.finish(step.slot_ms, "failed"), timeout=None)
                raise
            outcome = "stopped" if ctx.stopping else "ok"
            ctx.call_on_loop(walker.finish(step.slot_ms, outcome), timeout=None)
            walker.log.info("slot_finished", slot_ms=step.slot_ms, outcome=outcome)

    return run_in_thread
