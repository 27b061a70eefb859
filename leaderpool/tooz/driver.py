"""leaderpool as a tooz backend: ``tooz.coordination.get_coordinator("leaderpool://HOST:PORT/DB",
member_id)`` (registered under the ``tooz.backends`` entry point; ``pip install leaderpool[tooz]``);
``?sentinel=MASTER`` for Sentinel, ``?cluster=true`` (or ``?cluster=HOST:PORT,...``, more nodes
to start from) for Redis Cluster, where every script touches one group's slot.

The mapping (see docs/guide/tooz.md, "For tooz users"):

- a tooz group is a leaderpool pool of the same name; ``create_group``/``delete_group``/
  ``get_groups`` keep a registry of created groups, and joined members with their capabilities
  are leased records under the pool's hash tag (:mod:`leaderpool.tooz.groups`): tooz lets a member
  join without running for leader, which no leaderpool pool member can;
- ``watch_elected_as_leader`` makes this coordinator a member of the pool (an
  :class:`~leaderpool.Election`): leaderpool elects (priority, then the oldest candidate, which is
  tooz's first come when priorities are equal), keeps the lead in the background and fails over
  fast; ``run_watchers`` reports the elections the member won since it last ran
  (:mod:`leaderpool.tooz.group_leads`);
- ``watch_join_group``/``watch_leave_group`` subscribe to the group's events (``joined``, ``left``,
  ``evicted`` pool messages, published by the scripts that change the group) on the process's
  shared pub/sub watcher (:mod:`leaderpool.tooz.group_events`); ``run_watchers`` drains them, and reads
  a group only after a reconnect or once the first lease it knows of there has ended
  (:mod:`leaderpool.tooz.member_watch`);
- locks are :class:`leaderpool.locks.blocking_lock.Lock`, with the fencing token as ``lock.token``
  (:mod:`leaderpool.tooz.tooz_lock`).

Leads and locks are renewed by leaderpool's own background loop and threads, so a process that
calls ``heartbeat`` or ``run_watchers`` late keeps its lead until it dies, stops or loses Redis.
Group membership keeps tooz's contract: ``heartbeat`` renews it (one script per joined group,
which also evicts the group's lapsed members).

The URL's options are read by :mod:`leaderpool.tooz.driver_options`; ids, errors and results are
translated to tooz's by :mod:`leaderpool.tooz.translation`.
"""

from __future__ import annotations

import time
from contextlib import suppress
from typing import Any

import redis
import tooz
from tooz import coordination

from leaderpool.backend.connect import blocking_client
from leaderpool.tooz.driver_options import DriverOptions, redis_url
from leaderpool.tooz.group_events import GroupEvents
from leaderpool.tooz.group_leads import GroupLeads
from leaderpool.tooz.groups import GroupStatus, GroupStore
from leaderpool.tooz.member_watch import MemberWatch
from leaderpool.tooz.tooz_lock import LeaderpoolLock
from leaderpool.tooz.translation import as_bytes, result, text, translated
from leaderpool.util.log import get_logger

__all__ = ["LeaderpoolDriver", "LeaderpoolLock", "redis_url"]

log = get_logger("leaderpool.tooz")


