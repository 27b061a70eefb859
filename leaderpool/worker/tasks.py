"""The leader's work: what a worker runs while it leads, and how it is started and stopped (the
context a task is given is in :mod:`leaderpool.worker.task_context`).

The task contract (``leaderpool-worker --task MODULE:FUNCTION``):

- A task is a callable taking one argument, its context. An ``async def task(ctx)`` runs on the
  worker's event loop and gets an :class:`AsyncTaskContext`; a plain ``def task(ctx)`` runs in a
  thread of its own and gets a :class:`ThreadTaskContext`.
- It is started each time the member is elected, with ``ctx.pool``, ``ctx.member``, ``ctx.term``
  (the fencing token of this leadership), ``ctx.log`` (a bound structlog logger) and ``ctx.stop``
  (an ``asyncio.Event`` or a ``threading.Event``) which reads as set once leadership ends.
- **The end of the lead is decided by the clock, at the moment the task asks.** The lead ends
  when the worker stops the task (revoked, shutdown) *or* as soon as the election's renew deadline
  (``ctx.renew_deadline``, a ``time.monotonic()`` instant that moves on with each renewal) has
  passed or the election's term is no longer ``ctx.term`` -- whichever the task notices first, and
  once over it stays over. So after a freeze (SIGSTOP, a long GC pause, a suspended VM) a task whose
  own timer fires before the worker has heard that it lost the lead still sees ``ctx.stop.is_set()``,
  ``ctx.stopping`` and ``ctx.sleep()`` report the end, for async and thread tasks alike. Check
  ``ctx.stopping`` (or the return of ``ctx.sleep``) right before each side effect; what may still
  happen between that check and the effect is what fenced writes are for.
- It must return soon after the lead ends. ``ctx.sleep(seconds)`` waits (never past the renew
  deadline without re-checking it), interrupted by the stop, and returns True when the task should
  stop. ``ctx.stop.wait()`` also wakes at the deadline. ``ctx.fenced_set(key, value, px=0)`` writes
  under this term (a coroutine for async tasks, a blocking call for threads): it raises
  ``NotLeader`` once this leadership is over (stopped, another term, or past the renew deadline),
  and ``StaleTerm`` when a newer term already wrote.
- A task still running ``grace_s`` after the stop is cancelled (async) or abandoned (thread:
  Python cannot kill one; it is a daemon thread and is logged as abandoned). An async task that
  swallows the cancellation is abandoned after one more second: it cannot hold the worker up.
- ``ctx.state`` is the pool's leader state as the previous leader saved it, and
  ``ctx.save_state(data)`` saves it under this term (:mod:`leaderpool.worker.task_state`); with
  ``--every``/``--cron`` the task is called once per slot, ``ctx.slot`` its scheduled time
  (:mod:`leaderpool.worker.scheduled_task`). Both are set by wrappers; a bare context leaves them None.
- A task that raises while leading is a crash: the worker steps down (``task_failed``) and rejoins
  the pool as its youngest member, so leadership moves on. Should this member lead again, its next
  start waits 0.5 s, doubling per crash in a row up to 30 s, so a task that always fails cannot
  spin; a task that ran for 30 s resets the count. A task that returns while still
  leading has simply finished its work; the member keeps leading until revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from leaderpool.backend.pool_store import FenceResult
from leaderpool.errors import NotLeader
from leaderpool.util.clock import SYSTEM_CLOCK, Clock
from leaderpool.util.log import get_logger
from leaderpool.worker.task_context import (
    AsyncTaskContext,
    FencedSet,
    Lead,
    LeadSource,
    TaskContext,
    ThreadTaskContext,
)

log = get_logger("leaderpool.worker")

Task = Callable[[Any], Any]

DEFAULT_TASK = "leaderpool.worker.tasks:periodic_work"
IDLE_TASK = "leaderpool.worker.tasks:idle"
"""The task when ``--handler`` is given without ``--task``: the demo task's lines would be noise."""
CRASH_DELAY_S = 0.5
CRASH_DELAY_MAX_S = 30.0
HEALTHY_AFTER_S = 30.0
"""A task that ran this long before it ended resets the count of crashes in a row."""
CANCEL_WAIT_S = 1.0
"""How long a cancelled async task may take to finish before it is abandoned."""


