"""The blocking face: :class:`Election` runs the same core on one background event loop
thread per process (shared by every blocking election, so they share one pub/sub connection),
and calls plain callbacks on a dispatcher thread of its own."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import threading
import weakref
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from leaderpool.aio import AsyncElection
from leaderpool.backend.clients import RedisLike
from leaderpool.backend.protocol import FenceResult
from leaderpool.config import MemberConfig
from leaderpool.election.dispatch import Callbacks, OnElected, OnLeaderChanged, OnRevoked, ThreadDispatcher
from leaderpool.errors import NotLeader
from leaderpool.events import LeaderInfo, RevokeReason, Role
from leaderpool.jobs.calls import DEFAULT_CALL_TIMEOUT_S
from leaderpool.jobs.jobs_config import JobsConfig
from leaderpool.jobs.wire import Handler, MulticallResult
from leaderpool.members import MemberInfo
from leaderpool.names.registry import NameOwner
from leaderpool.schedules.periodic import ScheduledRun, run_schedule
from leaderpool.schedules.schedule import Schedule
from leaderpool.state import LeaderState
from leaderpool.util.threads import start_thread

T = TypeVar("T")


class _Runtime:
    """The process's background event loop for blocking elections, started on first use."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def loop(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None or cls._loop.is_closed():
                loop = asyncio.new_event_loop()
                start_thread(loop.run_forever, "leaderpool-loop")
                cls._loop = loop
            return cls._loop

    @classmethod
    def run(cls, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, cls.loop()).result(timeout)

    @classmethod
    def call_soon(cls, fn: Callable[..., object], *args: Any) -> None:
        cls.loop().call_soon_threadsafe(fn, *args)


_running: weakref.WeakSet[Election] = weakref.WeakSet()


@atexit.register
def _stop_running_elections() -> None:
    """A process that exits without stop() still hands over at once rather than after a lease."""
    for election in list(_running):
        with contextlib.suppress(Exception):  # exiting anyway; the lease expires on its own
            election.stop(timeout=election.config.heartbeat + 1)


