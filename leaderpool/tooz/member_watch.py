"""Who joined or left the groups a tooz coordinator watches, for its ``run_watchers``: the
group events heard in the background (:mod:`leaderpool.tooz.group_events`) applied to the members
last seen, and a read of a group only when its events may have been missed (a reconnect) or its
first known lease has ended (a member may have lapsed unannounced: a crash).
"""

from __future__ import annotations

import math
import time

from tooz import coordination

from leaderpool.backend.protocol import PoolEvent
from leaderpool.tooz.group_events import GroupEvents
from leaderpool.tooz.groups import GroupStore
from leaderpool.tooz.translation import as_bytes, text, translated
from leaderpool.util.log import get_logger

__all__ = ["MemberWatch"]

log = get_logger("leaderpool.tooz")


class MemberWatch:
    """The members of each watched group as last seen, and the changes since (:meth:`changes`)."""

    def __init__(self, store: GroupStore, events: GroupEvents, ttl_s: float, member: str) -> None:
        self._store = store
        self._events = events
        self._ttl_s = ttl_s
        self._member = member
        self._members_seen: dict[bytes, set[bytes]] = {}
        self._lapse_due: dict[bytes, float] = {}
        """Per watched group, the monotonic instant its first known lease ends: a member may
        have lapsed unannounced (a crash) and run_watchers reads the group (evicting it)."""

    def note_lapse(self, group_id: bytes, next_lapse_ms: int | None) -> None:
        """A read or beat of ``group_id`` said when its first lease ends (None: no lease)."""
        if group_id in self._members_seen:
            due = math.inf if next_lapse_ms is None else time.monotonic() + next_lapse_ms / 1000
            self._lapse_due[group_id] = due

    def watch(self, group_id: bytes) -> None:
        """Subscribe to the group's events, then read it once: events that cross the read
        are applied by set difference, so they change nothing."""
        if group_id in self._members_seen:
            return
        with translated():
            channel = self._store.keys(text(group_id)).events
            self._events.watch(text(group_id), channel, timeout=self._ttl_s)
            try:
                self._refresh_members(group_id)
            except coordination.GroupNotCreated:
                self._events.unwatch(text(group_id))
                raise

    def _refresh_members(self, group_id: bytes) -> set[bytes]:
        """Read the group (one script); its members as the new baseline."""
        snapshot = self._store.snapshot(text(group_id))
        if snapshot is None:
            raise coordination.GroupNotCreated(group_id)
        self._members_seen[group_id] = {as_bytes(m) for m in snapshot.members}
        self.note_lapse(group_id, snapshot.next_lapse_ms)
        return self._members_seen[group_id]

    def unwatch(self, group_id: bytes) -> None:
        """Stop hearing the group (its hooks are gone)."""
        if group_id not in self._members_seen:
            return
        self._members_seen.pop(group_id, None)
        self._lapse_due.pop(group_id, None)
        with translated():
            self._events.unwatch(text(group_id))

    def changes(self) -> list[tuple[bytes, bytes, bool]]:
        """(group, member, joined?) since the last run: the queued events first (no Redis
        command), then one read per group whose events may have been missed (a reconnect) or
        whose first known lease has ended (a member may have lapsed unannounced)."""
        changes: list[tuple[bytes, bytes, bool]] = []
        for group, message in self._events.drain():
            group_id = as_bytes(group)
            seen = self._members_seen.get(group_id)
            if seen is None:  # no longer watched
                continue
            member = as_bytes(message.member)
            if message.event is PoolEvent.JOINED and member not in seen:
                seen.add(member)
                self._lapse_due[group_id] = min(self._lapse_due.get(group_id, math.inf), time.monotonic() + self._ttl_s)
                changes.append((group_id, member, True))
            elif message.event in (PoolEvent.LEFT, PoolEvent.EVICTED) and member in seen:
                seen.discard(member)
                changes.append((group_id, member, False))
        now = time.monotonic()
        missed = self._events.missed()
        due = [g for g, at in list(self._lapse_due.items()) if at <= now]
        stale = list(dict.fromkeys([as_bytes(g) for g in missed] + due))
        for i, group_id in enumerate(stale):
            before = self._members_seen.get(group_id)
            if before is None:
                continue
            try:
                with translated():
                    after = self._refresh_members(group_id)
            except coordination.GroupNotCreated:
                after = self._members_seen[group_id] = set()
                self._lapse_due[group_id] = math.inf
            except coordination.ToozConnectionError as exc:
                # Redis is away: what was heard is still reported; the reads wait for the next run
                self._events.mark(missed & {text(g) for g in stale[i:]})
                log.warning("tooz_members_unread", pool=text(group_id), member=self._member, term=None, error=str(exc))
                break
            changes.extend((group_id, m, True) for m in after - before)
            changes.extend((group_id, m, False) for m in before - after)
        return changes

    def close(self) -> None:
        """Unsubscribe from every group and close the events' connection."""
        self._events.close()
