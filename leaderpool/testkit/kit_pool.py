"""``leaderpool_pool``'s pool: in-process members of one pool on the kit's Redis and clock, and
the faults a test can put them through.

Every member is a real :class:`~leaderpool.blocking.Election` (or
:class:`~leaderpool.aio.AsyncElection`) on the process's background loop, running the production
code; the kit only chooses its clock (:mod:`leaderpool.testkit.kit_clock`) and its link to Redis
(:mod:`leaderpool.testkit.kit_redis`). Each call that changes something waits until the members
have reacted (the pool *settles*), so what a test reads next is the outcome, the same every run.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from leaderpool.aio import AsyncElection
from leaderpool.blocking import Election
from leaderpool.config import MemberConfig
from leaderpool.election.dispatch import OnElected, OnLeaderChanged, OnRevoked
from leaderpool.election.lead_hooks import LeadHook
from leaderpool.events import RevokeReason
from leaderpool.jobs.jobs_config import JobsConfig
from leaderpool.jobs.wire import Handler
from leaderpool.locks.blocking_lock import Lock
from leaderpool.schedules.periodic import ScheduledRun, run_schedule
from leaderpool.schedules.schedule import Schedule
from leaderpool.testkit.kit_clock import KitClock, MemberClock
from leaderpool.testkit.kit_redis import KitRedis
from leaderpool.testkit.kit_worker import KitWorker, worker_settings
from leaderpool.testkit.lead_history import LeadEvent, LeadHistory
from leaderpool.util.background_loop import BackgroundLoop
from leaderpool.worker.tasks import Task

T = TypeVar("T")
Face = Literal["blocking", "asyncio"]
State = Literal["running", "frozen", "partitioned", "killed", "stopped"]

KIT_DEFAULTS: dict[str, Any] = {"ttl_s": 1.0}
"""The kit's members lease for 1 s unless ``config`` says otherwise: short enough that a test's
``advance(3.0)`` outlasts a lease on any Redis, real ones included."""

WAIT_LEASES = 10
"""``wait_for_leader()`` gives up after this many leases (of the kit's clock)."""


@dataclass
class KitMember:
    """One member: its face, the asyncio election under it, and its clock."""

    member_id: str
    face: Election | AsyncElection
    election: AsyncElection
    clock: MemberClock
    state: State = "running"
    terms: list[int] = field(default_factory=list)
    tasks: list[asyncio.Future[None]] = field(default_factory=list)  # its schedules' runners
    worker: KitWorker | None = None  # a worker running a --task (the pool's task=)

    @property
    def alive(self) -> bool:
        return self.state not in ("killed", "stopped")


class KitPool:
    """A pool of in-process members under test (``leaderpool_pool("scheduler", members=3)``)."""

    def __init__(
        self,
        name: str,
        redis: KitRedis,
        clock: KitClock,
        *,
        on_elected: OnElected | None = None,
        on_revoked: OnRevoked | None = None,
        on_leader_changed: OnLeaderChanged | None = None,
        config: dict[str, Any] | None = None,
        face: Face = "blocking",
        with_state: bool = False,
        handler: Handler | None = None,
        jobs: JobsConfig | None = None,
        task: str | Task | None = None,
        worker_args: Sequence[str] = (),
    ) -> None:
        if face not in ("blocking", "asyncio"):
            raise ValueError(f"leaderpool_pool: face must be 'blocking' or 'asyncio', got {face!r}")
        self.name = name
        self.redis = redis
        self.clock = clock
        self._callbacks = (on_elected, on_revoked, on_leader_changed)
        self._config = {**KIT_DEFAULTS, **(config or {})}
        self._face: Face = face
        self._with_state, self._handler, self._jobs = with_state, handler, jobs
        self._task, self._worker_args = task, tuple(worker_args)  # members run a worker's --task
        self._members: dict[str, KitMember] = {}
        self._schedules: list[tuple[Schedule, Callable[[ScheduledRun], Any]]] = []
        self._history = LeadHistory()
        # callbacks handed to a member's dispatcher and not yet run: the lead hook counts one up
        # just after the hand-over, the callback counts it down when it has run, on another thread
        # (the blocking face's dispatcher) that may get there first; so it may be -1 for a moment,
        # and the pool is busy until it is 0 again (clamping at 0 left it at 1 for ever)
        self._pending = 0
        self._pending_lock = threading.Lock()
        clock.add_busy(lambda: self._pending != 0)
        clock.after_each_step(self._note_deadlines)  # each renewal seen, for assert_single_leader

    # ---- the members ----

    def join(self, member_id: str | None = None, *, face: Face | None = None, **config: Any) -> str:
        """Start one more member (``m0``, ``m1``, ... unless named), with ``config`` over the
        pool's; returns its id once the pool has settled."""
        member_id = member_id or f"m{len(self._members)}"
        if member_id in self._members:
            raise ValueError(f"leaderpool_pool: member {member_id!r} exists already")
        cfg = MemberConfig(pool=self.name, member_id=member_id, **{**self._config, **config})
        clock = self.clock.member_clock()
        client = self.redis.member_client(member_id)
        elected, revoked, changed = self._callbacks
        on_elected, on_revoked = self._counted(elected), self._counted(revoked)
        kwargs: dict[str, Any] = {
            "on_elected": on_elected,
            "on_revoked": on_revoked,
            "on_leader_changed": changed,
            "with_state": self._with_state,
            "handler": self._handler,
            "jobs": self._jobs,
            "clock": clock,
        }
        if self._task is not None:
            worker = KitWorker(worker_settings(cfg, self._task, self._worker_args), client, clock)
            member = KitMember(member_id, worker.election, worker.election, clock, worker=worker)
        elif (face or self._face) == "blocking":
            blocking = Election(cfg, client, **kwargs)
            member = KitMember(member_id, blocking, blocking._inner, clock)  # _inner: BlockingTwin's documented twin
        else:
            aio = AsyncElection(cfg, client, **kwargs)
            member = KitMember(member_id, aio, aio, clock)
        self._members[member_id] = member
        self._hook(member)
        if member.worker is not None:
            self._run(member.worker.start())
        elif isinstance(member.face, Election):
            member.face.start()
        else:
            self._run(member.election.start())
        for schedule, fn in self._schedules:
            self._start_schedule(member, schedule, fn)
        self._settle()
        return member_id

    def _counted(self, fn: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
        """``on_elected`` or ``on_revoked``, counted as run (the lead hooks count them handed
        over): the pool is settled only once they have run. An async one is awaited."""

        def done() -> None:
            with self._pending_lock:
                self._pending -= 1

        def callback(arg: Any) -> Any:
            try:
                result = None if fn is None else fn(arg)
            except BaseException:
                done()
                raise
            if inspect.isawaitable(result):
                return _then(result, done)
            done()
            return result

        return callback

    def _hook(self, member: KitMember) -> None:
        counted = member.worker is None  # a worker's callbacks are its own (not counted)

        def started(term: int) -> None:
            if counted:
                with self._pending_lock:
                    self._pending += 1
            member.terms.append(term)
            self._history.elected(self.clock.elapsed(), member.member_id, term)

        def ended(term: int, reason: RevokeReason) -> None:
            if counted:
                with self._pending_lock:
                    self._pending += 1
            self._history.revoked(self.clock.elapsed(), member.member_id, term, reason.value)

        member.election.lead_hooks.add(LeadHook(on_lead_started=started, on_lead_ended=ended), at_once=True)

    @property
    def members(self) -> list[str]:
        """Every member that was started, in order (killed and stopped ones too)."""
        return list(self._members)

    def member(self, member_id: str) -> Election | AsyncElection:
        """The member's face, to call anything of leaderpool's on it."""
        return self._get(member_id).face

    def _get(self, member_id: str) -> KitMember:
        try:
            return self._members[member_id]
        except KeyError:
            raise ValueError(f"leaderpool_pool: no member {member_id!r} (members: {self.members})") from None

    def _alive(self, member_id: str) -> KitMember:
        member = self._get(member_id)
        if not member.alive:
            raise ValueError(f"leaderpool_pool: member {member_id!r} was {member.state}")
        return member

    # ---- what a test reads ----

    @property
    def leader(self) -> str | None:
        """The member that holds a lead it may act on now (by its own clock), or None."""
        leading = [m for m in self._members.values() if m.alive and m.election.is_leader]
        if not leading:
            return None
        return max(leading, key=lambda m: m.election.term or 0).member_id

    def wait_for_leader(self, timeout_s: float | None = None) -> str:
        """Move the clock on, deadline by deadline, until a member leads; its id. Raises
        AssertionError after ``timeout_s`` of the kit's clock (ten leases by default)."""
        limit = timeout_s if timeout_s is not None else WAIT_LEASES * float(self._config["ttl_s"])
        if not self._run(self.clock.run_until(lambda: self.leader is not None, limit_s=limit)):
            raise AssertionError(f"pool {self.name!r}: no leader after {limit:g}s (history: {self.history()})")
        leader = self.leader
        assert leader is not None
        return leader

    def history(self) -> list[LeadEvent]:
        """``[(t, member, "elected"|"revoked", term, reason), ...]`` in the order they happened;
        ``t`` is seconds on the kit's clock since it started (when the test began)."""
        return list(self._history.events)

    def assert_single_leader(self) -> None:
        """Over the whole history so far: never two members acting as leader at once, terms only
        going up. A lead counts until it was revoked or its renew deadline passed, whichever came first."""
        problems = self._history.violations()
        if problems:
            raise AssertionError(f"pool {self.name!r}: " + "; ".join(problems))

    # ---- time ----

    def advance(self, seconds: float) -> None:
        """Move the clock every member reads (and fakeredis's) ``seconds`` on; the members do what
        falls due on the way (heartbeats, lease ends, renew deadlines), in order."""
        self._run(self.clock.advance(seconds))
        self._note_deadlines()

    def settle(self) -> None:
        """Wait until every member has reacted to what happened (each fault call does this)."""
        self._settle()

    # ---- faults ----

    def kill(self, member_id: str) -> None:
        """A crash: no hand-over, no leaving; its connections drop (the others take over through
        fast failover or when its lease ends)."""
        member = self._alive(member_id)
        term = member.election.term if member.election.is_leader else None

        member.state = "killed"
        if term is not None:  # the crash's instant: it acts no more from here
            self._history.revoked(self.clock.elapsed(), member_id, term, "killed")
        self._ending(self._end(member, crash=True))
        member.clock.retired = True
        if isinstance(member.face, Election):
            member.face.stop(timeout=5)  # its callbacks' thread (the election has ended already)
        self._settle()

    def stop(self, member_id: str) -> None:
        """A kind stop: a leader hands over to the next in line, then it leaves."""
        member = self._alive(member_id)
        member.state = "stopped"
        self._stop_member(member)
        self._settle()

    def resign(self, member_id: str | None = None) -> None:
        """The leader (or ``member_id``, which must lead) hands its lead to the next in line."""
        member_id = member_id or self.leader
        if member_id is None:
            raise ValueError(f"pool {self.name!r}: resign() with no leader")
        self._run(self._alive(member_id).election.resign())
        self._settle()

    def freeze(self, member_id: str) -> None:
        """A GC pause: the member stops turning (no heartbeat, no renewal, nothing heard) while
        the clock, and its lease, run on."""
        member = self._alive(member_id)
        member.state = "frozen"
        self._run(self._call(member.clock.freeze))
        self._settle()

    def thaw(self, member_id: str) -> None:
        """The pause ends: the member finds what changed meanwhile (its lead lapsed, say)."""
        member = self._alive(member_id)
        member.state = "running"
        self._run(self._thawed(member))
        self._settle()

    def partition(self, member_id: str) -> None:
        """Cut the member from Redis: its calls fail and its connections drop until :meth:`heal`."""
        member = self._alive(member_id)
        member.state = "partitioned"
        self._run(self.redis.cut(member_id))
        self._settle()

    def heal(self, member_id: str) -> None:
        member = self._alive(member_id)
        member.state = "running"
        self.redis.heal(member_id)
        self._settle()

    def restart_redis(self, *, lose_data: bool = True) -> None:
        """Restart Redis: every connection drops; with ``lose_data`` it comes back empty (the
        members find their records gone and rejoin)."""
        self._run(self.redis.restart(lose_data=lose_data))
        self._settle()

    # ---- the other capabilities ----

    def run_schedule(self, schedule: Schedule, fn: Callable[[ScheduledRun], Any]) -> None:
        """Run ``fn(run)`` once per slot of ``schedule`` on whichever member leads (every member,
        and each one that joins later, runs :func:`~leaderpool.schedules.periodic.run_schedule`);
        :meth:`advance` the clock to a slot to fire it. ``fn`` has run when the call returns."""
        self._schedules.append((schedule, self._counted_slot(fn)))
        for member in self._members.values():
            if member.alive:
                self._start_schedule(member, schedule, self._schedules[-1][1])
        self._settle()

    def _counted_slot(self, fn: Callable[[ScheduledRun], Any]) -> Callable[[ScheduledRun], Awaitable[None]]:
        """``fn`` (plain, in a thread; or async) counted from the moment the runner calls it."""

        async def slot(run: ScheduledRun) -> None:
            with self._pending_lock:
                self._pending += 1
            try:
                result = fn(run) if inspect.iscoroutinefunction(fn) else await asyncio.to_thread(fn, run)
                if inspect.isawaitable(result):
                    await result
            finally:
                with self._pending_lock:
                    self._pending -= 1

        return slot

    def _start_schedule(self, member: KitMember, schedule: Schedule, fn: Callable[[ScheduledRun], Any]) -> None:
        async def start() -> None:
            task = asyncio.ensure_future(run_schedule(member.election, schedule, fn))
            member.tasks.append(task)

        self._run(start())

    def lock(self, resource: str, *, ttl_s: int = 10, timeout: float | None = 0) -> Lock:
        """A cluster-wide :class:`~leaderpool.locks.blocking_lock.Lock` on the kit's Redis, not
        renewed on its own (advancing past ``ttl_s`` is its holder pausing that long; call
        ``extend()`` to renew); by default ``acquire()`` does not wait (``timeout=0``)."""
        return Lock(self.redis.client(), resource, ttl_s=ttl_s, timeout=timeout, auto_renew=False)

    # ---- the end ----

    def close(self) -> None:
        """Stop every member still running (kindly) and forget them (the fixture does this)."""
        for member in self._members.values():
            if member.alive:
                member.state = "stopped"
                self._stop_member(member)  # one that failed on its own raises its error: the test's to see

    def _stop_member(self, member: KitMember) -> None:
        self._ending(self._end(member, crash=False))
        if isinstance(member.face, Election):
            member.face.stop(timeout=5)  # its callbacks' thread (the election has ended already)
        member.clock.retired = True

    async def _end(self, member: KitMember, *, crash: bool) -> None:
        """Stop ``member`` kindly, or as a crash (no hand-over, no leaving, connections dropped)."""
        member.clock.thaw()
        if crash:
            await _cancelled(member.tasks)  # its schedules die with it
        if member.worker is not None:
            await member.worker.end(crash=crash)
        else:
            if crash:
                member.election.core.abandon()
            await member.election.stop()
        member.clock.retired = True  # its loop sleeps no more: the pool can settle without it
        await _cancelled(member.tasks)
        if crash:
            await self.redis.drop_connections(member.member_id)

    def _ending(self, end: Coroutine[Any, Any, None]) -> None:
        """Run ``end`` while moving the clock as it needs (a member backing off from an unreachable
        Redis sleeps through a stop request until its backoff ends, on the kit's clock)."""
        done = BackgroundLoop.submit(end)
        limit = WAIT_LEASES * float(self._config["ttl_s"])
        self._run(self.clock.run_until(done.done, limit_s=limit))
        done.result(timeout=30)  # what the member's election ended with, raised (a ScriptError, say)

    # ---- on the loop ----

    @staticmethod
    async def _thawed(member: KitMember) -> None:
        member.clock.thaw()

    @staticmethod
    async def _call(fn: Callable[[], None]) -> None:
        fn()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return BackgroundLoop.run(coro, timeout=120)

    def _settle(self) -> None:
        self._run(self.clock.settle())
        self._note_deadlines()

    def _note_deadlines(self) -> None:
        offset = self.clock.now() - self.clock.elapsed()
        for member in self._members.values():
            election = member.election
            term, deadline = election.term, election.renew_deadline
            if member.alive and term is not None and deadline is not None:
                self._history.saw_deadline(member.member_id, term, deadline - offset)


async def _cancelled(tasks: list[asyncio.Future[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    tasks.clear()


async def _then(awaitable: Awaitable[Any], done: Callable[[], None]) -> Any:
    try:
        return await awaitable
    finally:
        done()
