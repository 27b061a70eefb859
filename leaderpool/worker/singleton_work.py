"""The worker's singletons (``--singletons``, ``--singletons-count``): one task (or ``--exec``
command) per singleton this member owns, started when it starts here and stopped when it stops.

Each run is a :class:`~leaderpool.worker.tasks.TaskRunner` of its own, judged on the singleton's
own lead (:class:`SingletonLead`: over once the singleton no longer runs here with that term, or
once this member's ownership deadline passed), so a task sees its stop exactly as a leader task
does. Its context carries ``ctx.name``, ``ctx.term`` (the singleton's fencing term), ``ctx.state``
(what its previous owner saved, None at first), ``ctx.save_state(data)`` (fenced by that term:
refused once it no longer runs here) and ``ctx.fenced_set(key, value)``, fenced by the
singleton's own fence (:meth:`~leaderpool.singletons.AsyncSingletons.fenced_set`): ``NotLeader``
once it no longer runs here with that term, ``StaleTerm`` once a newer owner wrote the key. A
kind hand-off passes on the last state saved: save before the task returns. A task that raises
while it runs is started again (after 0.5 s, doubling per crash in a row up to 30 s), as a
supervisor restarts a child: the singleton stays here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from leaderpool.backend.redis_errors import RETRYABLE
from leaderpool.errors import NotLeader, RedisUnavailable
from leaderpool.singletons.faces import AsyncSingletons, SingletonHost
from leaderpool.util.clock import SYSTEM_CLOCK, Clock
from leaderpool.util.log import get_logger
from leaderpool.util.timeouts import within
from leaderpool.worker.json_events import EventWriter
from leaderpool.worker.task_context import AsyncTaskContext, FencedSet, ThreadTaskContext
from leaderpool.worker.tasks import Task, TaskRunner, is_async

if TYPE_CHECKING:
    from leaderpool.backend.pool_store import FenceResult
    from leaderpool.metrics import ElectionMetrics

log = get_logger("leaderpool.worker")

START_RETRY_S, START_RETRY_MAX_S = 0.05, 1.0
"""The first wait before starting again after Redis refused the start, and the longest."""
START_FAILURES: tuple[type[BaseException], ...] = (RedisUnavailable, *RETRYABLE)
"""Redis unreachable at the start: retried, as the election retries (never fatal to a worker)."""


class SingletonLead:
    """A singleton's lead, as :class:`~leaderpool.worker.tasks.Lead` reads it: its term while it
    runs here, and this member's ownership deadline."""

    def __init__(self, singletons: AsyncSingletons, name: str) -> None:
        self._singletons = singletons
        self._name = name

    @property
    def term(self) -> int | None:
        return self._singletons.term_of(self._name)

    @property
    def renew_deadline(self) -> float | None:
        return self._singletons.deadline


