"""What one member makes of the watcher's notifications (:mod:`leaderpool.backend.watcher`), and
which of them it listens to.

A notification is a hint, never the truth: it wakes the election loop, which acts only through
a script that checks Redis, or marks the pool to be re-read. A lead that looks vacant (its key
deleted or expired, its leader gone or released) wakes the next in line to claim at once; a new
leader's announcement is cached at once (lookups answer in milliseconds) and confirmed by a
re-read a moment later; a lead handed to us is taken up in the callback itself. Anything it
cannot read (a resync after a lost connection, a message of a newer version) re-reads the pool.

The leader key's keyspace events are heard only by the members they concern
(:meth:`Notifications.wants_keyspace`); the pool's events channel, by every member.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from leaderpool.backend.keys import Keyspace
from leaderpool.backend.listener import NotificationSource
from leaderpool.backend.protocol import PoolEvent, PoolMessage
from leaderpool.backend.redis_errors import RETRYABLE
from leaderpool.backend.watcher import Watcher
from leaderpool.config import MemberConfig
from leaderpool.election.leadership import Leadership
from leaderpool.election.membership import Membership
from leaderpool.election.view import PoolView
from leaderpool.election.wakeups import Wakeups
from leaderpool.events import RevokeReason, Role
from leaderpool.util.constants import REREAD_DELAY_S


class Notifications:
    """One member's listener on the shared watcher, and its keyspace subscription."""

    def __init__(
        self,
        config: MemberConfig,
        keys: Keyspace,
        membership: Membership,
        lead: Leadership,
        view: PoolView,
        wakeups: Wakeups,
        clock: Callable[[], float],
        *,
        resign: Callable[[RevokeReason], object],
        accept_handoff: Callable[[int, int, str], None],
        check_registration: Callable[[], None],
    ) -> None:
        self.config = config
        self.keys = keys
        self.membership = membership
        self.lead = lead
        self.view = view
        self.wakeups = wakeups
        self._clock = clock
        self._resign = resign  # the election's request_resign
        self._accept_handoff = accept_handoff  # act on a lead handed to us (the contest's)
        self._check_registration = check_registration  # a leader whose connection dropped steps down
        self._watcher: Watcher | None = None
        self._hears_keyspace = False  # subscribed to the leader key's keyspace events

    # ---- subscribing ----

    async def start(self, watcher: Watcher) -> None:
        """Hear the pool's notifications on ``watcher`` (returns once subscribed, or after a
        heartbeat if Redis is unreachable: the watcher keeps trying and resyncs when back)."""
        self._watcher = watcher
        await watcher.watch(self.keys, self.on_message, timeout=self.config.heartbeat)
        self._hears_keyspace = True

    async def stop(self) -> None:
        """Stop hearing the pool (the watcher closes its connection with its last listener)."""
        watcher = self._watcher
        if watcher is not None:
            with contextlib.suppress(*RETRYABLE):
                await watcher.unwatch(self.keys, self.on_message)

    def wants_keyspace(self) -> bool:
        """Whether to hear the leader key's keyspace events: the leader and the next in line do (the
        next in line claims the moment the lead is vacant), and every member of a pool ranked
        outside Redis. The other followers hear of a new or vanished lead on the pool's channel
        and look by their own timers: so a lease renewal's event ("expire") reaches two members
        of a pool, not all of them, which in a process holding a member of thousands of pools
        was much of its work (issue 13)."""
        return not self.view.ranked_in_redis or self.lead.role is not Role.FOLLOWER or self.view.successor

    async def hear_keyspace(self, wanted: bool) -> None:
        """Subscribe to the leader key's keyspace channel, or leave it, as ``wanted`` says."""
        watcher = self._watcher
        if watcher is None or wanted == self._hears_keyspace:
            return
        self._hears_keyspace = wanted
        channel = (watcher.channels_for(self.keys)[0],)
        if wanted:  # not waiting for Redis's confirmation: the timers cover the moment until then
            await watcher.watch_channels(channel, self.on_message, timeout=0)
        else:
            await watcher.unwatch_channels(channel, self.on_message)

    # ---- the listener ----

    def on_message(self, source: NotificationSource, payload: str) -> None:
        """The watcher's listener: wake the loop, with what the notification says to do."""
        poke = self.wakeups.poke
        if source is NotificationSource.DISCONNECTED:  # our registered connection, if we lead: may be proved gone
            self._check_registration()
            return
        if source is NotificationSource.KEYSPACE:
            if payload in ("del", "expired"):
                poke(vacated=True)
            elif payload == "set" and not self.lead.leading:
                self._schedule_reread()  # a new leader ("expire" is a renewal; a leader's "set" its own claim)
            return
        msg = PoolMessage.parse(payload) if source is NotificationSource.EVENTS else None
        if msg is None:  # a resync after a lost connection, or a message of a newer version
            poke(dirty=True)
            return
        me, looking = self.config.member_id, self.wakeups.timers.vacancy_retry is not None
        if msg.event is PoolEvent.RESIGN:
            if self.lead.leading:
                self._resign(RevokeReason.RESIGNED)
        elif msg.event is PoolEvent.EVICTED:
            if msg.member == me:
                self.membership.note_evicted()
            if msg.member == me or looking or self._next_changes(msg.member):
                poke(dirty=True)
        elif msg.event is PoolEvent.JOINED:
            # succession (and a takeover) may change with the newcomer: with the ranking in Redis
            # only those it can concern look (the leader, the next in line), so a join costs O(N)
            if not self.view.ranked_in_redis or looking or self.lead.leading or self.view.successor:
                poke(dirty=True)
        elif msg.event is PoolEvent.LEFT:
            leader = self.view.leader
            if leader is not None and msg.member == leader.member:
                poke(vacated=True)
            elif looking or self.view.successor_id == me or self._next_changes(msg.member):
                poke(dirty=True)
        elif msg.event is PoolEvent.RELEASED:
            poke(vacated=True)
        elif msg.member != me:  # elected: someone else
            if self.lead.leading:
                poke(dirty=True)
            else:
                self._heard_elected(msg.term, msg.member)
        elif (granted_ms := msg.handoff_ms) is not None and msg.term > self.lead.last_led_term:
            # handed to us: act in this very callback, every loop turn counts here
            self._accept_handoff(msg.term, granted_ms, msg.handoff_run)
            poke()

    def _next_changes(self, gone: str) -> bool:
        """With the ranking in Redis: ``gone`` was next in line, so someone else is now (every
        member glances, O(log N) each, to learn whether it is that one)."""
        return self.view.ranked_in_redis and gone == self.view.successor_id

    def _schedule_reread(self) -> None:
        """Re-read the pool shortly: right after a transition the new leader's first steps
        matter more than our confirmation, so we stay off Redis and the CPU for a moment."""
        timers = self.wakeups.timers
        soon = self._clock() + REREAD_DELAY_S
        if timers.reread_at is None or soon < timers.reread_at:
            timers.reread_at = soon
        self.wakeups.poke()

    def _heard_elected(self, term: int, member: str) -> None:
        """Another member announced its lead: cache it at once (its record from our last read
        of the pool) so lookups answer in milliseconds; the scheduled re-read confirms it."""
        self._schedule_reread()
        if self.view.heard_elected(member, term, self.lead.log):
            t = self.wakeups.timers
            t.vacancy_retry = t.vacant_since = None
            t.leader_expiry = self._clock() + self.config.ttl_s  # refined by the re-read
