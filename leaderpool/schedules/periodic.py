"""Running a schedule on the leader: :class:`SlotWalker` walks one leadership through a
schedule's slots (which slot is due, how long to wait, claiming it in Redis, recording how its
run ended), and :func:`run_schedule` is the library's face: it runs a function for each slot
while an :class:`~leaderpool.aio.AsyncElection` leads (what it needs of the election is
:class:`LeadingElection`; it hears the lead end through the election's lead hooks). The worker's
``--every``/``--cron`` (:mod:`leaderpool.worker.scheduled_task`) drives the same walker.

Guarantees, from the claim script (:mod:`leaderpool.schedules.schedule_store`): a slot is claimed by at
most one run, ever, and only by the member whose lead the pool's leader key holds at that
instant; a new leader carries on after the last slot claimed. Within a leader, runs are one after
another. Across leaders, runs do not overlap as far as leads do not: on a crash the old run died
with its process; on a kind hand-over it ended (or was cancelled) before the lead moved; a
leader cut off from Redis must stop its run when its lead ends (``stopping``), as any leader work.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from leaderpool import probe
from leaderpool.backend.clients import AsyncClient
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.protocol import LeaderValue
from leaderpool.backend.redis_errors import RETRYABLE
from leaderpool.config import MemberConfig
from leaderpool.election.lead_hooks import LeadHook, LeadHooks
from leaderpool.events import RevokeReason
from leaderpool.schedules.schedule import Due, Schedule, next_due
from leaderpool.schedules.schedule_store import ClaimStatus, ScheduleStore
from leaderpool.util.clock import Clock
from leaderpool.util.log import Logger, get_logger
from leaderpool.util.timeouts import within

log = get_logger("leaderpool")

NOT_LEADER_RETRY_S = 0.25
"""Redis says another lead holds the pool: look again after this (the election hears it soon)."""
RETRY_MAX_S = 1.0
"""The longest wait before trying an unreachable Redis again."""
FINISH_TIMEOUT_S = 2.0
"""How long recording a run's end may take (it is informational: a run is claimed before it starts)."""
MAX_WAIT_S = 30.0
"""The longest wait for a slot before Redis's clock is read again (a daily cron slot is waited for
in steps, so a drifting local clock cannot make it late)."""


class Wait(NamedTuple):
    """Nothing to run for ``seconds``."""

    seconds: float


class Run(NamedTuple):
    """The slot ``slot_ms`` (unix ms, Redis's clock) is claimed: run it now."""

    slot_ms: int


