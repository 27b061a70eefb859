"""The library's face of periodic schedules: :func:`run_schedule` runs a function for each slot of
a schedule while an :class:`~leaderpool.aio.AsyncElection` leads (what it needs of the election is
:class:`LeadingElection`; it hears the lead end through the election's lead hooks), walking the
slots with :class:`~leaderpool.schedules.slot_walker.SlotWalker`, as the worker's ``--every``/``--cron``
(:mod:`leaderpool.worker.scheduled_task`) does.

Guarantees, from the claim script (:mod:`leaderpool.schedules.schedule_store`): a slot is claimed by at
most one run, ever, and only by the member whose lead the pool's leader key holds at that
instant; a new leader carries on after the last slot claimed. Within a leader, runs are one after
another, unless the schedule's overlap policy is ``allow`` (each slot starts on time, beside the
runs still going) or ``cancel_other`` (the run in progress is cancelled first). Across leaders,
runs do not overlap as far as leads do not: on a crash the old run died with its process; on a
kind hand-over it ended (or was cancelled) before the lead moved; a leader cut off from Redis must
stop its run when its lead ends (``stopping``), as any leader work.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from leaderpool.backend.clients import AsyncClient
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.protocol import LeaderValue
from leaderpool.config import MemberConfig
from leaderpool.election.lead_hooks import LeadHook, LeadHooks
from leaderpool.events import RevokeReason
from leaderpool.schedules.schedule import Overlap, Schedule
from leaderpool.schedules.schedule_store import ScheduleStore
from leaderpool.schedules.slot_walker import NOT_LEADER_RETRY_S, Run, SlotWalker, Wait
from leaderpool.util.clock import Clock
from leaderpool.util.log import get_logger

__all__ = ["LeadingElection", "Run", "ScheduledRun", "SlotWalker", "Wait", "run_schedule"]

log = get_logger("leaderpool")


class LeadingElection(Protocol):
    """What :func:`run_schedule` needs of an election (a started :class:`~leaderpool.aio.AsyncElection`):
    who it is, whether and since which term it leads, its lead hooks, and its Redis client and keys
    for the schedule's store."""

    @property
    def config(self) -> MemberConfig: ...

    @property
    def pool(self) -> str: ...

    @property
    def member_id(self) -> str: ...

    @property
    def is_leader(self) -> bool: ...

    @property
    def term(self) -> int | None: ...

    @property
    def renew_deadline(self) -> float | None: ...

    @property
    def lead_hooks(self) -> LeadHooks: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def client(self) -> AsyncClient: ...

    @property
    def keys(self) -> Keyspace: ...

    async def wait_until_leader(self, timeout: float | None = None) -> int: ...


@dataclass
class ScheduledRun:
    """What :func:`run_schedule` gives the function for each slot."""

    pool: str
    member: str
    term: int
    schedule: str
    slot: float
    """The slot's scheduled time, unix seconds (Redis's clock)."""
    _election: LeadingElection = field(repr=False)
    _stop: asyncio.Event = field(repr=False)
    _cancelled: bool = field(default=False, repr=False)

    @property
    def stopping(self) -> bool:
        """True once this run's lead is over (or ending), or a newer slot's run replaced it (overlap
        ``cancel_other``): stop, before the next side effect."""
        election = self._election
        return self._cancelled or self._stop.is_set() or election.term != self.term or not election.is_leader


async def run_schedule(
    election: LeadingElection, schedule: Schedule, fn: Callable[[ScheduledRun], Any], *, grace_s: float | None = None
) -> None:
    """Run ``fn(run)`` once per slot of ``schedule`` while ``election`` (a started
    :class:`~leaderpool.aio.AsyncElection`) leads; between leads, wait. Runs until cancelled.

    ``fn`` may be a coroutine function; a plain function runs in a thread (``asyncio.to_thread``).
    When the lead ends, ``run.stopping`` turns true, and a kind hand-over (stop, resign, takeover)
    waits for the run in progress to return before the next leader can start its own (at most
    one lease, like ``on_revoked``). What ``fn`` raises is recorded as the run's outcome
    (``failed``) and propagates. ``grace_s``: how late a slot may start before it counts as
    missed (default: ``schedule.grace_s``, else twice the lease).

    The schedule's overlap policy decides what a slot that comes due during a run does: wait
    (``buffer_one``, ``skip``: see :class:`~leaderpool.schedules.schedule.Overlap`), start beside it
    (``allow``), or cancel it first (``cancel_other``: a coroutine is cancelled, a thread's
    ``run.stopping`` turns true)."""
    grace = grace_s if grace_s is not None else schedule.grace_s
    runner = _LibraryRunner(election, schedule, fn, 2 * election.config.ttl_s if grace is None else grace)
    remove = election.lead_hooks.add(LeadHook(on_lead_ended=runner.revoked))  # in turn: after on_revoked
    try:
        await runner.run()
    finally:
        remove()


