"""What a worker's task is given: its context (``ctx``), and the lead as the task sees it.

The lead ends by the clock, at the moment the task asks (:class:`Lead`): stopped by the worker,
or past the election's renew deadline, or another term; the stop events and ``ctx.sleep`` read
it so, for async and thread tasks alike. The task contract is in :mod:`leaderpool.worker.tasks`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from leaderpool.backend.pool_store import FenceResult
from leaderpool.errors import NotLeader
from leaderpool.state import LeaderState
from leaderpool.util.clock import SYSTEM_CLOCK, Clock, as_clock

FencedSet = Callable[[int, str, "str | bytes", int], Coroutine[Any, Any, FenceResult]]
"""(term, key, value, px) -> result: the election's fenced write, checked against the term."""
SaveState = Callable[[int, Any], Coroutine[Any, Any, Any]]
"""(term, data) -> the saved state: the election's leader-state save (a :class:`LeaderState`), or a
singleton's (its data), checked against the term."""
T = TypeVar("T")


# ---- the lead, as a task sees it ----


class LeadSource(Protocol):
    """Where a task's lead is read from: the election (:class:`~leaderpool.aio.AsyncElection`).
    Plain attribute reads, safe from a task's thread."""

    @property
    def term(self) -> int | None: ...

    @property
    def renew_deadline(self) -> float | None: ...


class Lead:
    """One leadership, judged on the monotonic clock each time it is asked: over once the
    source's term is no longer ``term`` or its renew deadline has passed; over for good after."""

    def __init__(self, source: LeadSource, term: int, clock: Clock | Callable[[], float] = SYSTEM_CLOCK) -> None:
        self.term = term
        self._source = source
        self.clock = as_clock(clock)  # the election's: a test's kit moves it
        self._clock = self.clock.now
        self._over = False
        self._deadline: float | None = None

    @property
    def deadline(self) -> float | None:
        """The latest renew deadline seen for this term (the last one, once the lead is over)."""
        self.remaining_s()
        return self._deadline

    def remaining_s(self) -> float:
        """Seconds until the lead ends unless renewed; 0.0 once it is over."""
        if self._over:
            return 0.0
        deadline = self._source.renew_deadline  # read before the term: if the term is still ours
        if self._source.term != self.term or deadline is None:  # after it, the deadline was ours
            self._over = True
            return 0.0
        self._deadline = deadline
        left = deadline - self._clock()
        if left <= 0:
            self._over = True
            return 0.0
        return left

    def over(self) -> bool:
        return self.remaining_s() <= 0.0


class AsyncStopEvent(asyncio.Event):
    """``ctx.stop`` of an async task: set by the worker, and reads as set once the lead is over;
    :meth:`wait` wakes at the renew deadline to re-check it."""

    def __init__(self, lead: Lead) -> None:
        super().__init__()
        self._lead = lead

    def is_set(self) -> bool:
        return super().is_set() or self._lead.over()

    async def wait(self) -> Literal[True]:
        await self.wait_up_to(None)
        return True

    async def wait_up_to(self, seconds: float | None) -> bool:
        """Wait until set (or the lead is over), at most ``seconds`` (None: no limit) of the
        election's clock; whether it is set."""
        clock = self._lead.clock
        end = None if seconds is None else clock.now() + seconds
        while not self.is_set():
            step = self._lead.remaining_s()
            if end is not None:
                left = end - clock.now()
                if left <= 0:
                    break
                step = min(step, left)
            await clock.wait_for(self, step)
        return self.is_set()


class ThreadStopEvent(threading.Event):
    """``ctx.stop`` of a thread task: as :class:`AsyncStopEvent`, for a thread."""

    def __init__(self, lead: Lead) -> None:
        super().__init__()
        self._lead = lead

    def is_set(self) -> bool:
        return super().is_set() or self._lead.over()

    def wait(self, timeout: float | None = None) -> bool:
        now = self._lead.clock.now  # the steps themselves wait on the thread's real clock
        end = None if timeout is None else now() + timeout
        while not self.is_set():
            step = self._lead.remaining_s()
            if end is not None:
                left = end - now()
                if left <= 0:
                    break
                step = min(step, left)
            super().wait(step)
        return self.is_set()