class SlotWalker:
    """One leadership's walk through one schedule: call :meth:`step` until it says :class:`Run`,
    run the slot, call :meth:`finish`, and so on; wait as told in between (on what ends when the
    lead does). Redis being unreachable is a :class:`Wait`, never an error."""

    def __init__(
        self,
        store: ScheduleStore,
        schedule: Schedule,
        held: LeaderValue,
        grace_s: float,
        logger: Logger | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.schedule = schedule
        self.held = held
        self.grace_ms = round(grace_s * 1000)
        self.log = (logger or log).bind(schedule=schedule.name)
        self._clock = clock
        self._offset_ms = 0.0  # Redis's clock minus ours
        self._begun = False
        self._last: int | None = None  # the last slot claimed (by anyone)
        self._planned: int | None = None
        self._reported: Due | None = None
        self._failures = 0
        self._not_leader = False
        self._paused = False

    def _now_ms(self) -> int:
        return round(self._clock() * 1000 + self._offset_ms)

    def _synced(self, redis_now_ms: int, sent_at: float) -> None:
        """Our estimate of Redis's clock, from a reply: Redis read it halfway through the call."""
        self._offset_ms = redis_now_ms - (sent_at + self._clock()) / 2 * 1000

    async def step(self) -> Wait | Run:
        """What to do next: wait, or run the slot just claimed."""
        try:
            step = await self._step()
        except RETRYABLE as exc:
            self._failures += 1
            delay = min(0.05 * 2 ** (self._failures - 1), RETRY_MAX_S)
            if self._failures in (1, 10) or self._failures % 100 == 0:
                self.log.warning("schedule_redis_unavailable", error=str(exc) or type(exc).__name__, retry_s=delay)
            return Wait(delay)
        self._failures = 0
        return step

    async def _step(self) -> Wait | Run:
        if not self._begun:
            sent = self._clock()
            now_ms, records = await self.store.read(self.schedule.name)
            self._synced(now_ms, sent)
            last = records[0].last_passed_ms if records else None
            # never run: count from the latest slot before now (the first run is the next slot)
            self._last = last if last is not None else self.schedule.at_or_before(now_ms)
            self._begun = True
        due = next_due(self.schedule, self._last, self._now_ms(), self.grace_ms)
        if due.missed_from is not None and due != self._reported:
            self._reported = due
            self.log.warning(
                "slots_missed", catch_up=self.schedule.catch_up.value, first_ms=due.missed_from, last_ms=due.missed_to,
                slot_ms=due.slot_ms,
            )  # fmt: skip
            count = self._count(due.missed_from, due.missed_to)
            probe.slot(self.store.keys.pool, self.schedule.name, "missed", count)
            last = due.missed_to if due.missed_to is not None else due.missed_from
            await self.store.log_missed(self.held, self.schedule.name, due.missed_from, last, count)
        if due.slot_ms != self._planned:
            sent = self._clock()
            planned, now_ms = await self.store.plan(
                self.held, self.schedule.name, self.schedule.spec, self.schedule.catch_up.value, due.slot_ms
            )
            self._synced(now_ms, sent)
            if not planned:
                return self._not_the_leader()
            self._planned = due.slot_ms
        wait_ms = due.slot_ms - self._now_ms()
        if wait_ms > MAX_WAIT_S * 1000:
            self._planned = None  # plan again after the wait: its reply resynchronises the clock
            return Wait(MAX_WAIT_S)
        if wait_ms > 0:
            return Wait(wait_ms / 1000)
        sent = self._clock()
        claim = await self.store.claim(
            self.held, self.schedule.name, due.slot_ms, self.schedule.spec, self.schedule.catch_up.value
        )
        self._synced(claim.now_ms, sent)
        if claim.status is ClaimStatus.CLAIMED:
            self._last = due.slot_ms
            self._not_leader = False
            if self._paused:
                self._paused = False
                self.log.info("schedule_resumed", slot_ms=due.slot_ms)
            return Run(due.slot_ms)
        if claim.status is ClaimStatus.ALREADY_CLAIMED:  # claimed meanwhile (by a lead before ours)
            self._last = claim.last_slot_ms
            return Wait(0.0)
        if claim.status is ClaimStatus.NOT_LEADER:
            return self._not_the_leader()
        if claim.status is ClaimStatus.PAUSED:
            return self._skipped_paused(due.slot_ms)
        return Wait(max(due.slot_ms - claim.now_ms, 1) / 1000)  # too early on Redis's clock

    def _skipped_paused(self, slot_ms: int) -> Wait:
        """The schedule is paused: the claim script recorded ``slot_ms`` as skipped; the next slot
        is waited for as usual (and skipped too, until someone resumes the schedule)."""
        self._last = slot_ms
        if not self._paused:
            self._paused = True
            self.log.info("schedule_paused", slot_ms=slot_ms, detail="slots are skipped until it is resumed")
        probe.slot(self.store.keys.pool, self.schedule.name, "skipped")
        return Wait(0.0)

    def _not_the_leader(self) -> Wait:
        if not self._not_leader:
            self._not_leader = True
            self.log.info("schedule_not_leader", detail="the pool's leader key holds another lead: no slot is claimed")
        return Wait(NOT_LEADER_RETRY_S)

    def _count(self, first_ms: int, last_ms: int | None, cap: int = 10_000) -> int:
        """How many slots ``first_ms``..``last_ms`` holds (at most ``cap``: an outage of years)."""
        count, slot = 0, first_ms
        while last_ms is not None and slot <= last_ms and count < cap:
            count, slot = count + 1, self.schedule.after(slot)
        return max(count, 1)

    async def finish(self, slot_ms: int, outcome: str) -> None:
        """Record how the run of ``slot_ms`` ended (``ok``, ``failed``, ``stopped``, ``cancelled``)."""
        probe.slot(self.store.keys.pool, self.schedule.name, outcome)
        next_slot = self.schedule.after(slot_ms)
        try:
            recorded = await within(
                self.store.finish(self.schedule.name, slot_ms, self.held.term, outcome, next_slot), FINISH_TIMEOUT_S
            )
            if recorded:
                self._planned = next_slot  # the record shows it already
        except RETRYABLE as exc:
            self.log.warning(
                "slot_end_unrecorded", slot_ms=slot_ms, outcome=outcome, error=str(exc) or type(exc).__name__
            )


# ---- the library's face ----


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

    @property
    def stopping(self) -> bool:
        """True once this run's lead is over (or ending): stop, before the next side effect."""
        return self._stop.is_set() or self._election.term != self.term or not self._election.is_leader


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
    missed (default: ``schedule.grace_s``, else twice the lease)."""
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
        self._running: asyncio.Future[None] | None = None

    async def revoked(self, term: int, reason: RevokeReason) -> None:
        """The lead of ``term`` ended: its run in progress is told (``stopping``), and waited for."""
        if term != self._term:
            return
        self._stop.set()
        running = self._running
        if running is not None and not running.done():
            await asyncio.wait({running})

    async def run(self) -> None:
        election = self.election
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
                self._running = asyncio.ensure_future(_run_slot(walker, step.slot_ms, self.fn, run))
                await self._running
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
    walker.log.info("slot_started", slot_ms=slot_ms)
    try:
        if inspect.iscoroutinefunction(fn):
            await fn(run)
        else:
            result = await asyncio.to_thread(fn, run)
            if inspect.isawaitable(result):
                await result
    except asyncio.CancelledError:
        with contextlib.suppress(asyncio.CancelledError):
            await walker.finish(slot_ms, "cancelled")
        raise
    except BaseException:
        await walker.finish(slot_ms, "failed")
        raise
    outcome = "stopped" if run.stopping else "ok"
    await walker.finish(slot_ms, outcome)
    walker.log.info("slot_finished", slot_ms=slot_ms, outcome=outcome)
