"""``ctx.state`` and ``ctx.save_state(...)`` for worker tasks: the pool's leader state
(:mod:`leaderpool.state`), read before the task starts and saved under the task's own term.

:func:`with_leader_state` wraps a task (async or thread, which it stays) so that each time it
starts, the state the previous leader saved is read first (retried while Redis is unreachable,
for as long as the lead lasts) and ``ctx.save_state`` saves through the election, refused once
the task's term is over.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from leaderpool.backend.redis_errors import RETRYABLE
from leaderpool.errors import NotLeader
from leaderpool.state import LeaderState
from leaderpool.worker.task_context import AsyncTaskContext, SaveState, ThreadTaskContext
from leaderpool.worker.tasks import Task, is_async

READ_RETRY_MAX_S = 1.0


def checked_save_state(election: Any) -> SaveState:
    """The election's ``save_state``, refused once the caller's term is no longer the current one
    (checked on the loop as the save is sent; Redis checks the lead itself in the same script)."""

    async def save(term: int, data: Any) -> LeaderState:
        if election.term != term or not election.is_leader:
            raise NotLeader(f"term {term} is over", pool=election.pool, member=election.member_id, term=term)
        saved: LeaderState = await election.save_state(data)
        return saved

    return save


async def read_for(election: Any, ctx: AsyncTaskContext | ThreadTaskContext) -> LeaderState | None:
    """The pool's leader state, retried while Redis is unreachable and the lead lasts (None once it
    ended: the task is started all the same, and sees its stop)."""
    delay = 0.05
    while not ctx.stopping:
        try:
            state: LeaderState | None = await election.load_state()
            return state
        except RETRYABLE as exc:
            ctx.log.warning("state_unreadable", error=str(exc) or type(exc).__name__, retry_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, READ_RETRY_MAX_S)
    return None


def with_leader_state(task: Task, election: Any) -> Task:
    """``task``, given ``ctx.state`` (read first) and ``ctx.save_state`` each time it starts."""
    save = checked_save_state(election)
    if is_async(task):

        @functools.wraps(task)
        async def run_async(ctx: AsyncTaskContext) -> Any:
            ctx._save_state = save
            ctx.state = await read_for(election, ctx)
            return await task(ctx)  # even when stopping already: a task is started each time (it sees the stop)

        return run_async

    @functools.wraps(task)
    def run_in_thread(ctx: ThreadTaskContext) -> Any:
        ctx._save_state = save
        ctx.state = ctx.call_on_loop(read_for(election, ctx), timeout=None)
        return task(ctx)

    return run_in_thread