class _LibraryRunner:
    def __init__(
        self, election: LeadingElection, schedule: Schedule, fn: Callable[[ScheduledRun], Any], grace_s: float
    ) -> None:
        self.election = election
        self.schedule = schedule
        self.fn = fn
        self.grace_s = grace_s
        self._term: int | None = None
        self._stop = asyncio.Event()
        self._runs: dict[asyncio.Future[None], ScheduledRun] = {}
        self._failure: BaseException | None = None

    async def revoked(self, term: int, reason: RevokeReason) -> None:
        """The lead of ``term`` ended: its runs in progress are told (``stopping``), and waited for."""
        if term != self._term:
            return
        self._stop.set()
        running = {task for task in self._runs if not task.done()}
        if running:
            await asyncio.wait(running)

    async def run(self) -> None:
        try:
            await self._leads()
        finally:
            await self._cancel_runs()

    def _settled(self, task: asyncio.Future[None]) -> None:
        self._runs.pop(task, None)
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()  # a run beside the loop failed: the loop raises it
            self._stop.set()

    async def _cancel_runs(self) -> None:
        running = [task for task in self._runs if not task.done()]
        for task in running:
            self._runs[task]._cancelled = True
            task.cancel()
        if running:
            await asyncio.wait(running)

    async def _leads(self) -> None:
        election = self.election
        overlap = self.schedule.overlap
        while True:
            term = await election.wait_until_leader()
            self._term, self._stop = term, asyncio.Event()
            stop = self._stop
            store = ScheduleStore(election.client, election.keys)
            bound = log.bind(pool=election.pool, member=election.member_id, term=term)
            walker = SlotWalker(
                store, self.schedule, LeaderValue(term, election.member_id), self.grace_s, bound, election.clock.wall
            )
            while not stop.is_set() and election.term == term and election.is_leader:
                step = await walker.step()
                if isinstance(step, Wait):
                    await _sleep_while_leading(election, term, stop, step.seconds)
                    continue
                run = ScheduledRun(
                    election.pool, election.member_id, term, self.schedule.name, step.slot_ms / 1000, election, stop
                )
                if overlap is Overlap.CANCEL_OTHER:
                    await self._cancel_runs()
                task = asyncio.ensure_future(_run_slot(walker, step.slot_ms, self.fn, run))
                self._runs[task] = run
                task.add_done_callback(self._settled)
                if overlap not in (Overlap.ALLOW, Overlap.CANCEL_OTHER):
                    await task
            if self._failure is not None:
                raise self._failure
            if election.term == term:  # told to stop before the election noticed: wait for it to
                await asyncio.sleep(NOT_LEADER_RETRY_S)


async def _sleep_while_leading(election: LeadingElection, term: int, stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` on the election's clock, waking early once the lead of ``term`` is over
    (at its renew deadline at the latest) or ``stop`` is set."""
    clock = election.clock
    alarm = clock.alarm()
    stopped = asyncio.ensure_future(stop.wait())
    stopped.add_done_callback(lambda _: alarm.ring())
    end = clock.now() + seconds
    try:
        while end > clock.now() and not stop.is_set() and election.term == term and election.is_leader:
            deadline = election.renew_deadline
            await alarm.sleep_until(min(end, deadline if deadline is not None else end))
    finally:
        stopped.cancel()
        alarm.close()


async def _run_slot(walker: SlotWalker, slot_ms: int, fn: Callable[[ScheduledRun], Any], run: ScheduledRun) -> None:
    async def call() -> None:
        if inspect.iscoroutinefunction(fn):
            await fn(run)
            return
        result = await asyncio.to_thread(fn, run)
        if inspect.isawaitable(result):
            await result

    await walker.run(slot_ms, call, lambda: run.stopping)