class LeaderpoolDriver(coordination.CoordinationDriver):
    """The tooz coordination driver of scheme ``leaderpool``."""

    CHARACTERISTICS = (
        coordination.Characteristics.DISTRIBUTED_ACROSS_THREADS,
        coordination.Characteristics.DISTRIBUTED_ACROSS_PROCESSES,
        coordination.Characteristics.DISTRIBUTED_ACROSS_HOSTS,
        coordination.Characteristics.CAUSAL,
    )

    def __init__(self, member_id: bytes, parsed_url: Any, options: dict[str, Any]) -> None:
        super().__init__(member_id, parsed_url, options)
        self._options = DriverOptions.from_url(parsed_url, options)
        self._ttl_s = self._options.ttl_s
        self._member = text(member_id)
        self._client: redis.Redis | None = None
        self._groups: GroupStore | None = None
        self._watch: MemberWatch | None = None
        self._leads = GroupLeads(self._options, self._member)

    # ---- start and stop ----

    def _start(self) -> None:
        url = self._options.url
        client = blocking_client(url, socket_connect_timeout=self._ttl_s, socket_timeout=self._ttl_s)
        try:
            with translated():
                client.ping()
        except Exception:
            client.close()
            raise
        self._client = client
        self._groups = GroupStore(client, self._options.prefix)
        self._watch = MemberWatch(self._groups, GroupEvents(url), self._ttl_s, self._member)
        self._leads.start(client)
        for group_id in self._watched_groups():  # a restart keeps tooz's hooks: listen again
            with suppress(coordination.GroupNotCreated):
                self._watch_members(group_id)

    def _watched_groups(self) -> set[bytes]:
        return {g for g in set(self._hooks_join_group) | set(self._hooks_leave_group) if self._has_hooks_for_group(g)}

    def _stop(self) -> None:
        self._leads.stop()
        if self._watch is not None:
            self._watch.close()
        if self._client is not None:
            self._client.close()
        self._client = self._groups = self._watch = None

    @property
    def _store(self) -> GroupStore:
        if self._groups is None:
            raise tooz.ToozError("the coordinator is not started")
        return self._groups

    def heartbeat(self) -> float:
        """tooz's contract for group membership: a joined member stays in its groups while it
        beats (``start(start_heart=True)`` beats on a thread), one script per joined group,
        which also evicts the group's lapsed members (announced to watchers). Leads and locks
        do not depend on it: leaderpool renews them in the background.
        Returns the delay until the next beat."""
        ttl_ms = int(self._ttl_s * 1000)
        for group in list(self._joined_groups):
            with translated():
                refreshed = self._store.refresh(text(group), self._member, ttl_ms)
            if self._watch is not None:
                self._watch.note_lapse(group, refreshed.next_lapse_ms)
            if not refreshed.renewed:
                log.warning("tooz_membership_lost", pool=text(group), member=self._member, term=None)
                self._joined_groups.discard(group)
        return self._ttl_s / 3

    # ---- groups ----

    def create_group(self, group_id: bytes) -> coordination.CoordAsyncResult[None]:
        def create() -> None:
            if not self._store.create(text(group_id)):
                raise coordination.GroupAlreadyExist(group_id)

        return result(create)

    def get_groups(self) -> coordination.CoordAsyncResult[list[bytes]]:
        return result(lambda: [as_bytes(g) for g in self._store.groups()])

    def delete_group(self, group_id: bytes) -> coordination.CoordAsyncResult[None]:
        def delete() -> None:
            status = self._store.delete(text(group_id))
            if status is GroupStatus.NO_GROUP:
                raise coordination.GroupNotCreated(group_id)
            if status is GroupStatus.CONFLICT:
                raise coordination.GroupNotEmpty(group_id)

        return result(delete)

    def join_group(
        self, group_id: bytes, capabilities: coordination.Capabilities | None = None
    ) -> coordination.CoordAsyncResult[None]:
        def join() -> None:
            status = self._store.join(text(group_id), self._member, capabilities, int(self._ttl_s * 1000))
            if status is GroupStatus.NO_GROUP:
                raise coordination.GroupNotCreated(group_id)
            if status is GroupStatus.CONFLICT:
                raise coordination.MemberAlreadyExist(group_id, self._member)
            self._joined_groups.add(group_id)

        return result(join)

    def leave_group(self, group_id: bytes) -> coordination.CoordAsyncResult[None]:
        def leave() -> None:
            self._joined_groups.discard(group_id)
            status = self._store.leave(text(group_id), self._member)
            if status is GroupStatus.NO_GROUP:
                raise coordination.GroupNotCreated(group_id)
            if status is GroupStatus.CONFLICT:
                raise coordination.MemberNotJoined(group_id, self._member)

        return result(leave)

    def _read(self, group_id: bytes) -> dict[str, Any]:
        members = self._store.read(text(group_id))
        if members is None:
            raise coordination.GroupNotCreated(group_id)
        return members

    def get_members(self, group_id: bytes) -> coordination.CoordAsyncResult[set[bytes]]:
        return result(lambda: {as_bytes(m) for m in self._read(group_id)})

    def get_members_with_capabilities(
        self, group_id: bytes
    ) -> coordination.CoordAsyncResult[dict[bytes, coordination.Capabilities | None]]:
        return result(lambda: {as_bytes(m): info.capabilities for m, info in self._read(group_id).items()})

    def _one(self, group_id: bytes, member_id: bytes) -> Any:
        info = self._read(group_id).get(text(member_id))
        if info is None:
            raise coordination.MemberNotJoined(group_id, member_id)
        return info

    def get_member_capabilities(
        self, group_id: bytes, member_id: bytes
    ) -> coordination.CoordAsyncResult[coordination.Capabilities | None]:
        return result(lambda: self._one(group_id, member_id).capabilities)

    def get_member_info(self, group_id: bytes, member_id: bytes) -> coordination.CoordAsyncResult[dict[str, Any]]:
        def info() -> dict[str, Any]:
            one = self._one(group_id, member_id)
            return {
                "capabilities": one.capabilities,
                "created_at": one.created_at_ms / 1000,
                "updated_at": one.updated_at_ms / 1000,
            }

        return result(info)

    def update_capabilities(
        self, group_id: bytes, capabilities: coordination.Capabilities
    ) -> coordination.CoordAsyncResult[None]:
        def update() -> None:
            status = self._store.update(text(group_id), self._member, capabilities)
            if status is GroupStatus.NO_GROUP:
                raise coordination.GroupNotCreated(group_id)
            if status is GroupStatus.CONFLICT:
                raise coordination.MemberNotJoined(group_id, self._member)

        return result(update)

    # ---- watching members (leaderpool.tooz.member_watch) ----

    def _watch_members(self, group_id: bytes) -> None:
        if self._watch is not None:  # else at start
            self._watch.watch(group_id)

    def _unwatch_members(self, group_id: bytes) -> None:
        if self._watch is not None and not self._has_hooks_for_group(group_id):
            self._watch.unwatch(group_id)

    def watch_join_group(
        self, group_id: bytes, callback: coordination.EventCallback[coordination.MemberJoinedGroup]
    ) -> None:
        self._watch_members(group_id)
        super().watch_join_group(group_id, callback)

    def watch_leave_group(
        self, group_id: bytes, callback: coordination.EventCallback[coordination.MemberLeftGroup]
    ) -> None:
        self._watch_members(group_id)
        super().watch_leave_group(group_id, callback)

    def unwatch_join_group(
        self, group_id: bytes, callback: coordination.EventCallback[coordination.MemberJoinedGroup]
    ) -> None:
        super().unwatch_join_group(group_id, callback)
        self._unwatch_members(group_id)

    def unwatch_leave_group(
        self, group_id: bytes, callback: coordination.EventCallback[coordination.MemberLeftGroup]
    ) -> None:
        super().unwatch_leave_group(group_id, callback)
        self._unwatch_members(group_id)

    # ---- leader election (leaderpool.tooz.group_leads) ----

    def watch_elected_as_leader(
        self, group_id: bytes, callback: coordination.EventCallback[coordination.LeaderElected]
    ) -> None:
        super().watch_elected_as_leader(group_id, callback)
        self._leads.run_for(group_id)

    def unwatch_elected_as_leader(
        self, group_id: bytes, callback: coordination.EventCallback[coordination.LeaderElected]
    ) -> None:
        super().unwatch_elected_as_leader(group_id, callback)
        if group_id not in self._hooks_elected_leader:
            self._leads.stop_running(group_id)

    def get_leader(self, group_id: bytes) -> coordination.CoordAsyncResult[bytes | None]:  # type: ignore[override]
        return result(self._leads.leader_of, group_id)

    def stand_down_group_leader(self, group_id: bytes) -> bool:
        """Hand the lead to the next candidate (leaderpool's resign); this member stays a
        candidate, ranked last for one lease."""
        return self._leads.stand_down(group_id)

    # ---- run_watchers ----

    def run_watchers(self, timeout: float | None = None) -> list[Any]:
        """Report membership changes since the last run (from the events heard in the
        background: no Redis command unless a reconnect or a lease's end calls for a read, see
        :meth:`MemberWatch.changes <leaderpool.tooz.member_watch.MemberWatch.changes>`) and the
        elections this member won (from the election's local view; see
        :meth:`GroupLeads.newly_won <leaderpool.tooz.group_leads.GroupLeads.newly_won>` for when it
        reads, and waits at most ``timeout`` or two leases)."""
        deadline = time.monotonic() + (2 * self._ttl_s if timeout is None else timeout)
        found: list[Any] = []
        for group_id, member, joined in self._watch.changes() if self._watch is not None else []:
            if not joined and member == as_bytes(self._member):
                self._joined_groups.discard(group_id)  # we were made to leave, or lapsed
            # .get: indexing tooz's defaultdicts would leave an empty hook list behind, and a
            # group that looks watched forever
            if joined and (on_join := self._hooks_join_group.get(group_id)) is not None:
                found.extend(on_join.run(coordination.MemberJoinedGroup(group_id, member)))
            elif not joined and (on_leave := self._hooks_leave_group.get(group_id)) is not None:
                found.extend(on_leave.run(coordination.MemberLeftGroup(group_id, member)))
        for group_id in list(self._hooks_elected_leader):
            if self._leads.newly_won(group_id, deadline) is not None:
                event = coordination.LeaderElected(group_id, self._member_id)
                found.extend(self._hooks_elected_leader[group_id].run(event))
        return found

    def get_lock(self, name: bytes) -> LeaderpoolLock:
        if self._client is None:
            raise tooz.ToozError("the coordinator is not started")
        return LeaderpoolLock(name, self._client, self._options.lock_ttl_s, self._options.prefix)