def is_async(task: Task) -> bool:
    return inspect.iscoroutinefunction(task) or inspect.iscoroutinefunction(getattr(task, "__call__", None))  # noqa: B004


def load_task(spec: object) -> Task:
    """Import ``MODULE:FUNCTION`` (the current directory is importable, as with ``python -m``).
    Raises ValueError with a one-line message saying what is wrong."""
    text = str(spec).strip()
    module_name, sep, attr_path = text.partition(":")
    if not sep or not module_name or not attr_path or ":" in attr_path:
        raise ValueError(f"must be MODULE:FUNCTION, got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r}: {exc}") from None
    except Exception as exc:  # the module's own code failed at import
        raise ValueError(f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    target: Any = module
    for part in attr_path.split("."):
        if not hasattr(target, part):
            raise ValueError(f"module {module_name!r} has no attribute {attr_path!r}")
        target = getattr(target, part)
    if not callable(target):
        kind = type(target).__name__
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        raise ValueError(f"{text!r} is not callable (it is {article} {kind})")
    return target  # type: ignore[no-any-return]


async def idle(ctx: AsyncTaskContext) -> None:
    """The task of a worker given only ``--handler``: nothing to do while leading but hold the
    lead (the handler takes the pool's jobs and calls)."""
    await ctx.stop.wait()


async def periodic_work(ctx: AsyncTaskContext) -> None:
    """The default task, like the seed's database cleaner: log a line every second while leading."""
    rounds = 0
    while not await ctx.sleep(1.0):
        rounds += 1
        ctx.log.info("leader_work_done", round=rounds)


class TaskRunner:
    """Runs one task per leadership: :meth:`start` when elected, :meth:`stop` when revoked.

    ``on_crash(term, error)`` is called on the loop when the task raises before it was asked to
    stop; the worker steps down then. ``on_lapsed(term)`` is called when the task ended because it
    saw its lead over (the renew deadline passed) before the worker stopped it: should the
    election have renewed that very term after all, the worker steps down, so that a leader never
    leads on without its task.
    """

    def __init__(
        self,
        task: Task,
        *,
        pool: str,
        member: str,
        fenced_set: FencedSet,
        lead: LeadSource,
        grace_s: float,
        on_crash: Callable[[int, BaseException], None],
        on_lapsed: Callable[[int], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.task = task
        self.clock = clock  # the election's, which each lead is judged on
        self.pool = pool
        self.member = member
        self.grace_s = grace_s
        self._fenced_set = fenced_set
        self._lead_source = lead
        self._on_crash = on_crash
        self._on_lapsed = on_lapsed
        self._ctx: TaskContext | None = None
        self._done: asyncio.Future[Any] | None = None
        self._name = getattr(task, "__qualname__", repr(task))
        self._crashes = 0  # in a row: each one delays the next start (a crash loop must not spin)
        self._started_at = 0.0

    @property
    def crash_delay_s(self) -> float:
        """How long the next start waits: 0 at first, then 0.5 s doubling to 30 s per crash in a row."""
        return 0.0 if not self._crashes else min(CRASH_DELAY_S * 2 ** (self._crashes - 1), CRASH_DELAY_MAX_S)

    @property
    def running(self) -> bool:
        return self._done is not None and not self._done.done()

    def start(self, term: int) -> None:
        """Start the task for ``term`` (the previous one must have been stopped)."""
        loop = asyncio.get_running_loop()
        bound = log.bind(pool=self.pool, member=self.member, term=term, task=self._name)
        delay = self.crash_delay_s
        lead = Lead(self._lead_source, term, self.clock)
        ctx: TaskContext
        if is_async(self.task):
            ctx = AsyncTaskContext(self.pool, self.member, term, bound, self._fenced_set, lead)
            done: asyncio.Future[Any] = loop.create_task(
                _run_async(self.task, ctx, delay), name=f"leaderpool-task-{term}"
            )
        else:
            ctx = ThreadTaskContext(self.pool, self.member, term, bound, self._fenced_set, lead, _loop=loop)
            done = loop.create_future()
            threading.Thread(
                target=_run_in_thread, args=(self.task, ctx, loop, done, delay), name=f"leaderpool-task-{term}",
                daemon=True,
            ).start()  # fmt: skip
        self._ctx, self._done = ctx, done
        self._started_at = time.monotonic() + delay
        done.add_done_callback(lambda fut: self._finished(ctx, fut))
        if delay:
            bound.warning("task_start_delayed", delay_s=delay, crashes_in_a_row=self._crashes)
        else:
            bound.info("task_started")

    def _finished(self, ctx: TaskContext, fut: asyncio.Future[Any]) -> None:
        if time.monotonic() - self._started_at >= HEALTHY_AFTER_S:
            self._crashes = 0  # it ran long enough: the next crash starts over
        if fut.cancelled():
            return
        if self._ctx is ctx and ctx._lead.over() and self._on_lapsed is not None:  # not stopped by us
            self._on_lapsed(ctx.term)
        error = fut.exception()
        if error is None:
            if ctx.stopping:  # asked to stop, or it saw its lead end first (then stop() finds it done)
                ctx.log.info("task_stopped")
            else:
                ctx.log.info("task_returned", detail="finished while leading; the member keeps leading")
            return
        if ctx.stopping:
            ctx.log.warning("task_failed_while_stopping", error=f"{type(error).__name__}: {error}")
            return
        self._crashes += 1
        ctx.log.error("task_failed", exc_info=error)
        self._on_crash(ctx.term, error)

    def halt(self) -> None:
        """Tell the running task to stop (its ``ctx.stop``) without waiting: :meth:`stop` still
        waits for it to end. A shutdown calls this first, so the task ends while the election
        wakes up to hand the lead over."""
        if self._ctx is not None:
            self._ctx.stop.set()

    async def stop(self) -> None:
        """Set the stop event; wait up to ``grace_s``; then cancel (async) or abandon (thread).
        Every wait is bounded: an async task that swallows the cancellation is abandoned too."""
        ctx, done = self._ctx, self._done
        self._ctx = self._done = None
        if ctx is None or done is None:
            return
        ctx.stop.set()
        if done.done():
            return
        finished, _ = await asyncio.wait({done}, timeout=self.grace_s)
        if finished:
            return  # _finished logged how it ended
        if isinstance(ctx, AsyncTaskContext):
            done.cancel()
            finished, _ = await asyncio.wait({done}, timeout=CANCEL_WAIT_S)
            if finished:
                ctx.log.warning("task_cancelled", grace_s=self.grace_s)
            else:
                ctx.log.warning("task_abandoned", grace_s=self.grace_s, detail="the task swallowed its cancellation")
        else:
            ctx.log.warning("task_abandoned", grace_s=self.grace_s, detail="the thread ignored the stop event")


async def _run_async(task: Task, ctx: AsyncTaskContext, delay: float) -> None:
    if delay and await ctx.sleep(delay):
        return
    await task(ctx)


def _run_in_thread(
    task: Task, ctx: ThreadTaskContext, loop: asyncio.AbstractEventLoop, done: asyncio.Future[Any], delay: float
) -> None:
    outcome: BaseException | None = None
    try:
        if not (delay and ctx.sleep(delay)):
            task(ctx)
    except BaseException as exc:  # reported to the loop, which decides what a crash means
        outcome = exc

    def settle() -> None:
        if done.done():
            return
        if outcome is None:
            done.set_result(None)
        else:
            done.set_exception(outcome)

    with contextlib.suppress(RuntimeError):  # the loop is gone: the worker already exited
        loop.call_soon_threadsafe(settle)


def checked_fenced_set(election: Any) -> FencedSet:
    """The election's ``fenced_set``, refused once the caller's term is no longer the current one
    or its renew deadline has passed (checked on the loop, when the write is about to be sent)."""

    async def fenced(term: int, key: str, value: str | bytes, px: int) -> FenceResult:
        if election.term != term or not election.is_leader:
            raise NotLeader(f"term {term} is over", pool=election.pool, member=election.member_id, term=term)
        result: FenceResult = await election.fenced_set(key, value, px=px)
        return result

    return fenced
