"""The placer: the pool's leader decides where each singleton runs, and writes it.

While this member leads, :class:`Placer` surveys the pool (one read script: the live members
running singletons, the names, the assignment, the owners and whether each is live), asks the
:class:`~leaderpool.singletons.placement.Strategy` where each name should run, and writes the
changes with one script fenced by its lead (a deposed placer writes nothing). Members claim
what is assigned to them; an owner whose name went elsewhere hands it over kindly (stop, save,
release) and the new one claims it with the next term, so a move is never two owners.

A survey costs a few commands per member while nothing changed: the survey script fingerprints
every input of the placement (the singletons' version, bumped by each write of names, assignment,
owners and pins, and the live members with their records and registrations) and sends the names
only when the fingerprint is not the one the placer last placed from. Every
:data:`FULL_SURVEY_EVERY`-th survey reads everything all the same (a net under the fingerprint).

Moves of running singletons are bounded (``max_moves`` hand-offs in flight at once); a name
that runs nowhere (new, or its owner died) is assigned at once. The placer surveys again on
every hint (a member registered or left, a release, the pool's joined and left messages), at
each heartbeat, and, right after the liveness endpoint of a member closed, a few times in quick
succession: Redis drops a crashed process's subscription within milliseconds, which the survey
reads as that member gone (fast failover's proof), so its singletons are reassigned at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence

from leaderpool.backend.listener import NotificationSource
from leaderpool.backend.protocol import LeaderValue
from leaderpool.backend.redis_errors import RETRYABLE
from leaderpool.fast_failover.endpoints import Link
from leaderpool.singletons.placement import Member, Strategy
from leaderpool.singletons.singleton_store import SingletonStore, Survey, SurveyMember
from leaderpool.util.alarm import Alarm
from leaderpool.util.log import Logger
from leaderpool.util.timeouts import cancel_and_wait

URGENT_PAUSES_S = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
"""After a member's endpoint closed: survey again after each pause, until the member shows gone
(Redis reads a dead process's close and drops its subscription within a few milliseconds; a
loaded host can take longer) or the pauses run out (the lease decides then)."""


FULL_SURVEY_EVERY = 20
"""Every so many surveys, the placer reads every name whatever the fingerprint says."""


def plan(
    survey: Survey,
    strategy: Strategy,
    apart: Sequence[Collection[str]],
    max_moves: int,
) -> dict[str, str]:
    """The assignment changes to write (name -> member, "" to unassign): pure."""
    live = {m.member for m in survey.members}
    members = [Member(m.member, m.weight, m.priority) for m in survey.members]
    names = set(survey.names)
    changes = {name: "" for name in survey.assign if name not in names}
    if not members:
        return changes
    running = {name: seen.owner.member for name, seen in survey.owners.items() if seen.live and name in names}
    current = {}
    for name in names:  # the placer's last word where still valid, else where it runs
        assigned = survey.assign.get(name)
        current[name] = assigned if assigned in live else running.get(name, "")
    target = strategy.place(
        sorted(names), members, {n: m for n, m in current.items() if m}, pins=survey.pins, apart=apart
    )
    in_flight = sum(1 for name, owner in running.items() if survey.assign.get(name) not in (None, owner))
    budget = max(0, max_moves - in_flight)
    for name in sorted(names):
        member = target.get(name, "")
        if not member or survey.assign.get(name) == member:
            continue
        owner = running.get(name)
        if owner is not None and owner != member:  # a hand-off: bounded
            if budget == 0:
                continue
            budget -= 1
        changes[name] = member
    return changes


class Placer:
    """Places the pool's singletons while this member leads ``lead``."""

    def __init__(
        self,
        store: SingletonStore,
        lead: LeaderValue,
        strategy: Strategy,
        apart: Sequence[Collection[str]],
        max_moves: int,
        heartbeat: float,
        clock: Callable[[], float],
        log: Logger,
    ) -> None:
        self.store = store
        self.lead = lead
        self.strategy = strategy
        self.apart = apart
        self.max_moves = max_moves
        self.heartbeat = heartbeat
        self.clock = clock
        self.log = log.bind(term=lead.term)
        self.alarm = Alarm(clock)
        self._links: dict[str, Link] = {}
        self._urgent = 0
        self._task: asyncio.Task[None] | None = None
        self._placed_from = ""  # the fingerprint of the survey last placed from
        self._surveys = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="leaderpool-singletons-placer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        for link in self._links.values():
            link.unwatch(id(self))
        self._links.clear()
        if task is not None:
            await cancel_and_wait(task)

    def on_message(self, source: NotificationSource, payload: str) -> None:
        """Any hint (singletons or the pool's own messages) makes the placer survey again."""
        self.alarm.ring()

    def _member_died(self) -> None:
        self._urgent = len(URGENT_PAUSES_S)
        self.alarm.ring()

    async def _run(self) -> None:
        self.log.info("singletons_placer_started")
        while True:
            try:
                gone = await self.place_once()
            except RETRYABLE as exc:
                self.log.warning("singletons_place_failed", error=str(exc) or type(exc).__name__)
                gone = False
            if gone:
                self._urgent = 0
            if self._urgent:
                pause = URGENT_PAUSES_S[len(URGENT_PAUSES_S) - self._urgent]
                self._urgent -= 1
                await self.alarm.sleep_until(self.clock() + pause, through_rings=True)
            else:
                await self.alarm.sleep_until(self.clock() + self.heartbeat)

    async def place_once(self) -> bool:
        """Survey and write the changes; True when a member we watched is gone."""
        self._surveys += 1
        seen = "" if self._surveys % FULL_SURVEY_EVERY == 0 else self._placed_from
        self._placed_from = ""  # until this survey is placed from
        members, survey = await self.store.survey_if_changed(seen)
        gone = self._watch(members)
        if survey is None:  # nothing changed since we last placed
            self._placed_from = seen
            return gone
        changes = plan(survey, self.strategy, self.apart, self.max_moves)
        if changes:
            if not await self.store.assign(self.lead, changes):
                self.log.info("singletons_placer_deposed")
                return gone
            moved = {n: m for n, m in changes.items() if m}
            self.log.info("singletons_assigned", changes=len(changes), moved=sorted(moved)[:20] or None)
        else:
            self._placed_from = survey.fingerprint  # a write changes the version: survey again
        return gone

    def _watch(self, members: list[SurveyMember]) -> bool:
        """Keep a link to each live member's liveness endpoint (its close: survey at once)."""
        wanted = {m.liveness: m.member for m in members if m.liveness}
        gone = False
        for endpoint in list(self._links):
            if endpoint not in wanted:
                self._links.pop(endpoint).unwatch(id(self))
                gone = True
        for endpoint in wanted:
            if endpoint not in self._links:
                self._links[endpoint] = Link.watch(endpoint, id(self), self._member_died)
        return gone
