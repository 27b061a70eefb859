"""The worker's ``--name NAME``: hold each name for the worker's life, or stand by for it.

For each name, one coroutine registers it. When another member holds it, the worker is a
standby: it tries again the moment the holder lets it go -- at once after a kind shutdown (the
holder's leave announces ``unregistered|NAME``) and, after a crash, at the holder's deadline
(its lease end, which the refused registration returned), since a dead holder's name frees then.
A name we hold that our heartbeat reports lost (we were paused past our lease, or an operator
removed it) is stood by for again. The worker's shutdown frees them in its leave script.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from leaderpool.aio import AsyncElection
from leaderpool.backend.listener import NotificationSource
from leaderpool.backend.redis_errors import RETRYABLE
from leaderpool.backend.shared_watcher import shared_watcher
from leaderpool.errors import LeaderpoolError
from leaderpool.names.registry import NameMessage, RegisterStatus
from leaderpool.util.alarm import Alarm
from leaderpool.util.log import get_logger

if TYPE_CHECKING:
    from leaderpool.worker.json_events import EventWriter

STANDBY_EARLY_WAKE_S = 0.001
"""A standby tries this long after the holder's known deadline (Redis lets a key go once its
millisecond clock has passed it)."""

_RETRIED: tuple[type[BaseException], ...] = (LeaderpoolError, *RETRYABLE)
"""Not joined yet, Redis away: the keeper tries again a heartbeat later."""

HELD_CHECK_S = 60.0
"""A held name is checked this often besides the ring from the heartbeat that loses it."""

log = get_logger("leaderpool.worker")


class NameKeeper:
    """Holds ``names`` for ``election``'s member while :meth:`run` runs."""

    def __init__(self, election: AsyncElection, names: Sequence[str], events: EventWriter | None = None) -> None:
        self.election = election
        self.names = list(dict.fromkeys(names))
        self.events = events
        self._wake = {name: Alarm(time.monotonic) for name in self.names}
        self._log = log.bind(pool=election.pool, member=election.member_id)

    async def run(self) -> None:
        """Keep every name until cancelled."""
        if not self.names:
            return
        names = self.election.names
        names.held.on_lost(self._woken)
        watcher = shared_watcher(names.client)
        channels = (names.store.keys.events,)
        await watcher.watch_channels(channels, self._on_message, self.election.config.heartbeat)
        try:
            await asyncio.gather(*(self._keep(name) for name in self.names))
        finally:
            with contextlib.suppress(*RETRYABLE):
                await watcher.unwatch_channels(channels, self._on_message)

    def _on_message(self, source: NotificationSource, payload: str) -> None:
        if source is NotificationSource.RESYNC:
            for alarm in self._wake.values():
                alarm.ring()
            return
        msg = NameMessage.parse(payload)
        if msg is not None and msg.event == "unregistered" and msg.name in self._wake:
            self._wake[msg.name].ring()

    def _woken(self, name: str) -> None:
        alarm = self._wake.get(name)
        if alarm is not None:
            alarm.ring()

    async def _keep(self, name: str) -> None:
        c = self.election.config
        waiting_for: str | None = None
        last_error = ""
        while True:
            wake = self._wake[name]
            wake.rung = False  # what rang before this attempt is answered by it
            try:
                reg = await self.election.names.register(name)
            except _RETRIED as exc:
                error = str(exc) or type(exc).__name__
                if error != last_error:  # once per distinct error: an outage must not fill the log
                    self._log.info("name_retry", name=name, error=error, retry_s=c.heartbeat)
                    last_error = error
                await self._sleep(wake, c.heartbeat)
                continue
            last_error = ""
            if reg.status is RegisterStatus.REGISTERED:
                waiting_for = None
                self._log.info("name_held", name=name)
                if self.events:
                    self.events.write("name_held", member=c.member_id, name=name)
                while name in self.election.names.held.held:
                    await wake.sleep_until(time.monotonic() + HELD_CHECK_S)  # rung when a heartbeat loses it
                if self.events:
                    self.events.write("name_lost", member=c.member_id, name=name)
                continue
            holder = reg.holder
            if holder is not None and holder.member != waiting_for:
                waiting_for = holder.member
                self._log.info("name_standby", name=name, holder=holder.member, holder_pool=holder.pool)
                if self.events:
                    self.events.write("name_standby", member=c.member_id, name=name, holder=holder.member)
            await self._sleep(wake, min(reg.left_ms / 1000 + STANDBY_EARLY_WAKE_S, c.ttl_s))

    @staticmethod
    async def _sleep(wake: Alarm, seconds: float) -> None:
        await wake.sleep_until(time.monotonic() + seconds)