@dataclass
class _Context:
    """What every task is given; the two kinds differ in how they wait."""

    pool: str
    member: str
    term: int
    log: Any
    _fenced_set: FencedSet = field(repr=False)
    _lead: Lead = field(repr=False)
    stop: AsyncStopEvent | ThreadStopEvent = field(init=False)
    # Set by the wrappers of leaderpool.worker.scheduled_task and leaderpool.worker.task_state before the
    # task runs (a plain task leaves them None):
    slot: float | None = field(default=None, kw_only=True)
    """The scheduled time (unix seconds, Redis's clock) of the slot this run is for."""
    state: LeaderState | Any = field(default=None, kw_only=True)
    """The pool's leader state as read when this lead began, then as last saved by this task (a
    singleton's task: the data its previous owner saved, then what it saved)."""
    name: str | None = field(default=None, kw_only=True)
    """A singleton's task (``--singletons``): the singleton's name; ``term`` is its own."""
    _save_state: SaveState | None = field(default=None, kw_only=True, repr=False)

    @property
    def stopping(self) -> bool:
        """True once the task should stop: stopped by the worker, or the lead is over."""
        return self.stop.is_set()

    @property
    def renew_deadline(self) -> float | None:
        """The ``time.monotonic()`` instant this lead ends unless renewed (the last one seen, once over)."""
        return self._lead.deadline

    def _check_leading(self) -> None:
        if self.stopping:
            raise NotLeader(f"term {self.term} is over", pool=self.pool, member=self.member, term=self.term)


@dataclass
class AsyncTaskContext(_Context):
    """What an ``async def task(ctx)`` is given."""

    stop: AsyncStopEvent = field(init=False)

    def __post_init__(self) -> None:
        self.stop = AsyncStopEvent(self._lead)

    async def sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True as soon as the task should stop."""
        return await self.stop.wait_up_to(seconds)

    async def fenced_set(self, key: str, value: str | bytes, px: int = 0) -> FenceResult:
        self._check_leading()
        return await self._fenced_set(self.term, key, value, px)

    async def save_state(self, data: Any) -> Any:
        """Save the pool's leader state under this term (see :mod:`leaderpool.state`); raises
        ``NotLeader`` once this lead is over and ``StaleTerm`` when Redis says it is."""
        self._check_leading()
        if self._save_state is None:
            raise RuntimeError("this task context cannot save leader state")
        self.state = await self._save_state(self.term, data)
        return self.state


@dataclass
class ThreadTaskContext(_Context):
    """What a plain ``def task(ctx)`` is given; it runs in its own thread."""

    _loop: asyncio.AbstractEventLoop = field(repr=False, kw_only=True)
    stop: ThreadStopEvent = field(init=False)

    def __post_init__(self) -> None:
        self.stop = ThreadStopEvent(self._lead)

    def sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True as soon as the task should stop."""
        return self.stop.wait(seconds)

    def fenced_set(self, key: str, value: str | bytes, px: int = 0, timeout: float = 10.0) -> FenceResult:
        self._check_leading()
        coro = self._fenced_set(self.term, key, value, px)
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def save_state(self, data: Any, timeout: float = 10.0) -> Any:
        """Save the pool's leader state under this term (blocking; see the async context's)."""
        self._check_leading()
        if self._save_state is None:
            raise RuntimeError("this task context cannot save leader state")
        self.state = self.call_on_loop(self._save_state(self.term, data), timeout)
        return self.state

    def call_on_loop(self, coro: Coroutine[Any, Any, T], timeout: float | None = 10.0) -> T:
        """Run ``coro`` on the worker's event loop and wait for its result, from the task's thread."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)


TaskContext = AsyncTaskContext | ThreadTaskContext