class SingletonWork:
    """Runs ``task`` once per singleton this member owns (``names`` and ``shard-0`` ..
    ``shard-{count-1}`` of the pool of ``election``)."""

    def __init__(
        self,
        election: SingletonHost,
        task: Task,
        *,
        names: tuple[str, ...],
        count: int,
        weight: float = 1.0,
        max_moves: int = 1,
        pool: str,
        member: str,
        grace_s: float,
        events: EventWriter | None = None,
        metrics: Callable[[], ElectionMetrics | None] = lambda: None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.task = task
        self.pool, self.member = pool, member
        self.grace_s = grace_s
        self.events = events
        self.clock = clock
        self._metrics = metrics
        self.runners: dict[str, TaskRunner] = {}
        self._stopped_at: dict[str, float] = {}
        self._log = log.bind(pool=pool, member=member)
        self.singletons = AsyncSingletons(
            election, names, count=count, weight=weight, max_moves=max_moves,
            on_start=self._started, on_stop=self._stopped,
        )  # fmt: skip

    async def start(self, stop: asyncio.Event) -> bool:
        """Start running singletons: Redis unreachable is retried (with a capped backoff) until
        it answers or ``stop`` is set; whether they started."""
        delay = START_RETRY_S
        while not stop.is_set():
            try:
                await self.singletons.start()
                return True
            except START_FAILURES as exc:
                self._log.warning("singletons_start_failed", error=str(exc) or type(exc).__name__, retry_s=delay)
                with contextlib.suppress(TimeoutError):
                    await within(stop.wait(), delay)
                delay = min(delay * 2, START_RETRY_MAX_S)
        return False

    async def stop(self) -> None:
        """Hand every singleton running here over (each task stopped, its state passed on)."""
        await self.singletons.stop()
        for runner in list(self.runners.values()):  # none left after a clean stop; a backstop
            await runner.stop()
        self.runners.clear()

    # ---- the face's callbacks (on the loop) ----

    async def _started(self, name: str, term: int, state: Any) -> None:
        runner = TaskRunner(
            _with_singleton(self.task, name, state, self.singletons), pool=self.pool, member=self.member,
            fenced_set=_fenced_set(self.singletons, name), lead=SingletonLead(self.singletons, name),
            grace_s=self.grace_s, on_crash=functools.partial(self._crashed, name),
            on_lapsed=functools.partial(self._lapsed, name), clock=self.clock,
        )  # fmt: skip
        self.runners[name] = runner
        if self.events:
            self.events.write("singleton_started", singleton=name, member=self.member, term=term)
        self._count()
        runner.start(term)

    async def _stopped(self, name: str, term: int, reason: str) -> None:
        runner = self.runners.pop(name, None)
        began = time.monotonic()
        if runner is not None:
            await runner.stop()
        metrics = self._metrics()
        if metrics is not None:
            metrics.singleton_stopped(self.pool, self.member, reason, time.monotonic() - began)
        if self.events:
            self.events.write("singleton_stopped", singleton=name, member=self.member, term=term, reason=reason)
        self._count()
        # None: the state handed over is the last one the task saved (ctx.save_state)

    def _count(self) -> None:
        metrics = self._metrics()
        if metrics is not None:
            metrics.singletons_owned(self.pool, self.member, len(self.runners))

    def _crashed(self, name: str, term: int, error: BaseException) -> None:
        """The singleton's task raised while it ran: start it again (the runner delays it)."""
        metrics = self._metrics()
        if metrics is not None:
            metrics.task_crashed(self.pool, self.member)
        self._log.warning("singleton_task_restarting", singleton=name, term=term, error=type(error).__name__)
        asyncio.get_running_loop().create_task(self._restart(name, term), name=f"leaderpool-restart-{name}")

    def _lapsed(self, name: str, term: int) -> None:
        """The task ended because it saw the ownership deadline pass, before the member stopped
        it: should a confirmation sent in time have extended that deadline, the singleton would
        stay held here with nothing running. Give it up: it is claimed again with a new term."""
        if self.singletons.term_of(name) != term:
            return  # stopped here meanwhile, as it should be
        self._log.warning("singleton_task_lapsed", singleton=name, term=term)
        asyncio.get_running_loop().create_task(
            self.singletons.give_up(name, term, "its task saw the ownership deadline pass"),
            name=f"leaderpool-give-up-{name}",
        )

    async def _restart(self, name: str, term: int) -> None:
        runner = self.runners.get(name)
        if runner is None or self.singletons.term_of(name) != term:
            return  # it stopped here meanwhile
        await runner.stop()  # the crashed run is over already: this only forgets it
        if self.runners.get(name) is runner and self.singletons.term_of(name) == term:
            runner.start(term)


def _fenced_set(singletons: AsyncSingletons, name: str) -> FencedSet:
    """A singleton task's ``ctx.fenced_set``: fenced by the singleton's own term and fence."""

    async def fenced(term: int, key: str, value: str | bytes, px: int) -> FenceResult:
        return await singletons.fenced_set(name, key, value, px=px, term=term)

    return fenced


def _with_singleton(task: Task, name: str, state: Any, singletons: AsyncSingletons) -> Task:
    """``task``, given ``ctx.name``, ``ctx.state`` and a ``ctx.save_state`` fenced by its term."""
    latest = [state]  # a restart after a crash starts from what the crashed run saved

    async def save(term: int, data: Any) -> Any:
        if singletons.term_of(name) != term or not await singletons.save(name, data):
            raise NotLeader(f"singleton {name!r} no longer runs here with term {term}", term=term)
        latest[0] = data
        return data

    def prepare(ctx: AsyncTaskContext | ThreadTaskContext) -> None:
        ctx.name, ctx.state, ctx._save_state = name, latest[0], save

    if is_async(task):

        @functools.wraps(task)
        async def run_async(ctx: AsyncTaskContext) -> Any:
            prepare(ctx)
            return await task(ctx)

        return run_async

    @functools.wraps(task)
    def run_in_thread(ctx: ThreadTaskContext) -> Any:
        prepare(ctx)
        return task(ctx)

    return run_in_thread