class Election:
    """One member of one pool, for threaded code.

    ``with Election(MemberConfig(pool="jobs"), "redis://...") as e:`` joins the pool and takes
    part in elections until the block ends. Callbacks run in order on a dedicated thread:
    ``on_elected(term)``, ``on_revoked(reason)``, ``on_leader_changed(leader)``.
    ``with_state=True`` reads the pool's leader state before each ``on_elected`` (``e.state``).
    """

    def __init__(
        self,
        config: MemberConfig,
        redis: RedisLike,
        *,
        on_elected: OnElected | None = None,
        on_revoked: OnRevoked | None = None,
        on_leader_changed: OnLeaderChanged | None = None,
        with_state: bool = False,
        handler: Handler | None = None,
        jobs: JobsConfig | None = None,
    ) -> None:
        self.config = config
        self._inner = AsyncElection(config, redis, handler=handler, jobs=jobs)
        if with_state:
            on_elected = self._reading_state_first(on_elected)
        self._callbacks = Callbacks(on_elected, on_revoked, on_leader_changed)
        self._dispatcher: ThreadDispatcher | None = None

    # ---- lifecycle ----

    def start(self, timeout: float | None = None) -> None:
        """Join the pool; the election then runs in the background."""
        if self._dispatcher is not None:
            return
        self._dispatcher = ThreadDispatcher(self._callbacks, name=f"leaderpool-callbacks-{self.config.pool}")
        self._inner.use_dispatcher(self._dispatcher.submit)
        _Runtime.run(self._inner.start(), timeout)
        _running.add(self)

    def stop(self, timeout: float | None = None) -> None:
        """Stop leading (``on_revoked`` runs first), leave the pool, and return. Called from a
        callback, it only asks for the stop and returns (waiting there would deadlock)."""
        dispatcher = self._dispatcher
        if dispatcher is None:
            return
        _running.discard(self)
        if dispatcher.is_current_thread:
            _Runtime.call_soon(self._inner.core.request_stop)
            return
        try:
            _Runtime.run(self._inner.stop(), timeout)  # raises what ended the election on its own
        finally:
            dispatcher.close(timeout)
            self._dispatcher = None

    def __enter__(self) -> Election:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- local answers (plain reads: no round trip, safe from any thread) ----

    @property
    def member_id(self) -> str:
        return self.config.member_id

    @property
    def pool(self) -> str:
        return self.config.pool

    @property
    def is_leader(self) -> bool:
        return self._inner.is_leader

    @property
    def term(self) -> int | None:
        return self._inner.term

    @property
    def leader(self) -> LeaderInfo | None:
        return self._inner.leader

    @property
    def renew_deadline(self) -> float | None:
        """While leading, the ``time.monotonic()`` instant at which the lead ends unless renewed."""
        return self._inner.renew_deadline

    @property
    def role(self) -> Role:
        return self._inner.role

    # ---- waiting and actions ----

    def wait_until_leader(self, timeout: float | None = None) -> int:
        """Block until this member leads; returns the term. Raises TimeoutError."""
        return _Runtime.run(self._inner.wait_until_leader(timeout))

    def wait_for_leader(self, timeout: float | None = None) -> LeaderInfo:
        """Block until some member leads; returns it. Raises TimeoutError."""
        return _Runtime.run(self._inner.wait_for_leader(timeout))

    def resign(self, *, rejoin: bool = False) -> None:
        """Hand the lead to the next preferred member; raises :class:`NotLeader` if not leading."""
        if not self.is_leader:
            raise NotLeader("resign() needs leadership", pool=self.pool, member=self.member_id)
        self.step_down(RevokeReason.RESIGNED, rejoin=rejoin)

    def step_down(self, reason: RevokeReason, *, rejoin: bool = False) -> None:
        """Like :meth:`resign` with another reason (``task_failed``), and no error when not leading."""
        _Runtime.call_soon(functools.partial(self._inner.step_down, reason, rejoin=rejoin))

    def current_leader(self, *, fresh: bool = False) -> LeaderInfo | None:
        if not fresh:
            return self.leader
        return _Runtime.run(self._inner.current_leader(fresh=True))

    def members(self) -> list[MemberInfo]:
        return _Runtime.run(self._inner.members())

    def fenced_set(self, key: str, value: str | bytes, *, px: int = 0) -> FenceResult:
        return _Runtime.run(self._inner.fenced_set(key, value, px=px))

    # ---- leader state (leaderpool.state) ----

    @property
    def state(self) -> LeaderState | None:
        """The leader state as read when this member was elected (``with_state=True``) or last saved."""
        return self._inner.state

    def load_state(self) -> LeaderState | None:
        """Read the pool's leader state from Redis; None if none was saved."""
        return _Runtime.run(self._inner.load_state())

    def save_state(self, data: Any) -> LeaderState:
        """Save ``data`` under this member's term (see :meth:`AsyncElection.save_state`)."""
        return _Runtime.run(self._inner.save_state(data))

    def _reading_state_first(self, on_elected: OnElected | None) -> OnElected:
        def elected(term: int) -> None:  # on the dispatcher thread: the read runs on the loop thread
            _Runtime.run(self._inner.read_state_for(term))
            if on_elected is not None:
                on_elected(term)

        return elected

    # ---- periodic schedules (leaderpool.schedules.periodic) ----

    def run_schedule(
        self, schedule: Schedule, fn: Callable[[ScheduledRun], Any], *, grace_s: float | None = None
    ) -> concurrent.futures.Future[None]:
        """Run ``fn(run)`` once per slot of ``schedule`` while this member leads, in the background
        (a plain function runs in a thread of its own; see :func:`~leaderpool.schedules.periodic.run_schedule`).
        Returns a future: ``cancel()`` it to stop; it holds what ``fn`` raised, if it raised."""
        coro = run_schedule(self._inner, schedule, fn, grace_s=grace_s)
        return asyncio.run_coroutine_threadsafe(coro, _Runtime.loop())

    # ---- work for the pool (see leaderpool.jobs) ----

    def submit(self, payload: Any) -> str:
        """Append a job to the pool's stream; returns its id."""
        return _Runtime.run(self._inner.submit(payload))

    def call(self, payload: Any, timeout: float = DEFAULT_CALL_TIMEOUT_S, *, member: str | None = None) -> Any:
        """The leader's (or ``member``'s) reply to ``payload``."""
        return _Runtime.run(self._inner.call(payload, timeout, member=member))

    def multicall(self, payload: Any, timeout: float = DEFAULT_CALL_TIMEOUT_S) -> MulticallResult:
        """Every live member's reply to ``payload``, and who did not answer in time."""
        return _Runtime.run(self._inner.multicall(payload, timeout))

    # ---- unique names (see leaderpool.names.registry and AsyncElection) ----

    @property
    def held_names(self) -> list[str]:
        return self._inner.held_names

    def register_name(self, name: str, value: str | None = None) -> bool:
        """Register ``name`` for this member; False when another live member holds it."""
        return _Runtime.run(self._inner.register_name(name, value))

    def re_register_name(self, name: str, value: str | None = None) -> None:
        """Register ``name`` for this member even if another member holds it."""
        _Runtime.run(self._inner.re_register_name(name, value))

    def unregister_name(self, name: str) -> bool:
        return _Runtime.run(self._inner.unregister_name(name))

    def whereis_name(self, name: str, *, fresh: bool = False) -> NameOwner | None:
        """Who holds ``name``: a plain read of the local cache once it is loaded (no round trip,
        no hop to the loop thread), or with ``fresh`` read from Redis."""
        cache = self._inner.names.ready_cache() if not fresh else None
        if cache is not None:
            return cache.lookup(name)
        return _Runtime.run(self._inner.whereis_name(name, fresh=fresh))

    def registered_names(self, *, fresh: bool = False) -> list[str]:
        cache = self._inner.names.ready_cache() if not fresh else None
        if cache is not None:
            return cache.names()
        return _Runtime.run(self._inner.registered_names(fresh=fresh))
