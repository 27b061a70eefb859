"""The asyncio face: :class:`AsyncElection`, driving :class:`~leaderpool.election.core.ElectionCore`.

The capabilities a member carries hear its lead start and end through its
:class:`~leaderpool.election.lead_hooks.LeadHooks` (:attr:`AsyncElection.lead_hooks`): the job
consumer, :func:`~leaderpool.schedules.periodic.run_schedule` and the leader state alike. The
blocking :class:`~leaderpool.blocking.Election` is this face run on the background loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from leaderpool.backend.clients import AsyncClient, RedisLike, async_client
from leaderpool.backend.connect import refuse_on_cluster
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.protocol import FenceResult, LeaderValue
from leaderpool.backend.redis_errors import RETRYABLE, translate_redis_errors
from leaderpool.config import MemberConfig
from leaderpool.election.core import ElectionCore
from leaderpool.election.dispatch import Callbacks, LoopDispatcher, OnElected, OnLeaderChanged, OnRevoked
from leaderpool.election.lead_hooks import LeadHook, LeadHooks
from leaderpool.election.leadership import handed_over
from leaderpool.errors import LeaderpoolError, LeaseLost, NotLeader
from leaderpool.events import Elected, Event, LeaderInfo, Revoked, RevokeReason, Role
from leaderpool.fencing import afenced_set
from leaderpool.jobs.calls import Calls
from leaderpool.jobs.job_service import JobService
from leaderpool.jobs.jobs_config import JobsConfig
from leaderpool.jobs.pool_work import PoolWork
from leaderpool.jobs.wire import Handler
from leaderpool.members import MemberInfo
from leaderpool.names.member_names import MemberNames, NameMethods
from leaderpool.state import LeaderState, read_state, save_state
from leaderpool.util.clock import SYSTEM_CLOCK, Clock
from leaderpool.util.lifecycle import AsyncLifecycle
from leaderpool.util.log import get_logger
from leaderpool.util.stop_signals import STOP_SIGNALS, loop_signals, signal_of
from leaderpool.util.timeouts import WaitTimedOut, within

log = get_logger("leaderpool")


class AsyncElection(PoolWork, NameMethods, AsyncLifecycle):
    """One member of one pool, on the running asyncio loop.

    ``async with AsyncElection(MemberConfig(pool="jobs"), "redis://...") as e:`` joins the pool
    and takes part in elections until the block ends; ``e.is_leader``, ``e.term`` and ``e.leader``
    are answered locally. Callbacks may be plain or ``async`` functions; they run in order, off
    the election loop: ``on_elected(term)``, ``on_revoked(reason)``, ``on_leader_changed(leader)``.

    If a leaderpool script fails inside Redis (a bug), the member leaves the pool, its role
    becomes ``STOPPED``, and :meth:`stop` and the ``wait_*`` methods raise the
    :class:`~leaderpool.errors.ScriptError`.

    With ``with_state=True`` the pool's leader state (:mod:`leaderpool.state`) is read each time
    this member is elected, before ``on_elected`` runs: ``e.state`` is what the previous leader
    saved; ``await e.save_state(data)`` saves it under this member's term.

    What else runs when the lead starts or ends is a lead hook (:attr:`lead_hooks`).
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
        self._clock = clock  # what the election reads time through: a test's clock (leaderpool.testkit)
        self.jobs_config = jobs or JobsConfig()
        self._handler = handler
        self._jobs: JobService | None = None
        self._calls: Calls | None = None
        self._redis = redis
        self._state: LeaderState | None = None
        self.lead_hooks = LeadHooks(log.bind(pool=config.pool, member=config.member_id))
        """What runs when this member's lead starts and ends, beside the callbacks."""
        if with_state:  # read before on_elected runs, as the first hook in turn
            self.lead_hooks.add(LeadHook(on_lead_started=self.read_state_for))
        self._callbacks = Callbacks(self._hooks_first(on_elected), on_revoked, on_leader_changed)
        self._client: AsyncClient | None = None
        self._core: ElectionCore | None = None
        self._task: asyncio.Task[None] | None = None
        self._submit: Callable[[Event], Awaitable[None]] | None = None
        self._close_dispatch: Callable[[], Awaitable[None]] | None = None
        self._leading = asyncio.Event()
        self._leader_known = asyncio.Event()
        self._names: MemberNames | None = None

    # ---- lifecycle ----

    def use_dispatcher(self, submit: Callable[[Event], Awaitable[None]]) -> None:
        """Deliver events through ``submit`` instead of this face's callback task (used by the
        blocking face, which calls callbacks on a thread, each ``on_elected`` after the lead
        hooks' :meth:`~leaderpool.election.lead_hooks.LeadHooks.before_elected`)."""
        self._submit = submit

    def _hooks_first(self, on_elected: OnElected | None) -> OnElected:
        """``on_elected`` (plain or async) run after the lead hooks that run in turn."""

        async def elected(term: int) -> None:
            await self.lead_hooks.before_elected(term)
            if on_elected is not None:
                result = on_elected(term)
                if inspect.isawaitable(result):
                    await result

        return elected

    async def start(self) -> None:
        """Start taking part: returns at once, while the member subscribes, joins and elects in
        the background (an unreachable Redis is retried there, never raised here); wait with
        :meth:`wait_for_leader` or :meth:`wait_until_leader`."""
        if self._task is not None:
            return
        self._client = async_client(self._redis)
        refuse_on_cluster(self._client, wait_replicas=self.config.wait_replicas)
        if self._submit is None:
            dispatcher = LoopDispatcher(self._callbacks)
            self._submit, self._close_dispatch = dispatcher.submit, dispatcher.close
        self._core = ElectionCore(self.config, self._client, self._sink, clock=self._clock)
        if self._handler is not None:
            self._jobs = self._job_service(self._core, self._client, self._handler)
            self._jobs.start(self.lead_hooks)
        self._names = MemberNames(self._core, self._client)
        self._task = asyncio.get_running_loop().create_task(self._core.run(), name=f"leaderpool-{self.config.pool}")

    def request_stop(self) -> None:
        """Ask the election to stop, without waiting (safe in a signal handler on the loop);
        :meth:`stop` then waits for it. A no-op before :meth:`start`."""
        if self._core is not None:
            self._core.request_stop()

    async def stop(self) -> None:
        """Stop leading (telling ``on_revoked`` first), leave the pool, and return."""
        if self._task is None or self._core is None:
            return
        self._core.request_stop()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task  # raises what ended the election on its own (a ScriptError)
        finally:
            if self._jobs is not None:
                await self._jobs.close()
            if self._names is not None:
                await self._names.close()
            if self._close_dispatch is not None:
                await self._close_dispatch()
            if self._client is not None and self._client is not self._redis:
                await self._client.aclose()

    @property
    def running(self) -> bool:
        """True from :meth:`start` until the election ended (stopped, or ended on its own)."""
        return self._task is not None and not self._task.done()

    async def run_until_signal(self, signals: Sequence[int] = STOP_SIGNALS) -> int | None:
        """Start (if not started), run until one of ``signals`` (SIGTERM and SIGINT) arrives,
        then stop kindly as :meth:`stop` does: ``on_revoked`` runs, the lead goes to the next
        member within milliseconds, and the member leaves. Returns the signal's number (None
        when the election ended otherwise), or raises what ended it (``MemberIdInUse``...). The
        handlers are the running loop's, kept until the stop is done, then removed."""
        async with loop_signals(signals) as received:
            await self.start()
            assert self._task is not None
            ended: list[asyncio.Future[Any]] = [received, self._task]
            await asyncio.wait(ended, return_when=asyncio.FIRST_COMPLETED)
            await self.stop()
        return signal_of(received)

    def _sink(self, event: Event) -> Awaitable[None]:
        if isinstance(event, Elected):
            self._leading.set()
        elif isinstance(event, Revoked):
            self._leading.clear()
        if self.core.leader is not None:
            self._leader_known.set()
        else:
            self._leader_known.clear()
        assert self._submit is not None
        acknowledged = self._submit(event)
        if isinstance(event, Elected):
            self.lead_hooks.lead_started(event.term)
        elif isinstance(event, Revoked):  # a kind hand-over waits for the hooks too
            return self.lead_hooks.lead_ended(event.term, event.reason, acknowledged)
        return acknowledged

    def add_revoked_hook(self, hook: Callable[[int, RevokeReason], Awaitable[None]]) -> Callable[[], None]:
        """Have ``await hook(term, reason)`` run after ``on_revoked`` each time the lead ends; a kind
        hand-over waits for it too (at most one lease in all) before it releases the lead. The
        same as ``lead_hooks.add(LeadHook(on_lead_ended=hook))``. Returns a function that removes the hook."""
        return self.lead_hooks.add(LeadHook(on_lead_ended=hook))

    def _job_service(self, core: ElectionCore, client: AsyncClient, handler: Handler) -> JobService:
        lead = core.lead
        return JobService(
            client,
            core.keys,
            self.member_id,
            handler,
            self.jobs_config,
            lead_ok=lambda term: lead.current_term == term and lead.is_leader,
            term_of=lambda: lead.current_term,
            grace_s=self.config.ttl_s / 2,
        )

    # ---- local answers ----

    @property
    def core(self) -> ElectionCore:
        if self._core is None:
            raise LeaderpoolError(
                "the election has not been started", pool=self.config.pool, member=self.config.member_id
            )
        return self._core

    @property
    def clock(self) -> Clock:
        """What this member reads time through (the system's, but under a test's kit)."""
        return self._clock

    @property
    def client(self) -> AsyncClient:
        """The asyncio Redis client this election runs on, once started (its own for a URL)."""
        return self._started_client()

    @property
    def keys(self) -> Keyspace:
        """The pool's keys (raises before :meth:`start`)."""
        return self.core.keys

    @property
    def member_id(self) -> str:
        return self.config.member_id

    @property
    def pool(self) -> str:
        return self.config.pool

    @property
    def is_leader(self) -> bool:
        return self._core is not None and self._core.lead.is_leader

    @property
    def term(self) -> int | None:
        """This member's leadership term (the fencing token), None while not leading."""
        return self._core.lead.current_term if self._core is not None else None

    @property
    def leader(self) -> LeaderInfo | None:
        """The current leader from the local cache, kept fresh by the watcher."""
        return self._core.leader if self._core is not None else None

    @property
    def renew_deadline(self) -> float | None:
        """While leading, the instant on the election's clock (``time.monotonic()``, but under a
        test's kit) at which the lead ends unless renewed first (it moves on with every renewal);
        None while not leading."""
        return self._core.lead.current_deadline if self._core is not None else None

    @property
    def role(self) -> Role:
        return self._core.lead.role if self._core is not None else Role.STOPPED

    # ---- waiting ----

    async def wait_until_leader(self, timeout: float | None = None) -> int:
        """Wait until this member leads; returns the term. Raises TimeoutError once ``timeout``
        seconds have passed in all, or what ended the election."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while True:
            await self._wait(self._leading, deadline)
            term = self.term
            if term is not None:
                return term
            self._leading.clear()  # a lead that already ended: wait for the next one

    async def wait_for_leader(self, timeout: float | None = None) -> LeaderInfo:
        """Wait until some member leads (as seen locally); returns it. Raises TimeoutError once
        ``timeout`` seconds have passed in all, or what ended the election."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while True:
            await self._wait(self._leader_known, deadline)
            leader = self.leader
            if leader is not None:
                return leader
            self._leader_known.clear()

    async def _wait(self, event: asyncio.Event, deadline: float | None) -> None:
        """Wait for ``event`` until ``deadline`` (loop time); raise the election's own error if it
        ends with one meanwhile."""
        loop = asyncio.get_running_loop()
        task = self._task
        while not event.is_set():
            timeout = None if deadline is None else deadline - loop.time()
            if timeout is not None and timeout <= 0:
                raise WaitTimedOut(self._timed_out_why())
            if task is None or task.done():
                if task is not None and not task.cancelled() and (error := task.exception()) is not None:
                    raise error
                await within(event.wait(), timeout)  # not started, or stopped cleanly
                return
            waiter: asyncio.Task[Any] = loop.create_task(event.wait())
            try:
                await asyncio.wait([waiter, task], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()

    def _timed_out_why(self) -> str:
        """A timed-out wait's message, with the last Redis failure when there was one."""
        why = self._core.last_error if self._core is not None else None
        where = f"pool {self.pool!r}, member {self.member_id!r}"
        if why is None:
            return f"wait timed out ({where})"
        return f"wait timed out ({where}): Redis is failing, the last error: {why}"

    # ---- actions ----

    async def resign(self, *, rejoin: bool = False, timeout: float | None = None) -> None:
        """Hand the lead to the next preferred member, and return once it is handed over: this
        member no longer leads, ``on_revoked`` has returned, and Redis has released the lead to
        the next member (or left it vacant when no other is live). With ``rejoin``, also rejoin
        the pool as its youngest member. ``timeout``: seconds in all (default: two leases, as
        ``on_revoked`` may take one). Raises :class:`NotLeader` when not leading (or when the
        lead ended otherwise first), :class:`TimeoutError` past ``timeout``, a
        :class:`LeaderpoolError` such as ``RedisUnavailable`` when Redis refused the release
        (the lead has ended here; its key expires with its lease)."""
        if not self.is_leader:
            raise NotLeader("resign() needs leadership", pool=self.pool, member=self.member_id)
        done = self.core.request_resign(RevokeReason.RESIGNED, rejoin=rejoin)
        await handed_over(done, 2 * self.config.ttl_s if timeout is None else timeout, self.pool, self.member_id)

    def step_down(self, reason: RevokeReason, *, rejoin: bool = False) -> None:
        """Ask for a hand-over like :meth:`resign`, with another reason (``task_failed``), and no
        error when not leading. It only asks and returns at once (callable from a callback,
        where waiting for the hand-over would deadlock): the next turn of the election loop hands
        over."""
        self.core.request_resign(reason, rejoin=rejoin)

    async def current_leader(self, *, fresh: bool = False) -> LeaderInfo | None:
        """The leader: from the local cache, or with ``fresh`` read from Redis."""
        if not fresh:
            return self.leader
        with translate_redis_errors(pool=self.pool, member=self.member_id):
            found = await self.core.store.leader_record()
        return None if found is None else LeaderInfo(found.value.member, found.value.term, found.info)

    async def members(self) -> list[MemberInfo]:
        """The live members, read from Redis, with their remaining lease."""
        with translate_redis_errors(pool=self.pool, member=self.member_id):
            return (await self.core.store.observe()).members

    async def fenced_set(self, key: str, value: str | bytes, *, px: int = 0) -> FenceResult:
        """SET ``key`` under this member's term, fenced per pool; a newer term's write wins, a
        stale one raises :class:`StaleTerm` (see docs/guide/fenced-writes.md). Raises
        :class:`NotLeader` when not leading, :class:`LeaseLost` once the renew deadline passed."""
        term, core = self.term, self._core
        if term is None or core is None:
            raise NotLeader("fenced_set() needs leadership", pool=self.pool, member=self.member_id)
        if not core.lead.is_leader:
            raise LeaseLost(
                f"the lead of term {term} ended (renew deadline passed)",
                pool=self.pool,
                member=self.member_id,
                term=term,
            )
        assert self._client is not None
        with translate_redis_errors(pool=self.pool, member=self.member_id, term=term):
            return await afenced_set(self._client, key, value, term, px, pool=self.pool)

    # ---- leader state (leaderpool.state) ----

    @property
    def state(self) -> LeaderState | None:
        """The leader state as this member last read or saved it: with ``with_state=True``, read
        when it was elected (before ``on_elected``), then each of its saves; None if none was saved."""
        return self._state

    async def load_state(self) -> LeaderState | None:
        """Read the pool's leader state from Redis (any member may); None if none was saved."""
        client = self._started_client()
        with translate_redis_errors(pool=self.pool, member=self.member_id):
            return await read_state(client, self.core.store.keys)

    async def save_state(self, data: Any) -> LeaderState:
        """Save ``data`` (JSON, at most :data:`~leaderpool.state.MAX_STATE_BYTES`) as the pool's
        leader state under this member's term. Raises :class:`NotLeader` when not leading,
        :class:`LeaseLost` once the renew deadline passed, :class:`StaleTerm` when Redis says this
        term no longer leads, :class:`~leaderpool.errors.StateTooLarge` over the limit."""
        term, core = self.term, self._core
        if term is None or core is None:
            raise NotLeader("save_state() needs leadership", pool=self.pool, member=self.member_id)
        if not core.lead.is_leader:
            raise LeaseLost(
                f"the lead of term {term} ended (renew deadline passed)", pool=self.pool, member=self.member_id,
                term=term,
            )  # fmt: skip
        client = self._started_client()
        with translate_redis_errors(pool=self.pool, member=self.member_id, term=term):
            saved = await save_state(client, core.store.keys, LeaderValue(term, self.member_id), data)
        self._state = saved
        return saved

    async def read_state_for(self, term: int) -> None:
        """Read the leader state into :attr:`state` for the lead of ``term``, retrying an
        unreachable Redis while that lead lasts (it gives up when the lead ends)."""
        delay = 0.05
        while self.term == term:
            try:
                self._state = await self.load_state()
                return
            except RETRYABLE as exc:
                log.warning("state_unreadable", pool=self.pool, member=self.member_id, term=term, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.heartbeat)

    def _started_client(self) -> AsyncClient:
        if self._client is None:
            raise LeaderpoolError(
                "the election has not been started", pool=self.config.pool, member=self.config.member_id
            )
        return self._client

    # ---- work for the pool (see leaderpool.jobs; submit, call, multicall: PoolWork) ----

    @property
    def calls(self) -> Calls:
        if self._calls is None:
            if self._client is None:
                raise LeaderpoolError("the election has not been started", pool=self.pool, member=self.member_id)
            self._calls = Calls(self._client, self.core.keys, self.jobs_config, caller=self.member_id)
        return self._calls

    # ---- unique names (see leaderpool.names.registry; the methods: NameMethods) ----

    @property
    def names(self) -> MemberNames:
        if self._names is None:
            raise LeaderpoolError(
                "the election has not been started", pool=self.config.pool, member=self.config.member_id
            )
        return self._names
