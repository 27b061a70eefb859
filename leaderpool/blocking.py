"""The blocking face: :class:`Election` runs the same core on one background event loop
thread per process (:class:`~leaderpool.util.background_loop.BackgroundLoop`, shared by every
blocking election, so they share one pub/sub connection), and calls plain callbacks on a
dispatcher thread of its own.

It is the blocking twin of :class:`~leaderpool.aio.AsyncElection` (:mod:`leaderpool.util.lifecycle`):
each method that only waits for the asyncio one is derived from it, with its parameters,
result and docstring; the few that differ on purpose are written here, each saying why.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import functools
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from leaderpool.aio import AsyncElection
from leaderpool.backend.clients import RedisLike
from leaderpool.config import MemberConfig
from leaderpool.election.dispatch import Callbacks, OnElected, OnLeaderChanged, OnRevoked, ThreadDispatcher
from leaderpool.errors import LeaderpoolError, NotLeader
from leaderpool.events import LeaderInfo, RevokeReason, Role
from leaderpool.jobs.jobs_config import JobsConfig
from leaderpool.jobs.wire import Handler
from leaderpool.names.registry import NameOwner
from leaderpool.schedules.periodic import ScheduledRun, run_schedule
from leaderpool.schedules.schedule import Schedule
from leaderpool.state import LeaderState
from leaderpool.util.background_loop import BackgroundLoop
from leaderpool.util.clock import SYSTEM_CLOCK, Clock
from leaderpool.util.lifecycle import BlockingTwin, on_background_loop
from leaderpool.util.stop_signals import STOP_SIGNALS, caught_signals

_running: weakref.WeakSet[Election] = weakref.WeakSet()

SIGNAL_POLL_S = 0.2
"""How often ``run_until_signal`` looks whether the election ended on its own (a signal wakes it at once)."""


@atexit.register
def _stop_running_elections() -> None:
    """A process that exits without stop() still hands over at once rather than after a lease."""
    for election in list(_running):
        with contextlib.suppress(Exception):  # exiting anyway; the lease expires on its own
            election.stop(timeout=election.config.heartbeat + 1)


class Election(BlockingTwin[AsyncElection]):
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
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.config = config
        self._inner = AsyncElection(config, redis, with_state=with_state, handler=handler, jobs=jobs, clock=clock)
        self._callbacks = Callbacks(self._hooks_first(on_elected), on_revoked, on_leader_changed)
        self._dispatcher: ThreadDispatcher | None = None

    # ---- lifecycle (written here: the callbacks' thread is this face's own) ----

    def start(self, timeout: float | None = None) -> None:
        """Join the pool; the election then runs in the background."""
        if self._dispatcher is not None:
            return
        self._dispatcher = ThreadDispatcher(self._callbacks, name=f"leaderpool-callbacks-{self.config.pool}")
        self._inner.use_dispatcher(self._dispatcher.submit)
        BackgroundLoop.run(self._inner.start(), timeout)
        _running.add(self)

    def stop(self, timeout: float | None = None) -> None:
        """Stop leading (``on_revoked`` runs first), leave the pool, and return. Called from a
        callback, it only asks for the stop and returns (waiting there would deadlock)."""
        dispatcher = self._dispatcher
        if dispatcher is None:
            return
        _running.discard(self)
        if dispatcher.is_current_thread:
            BackgroundLoop.call_soon(self._inner.request_stop)
            return
        try:
            BackgroundLoop.run(self._inner.stop(), timeout)  # raises what ended the election on its own
        finally:
            dispatcher.close(timeout)
            self._dispatcher = None

    def run_until_signal(self, signals: Sequence[int] = STOP_SIGNALS) -> int | None:
        """Start (if not started), run until one of ``signals`` (SIGTERM and SIGINT) arrives,
        then stop kindly as :meth:`stop` does: ``on_revoked`` runs, the lead goes to the next
        member within milliseconds, and the member leaves. Returns the signal's number (None
        when the election ended otherwise), or raises what ended it. Call it from the main
        thread (Python runs signal handlers there); the previous handlers come back once the
        stop is done (a second signal meanwhile does not cut the hand-over short)."""
        if threading.current_thread() is not threading.main_thread():
            raise LeaderpoolError("run_until_signal() must be called from the main thread", pool=self.pool)
        with caught_signals(signals) as caught:
            self.start()
            while not caught.wait(SIGNAL_POLL_S) and self._inner.running:
                pass  # a signal ends the wait at once; the poll notices an election that ended on its own
            self.stop()
        return caught.signum

    def _hooks_first(self, on_elected: OnElected | None) -> OnElected:
        """``on_elected`` run after the lead hooks that run in turn (the leader state's read)."""

        def elected(term: int) -> None:  # on the dispatcher thread: the hooks run on the loop thread
            if self._inner.lead_hooks.waits_before_elected:
                BackgroundLoop.run(self._inner.lead_hooks.before_elected(term))
            if on_elected is not None:
                on_elected(term)

        return elected

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
        """While leading, the instant on the election's clock (``time.monotonic()``, but under a
        test's kit) at which the lead ends unless renewed."""
        return self._inner.renew_deadline

    @property
    def role(self) -> Role:
        return self._inner.role

    # ---- waiting and actions ----

    wait_until_leader = on_background_loop(AsyncElection.wait_until_leader)
    wait_for_leader = on_background_loop(AsyncElection.wait_for_leader)

    def resign(self, *, rejoin: bool = False, timeout: float | None = None) -> None:
        """Hand the lead to the next preferred member, and return once it is handed over
        (``is_leader`` false, ``on_revoked`` returned, the lead released in Redis); see
        :meth:`AsyncElection.resign <leaderpool.aio.AsyncElection.resign>` for ``timeout`` (two
        leases by default) and the errors. Called from a callback it only asks and returns at
        once: waiting there would deadlock, as ``on_revoked`` runs on that same thread."""
        # checked here, without a hop to the loop
        if not self.is_leader:
            raise NotLeader("resign() needs leadership", pool=self.pool, member=self.member_id)
        if self._dispatcher is not None and self._dispatcher.is_current_thread:
            self.step_down(RevokeReason.RESIGNED, rejoin=rejoin)
            return
        BackgroundLoop.run(self._inner.resign(rejoin=rejoin, timeout=timeout))

    def step_down(self, reason: RevokeReason, *, rejoin: bool = False) -> None:
        """Ask for a hand-over like :meth:`resign`, with another reason (``task_failed``), and no
        error when not leading; it only asks and returns at once (callable from a callback)."""
        # asked of the loop without waiting: callable from a callback, where waiting would deadlock
        BackgroundLoop.call_soon(functools.partial(self._inner.step_down, reason, rejoin=rejoin))

    def current_leader(self, *, fresh: bool = False) -> LeaderInfo | None:
        """The leader: from the local cache (a plain read, no hop to the loop thread), or with
        ``fresh`` read from Redis."""
        if not fresh:
            return self.leader
        return BackgroundLoop.run(self._inner.current_leader(fresh=True))

    members = on_background_loop(AsyncElection.members)
    fenced_set = on_background_loop(AsyncElection.fenced_set)

    # ---- leader state (leaderpool.state) ----

    @property
    def state(self) -> LeaderState | None:
        """The leader state as read when this member was elected (``with_state=True``) or last saved."""
        return self._inner.state

    load_state = on_background_loop(AsyncElection.load_state)
    save_state = on_background_loop(AsyncElection.save_state)

    # ---- periodic schedules (leaderpool.schedules.periodic) ----

    def run_schedule(
        self, schedule: Schedule, fn: Callable[[ScheduledRun], Any], *, grace_s: float | None = None
    ) -> concurrent.futures.Future[None]:
        """Run ``fn(run)`` once per slot of ``schedule`` while this member leads, in the background
        (a plain function runs in a thread of its own; see :func:`~leaderpool.schedules.periodic.run_schedule`).
        Returns a future: ``cancel()`` it to stop; it holds what ``fn`` raised, if it raised."""
        # not waited for: it runs until cancelled, so the caller gets its future
        return BackgroundLoop.submit(run_schedule(self._inner, schedule, fn, grace_s=grace_s))

    # ---- work for the pool (see leaderpool.jobs) ----

    submit = on_background_loop(AsyncElection.submit)
    call = on_background_loop(AsyncElection.call)
    multicall = on_background_loop(AsyncElection.multicall)

    # ---- unique names (see leaderpool.names.registry and AsyncElection) ----

    @property
    def held_names(self) -> list[str]:
        return self._inner.held_names

    register_name = on_background_loop(AsyncElection.register_name)
    re_register_name = on_background_loop(AsyncElection.re_register_name)
    unregister_name = on_background_loop(AsyncElection.unregister_name)

    def whereis_name(self, name: str, *, fresh: bool = False) -> NameOwner | None:
        """Who holds ``name``: a plain read of the local cache once it is loaded (no round trip,
        no hop to the loop thread), or with ``fresh`` read from Redis."""
        cache = self._inner.names.ready_cache() if not fresh else None
        if cache is not None:
            return cache.lookup(name)
        return BackgroundLoop.run(self._inner.whereis_name(name, fresh=fresh))

    def registered_names(self, *, fresh: bool = False) -> list[str]:
        """Every name held under the prefix, sorted: a plain read of the local cache once it is
        loaded (no hop to the loop thread), or with ``fresh`` read from Redis."""
        cache = self._inner.names.ready_cache() if not fresh else None
        if cache is not None:
            return cache.names()
        return BackgroundLoop.run(self._inner.registered_names(fresh=fresh))
