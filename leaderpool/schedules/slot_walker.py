"""One leadership's walk through a schedule's slots: :class:`SlotWalker` says which slot is due and
how long to wait, claims it in Redis, applies the schedule's policies (catch-up, overlap, jitter,
a pause held in Redis) and records how each run ended. The library's :func:`~leaderpool.schedules.periodic.run_schedule`
and the worker's ``--every``/``--cron`` (:mod:`leaderpool.worker.scheduled_task`) drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from leaderpool import probe
from leaderpool.backend.protocol import LeaderValue
from leaderpool.backend.redis_errors import RETRYABLE
from leaderpool.schedules.schedule import Due, Schedule, after_overlap, next_due
from leaderpool.schedules.schedule_store import ClaimStatus, ScheduleStore
from leaderpool.util.log import Logger, get_logger
from leaderpool.util.timeouts import keep_cancellation, within

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
        self.grace_ms = round((grace_s + schedule.jitter_s) * 1000)  # a jittered start is not late
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
        self._backlog: list[int] = []  # catch-up ALL: older missed slots claimed with the newest
        self._started: dict[int, int] = {}  # slot -> when its run was claimed (Redis's clock, ms)

    def _now_ms(self) -> int:
        return round(self._clock() * 1000 + self._offset_ms)

    def _synced(self, redis_now_ms: int, sent_at: float) -> None:
        """Our estimate of Redis's clock, from a reply: Redis read it halfway through the call."""
        self._offset_ms = redis_now_ms - (sent_at + self._clock()) / 2 * 1000

    async def step(self) -> Wait | Run:
        """What to do next: wait, or run the slot just claimed. A cancellation of the caller is
        never lost in the Redis calls (:func:`~leaderpool.util.timeouts.keep_cancellation`)."""
        return await keep_cancellation(self._step_or_retry())

    async def _step_or_retry(self) -> Wait | Run:
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
        if self._backlog:
            return await self._caught_up()
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
                "slots_missed", catch_up=self.schedule.policy, first_ms=due.missed_from, last_ms=due.missed_to,
                slot_ms=due.slot_ms,
            )  # fmt: skip
            count = self._count(due.missed_from, due.missed_to)
            probe.slot(self.store.keys.pool, self.schedule.name, "missed", count)
            last = due.missed_to if due.missed_to is not None else due.missed_from
            await self.store.passed_over(self.held, self.schedule.name, due.missed_from, last, count)
        if due.slot_ms != self._planned:
            sent = self._clock()
            planned, now_ms = await self.store.plan(
                self.held, self.schedule.name, self.schedule.spec, self.schedule.policy, due.slot_ms
            )
            self._synced(now_ms, sent)
            if not planned:
                return self._not_the_leader()
            self._planned = due.slot_ms
        wait_ms = due.slot_ms + self.schedule.jitter_ms(due.slot_ms) - self._now_ms()
        if wait_ms > MAX_WAIT_S * 1000:
            self._planned = None  # plan again after the wait: its reply resynchronises the clock
            return Wait(MAX_WAIT_S)
        if wait_ms > 0:
            return Wait(wait_ms / 1000)
        sent = self._clock()
        claim = await self.store.claim(
            self.held, self.schedule.name, due.slot_ms, self.schedule.spec, self.schedule.policy
        )
        self._synced(claim.now_ms, sent)
        if claim.status is ClaimStatus.CLAIMED:
            self._last = due.slot_ms
            self._backlog = list(due.backlog)
            self._started[due.slot_ms] = claim.now_ms
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

    async def _caught_up(self) -> Wait | Run:
        """The next older missed slot that catch-up ``all`` claimed with the newest one: run it
        while we still lead (the plan script checks), else drop what is left."""
        slot = self._backlog.pop(0)
        sent = self._clock()
        upcoming = self.schedule.after(self._last if self._last is not None else slot)
        planned, now_ms = await self.store.plan(
            self.held, self.schedule.name, self.schedule.spec, self.schedule.policy, upcoming
        )
        self._synced(now_ms, sent)
        if not planned:
            self._backlog.clear()
            return self._not_the_leader()
        self._started[slot] = now_ms
        return Run(slot)

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

    async def run(self, slot_ms: int, call: Callable[[], Awaitable[object]], stopping: Callable[[], bool]) -> None:
        """Run the slot ``slot_ms`` just claimed (await ``call()``) and record how it ended: ``ok``;
        ``stopped`` when ``stopping()`` says its lead ended meanwhile; ``failed`` when it raised
        (which propagates); ``cancelled`` when it was cancelled (past its grace on a hand-over, or
        replaced by overlap ``cancel_other``)."""
        self.log.info("slot_started", slot_ms=slot_ms)
        try:
            await call()
        except asyncio.CancelledError:
            with contextlib.suppress(asyncio.CancelledError):
                await self.finish(slot_ms, "cancelled")
            raise
        except BaseException:
            await self.finish(slot_ms, "failed")
            raise
        outcome = "stopped" if stopping() else "ok"
        await self.finish(slot_ms, outcome)
        self.log.info("slot_finished", slot_ms=slot_ms, outcome=outcome)

    async def finish(self, slot_ms: int, outcome: str) -> None:
        """Record how the run of ``slot_ms`` ended (``ok``, ``failed``, ``stopped``, ``cancelled``);
        then, if slots came due meanwhile, apply the overlap policy to them. A cancellation of the
        caller raises at once (the record is still written)."""
        await keep_cancellation(self._finish(slot_ms, outcome))

    async def _finish(self, slot_ms: int, outcome: str) -> None:
        probe.slot(self.store.keys.pool, self.schedule.name, outcome)
        next_slot = self.schedule.after(slot_ms)
        name, held = self.schedule.name, self.held
        finish = self.store.finish(
            name, slot_ms, held.term, outcome, next_slot, held.member, self._started.pop(slot_ms, None)
        )
        try:
            if await within(finish, FINISH_TIMEOUT_S):
                self._planned = next_slot  # the record shows it already
            if slot_ms == self._last and not self._backlog and outcome != "failed":
                await within(self._after_overlap(slot_ms), FINISH_TIMEOUT_S)
        except RETRYABLE as exc:
            self.log.warning(
                "slot_end_unrecorded", slot_ms=slot_ms, outcome=outcome, error=str(exc) or type(exc).__name__
            )

    async def _after_overlap(self, slot_ms: int) -> None:
        """The slots that came due while the run of ``slot_ms`` went on: skipped as the overlap
        policy says (recorded in Redis, so no later lead runs them)."""
        first, last, count = after_overlap(self.schedule, slot_ms, self._now_ms())
        if first is None or last is None:
            return
        self._last = last
        self.log.info("slots_skipped", overlap=self.schedule.overlap.value, first_ms=first, last_ms=last, count=count)
        probe.slot(self.store.keys.pool, self.schedule.name, "skipped", count)
        await self.store.passed_over(self.held, self.schedule.name, first, last, count, outcome="skipped")
