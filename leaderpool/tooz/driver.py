"""leaderpool as a tooz backend: ``tooz.coordination.get_coordinator("leaderpool://HOST:PORT/DB",
member_id)`` (registered under the ``tooz.backends`` entry point; ``pip install leaderpool[tooz]``);
``?sentinel=MASTER`` for Sentinel, ``?cluster=true`` (or ``?cluster=HOST:PORT,...``, more nodes
to start from) for Redis Cluster, where every script touches one group's slot.

The mapping (see the README's "For tooz users"):

- a tooz group is a leaderpool pool of the same name; ``create_group``/``delete_group``/
  ``get_groups`` keep a registry of created groups, and joined members with their capabilities
  are leased records under the pool's hash tag (:mod:`leaderpool.tooz.groups`): tooz lets a member
  join without running for leader, which no leaderpool pool member can;
- ``watch_elected_as_leader`` makes this coordinator a member of the pool (an
  :class:`~leaderpool.Election`): leaderpool elects (priority, then the oldest candidate, which is
  tooz's first come when priorities are equal), keeps the lead in the background and fails over
  fast; ``run_watchers`` reports the elections the member won since it last ran;
- ``watch_join_group``/``watch_leave_group`` subscribe to the group's events (``joined``, ``left``,
  ``evicted`` pool messages, published by the scripts that change the group) on the process's
  shared pub/sub watcher (:mod:`leaderpool.tooz.group_events`); ``run_watchers`` drains them, and reads
  a group only after a reconnect or once the first lease it knows of there has ended;
- locks are :class:`leaderpool.locks.blocking_lock.Lock`, with the fencing token as ``lock.token``.

Leads and locks are renewed by leaderpool's own background loop and threads, so a process that
calls ``heartbeat`` or ``run_watchers`` late keeps its lead until it dies, stops or loses Redis.
Group membership keeps tooz's contract: ``heartbeat`` renews it (one script per joined group,
which also evicts the group's lapsed members).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager, suppress
from typing import Any, TypeVar
from urllib.parse import quote, unquote

import redis
import tooz
from tooz import coordination, locking

from leaderpool.backend.connect import blocking_client
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.protocol import LeaderValue, PoolEvent
from leaderpool.backend.urls import validate_redis_url
from leaderpool.blocking import Election
from leaderpool.config import MemberConfig
from leaderpool.errors import ConfigError, LeaderpoolError, RedisUnavailable
from leaderpool.locks.blocking_lock import Lock
from leaderpool.tooz.group_events import GroupEvents
from leaderpool.tooz.groups import GroupStatus, GroupStore
from leaderpool.util.log import get_logger

__all__ = ["LeaderpoolDriver", "LeaderpoolLock", "redis_url"]

T = TypeVar("T")

log = get_logger("leaderpool.tooz")

DEFAULT_TIMEOUT_S = 5.0
"""The lease of members, leads and locks (``?timeout=``); leaderpool's default ttl."""

HAND_OVER_POLL_S = 0.002
"""How often stand_down_group_leader looks whether its hand-over has landed in Redis, and
run_watchers whether a vacant lead has been filled."""

_OPTIONS = {"db", "timeout", "sentinel", "cluster", "prefix", "priority", "fast_failover", "lock_timeout", "ssl"}

_YES = ("1", "true", "yes", "on")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: str) -> bytes:
    return value.encode()


def _option(options: dict[str, Any], name: str) -> str | None:
    value = options.get(name)
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = value[-1]
    return str(value)


def _seconds(options: dict[str, Any], name: str, default: float) -> float:
    text = _option(options, name)
    try:
        value = default if text is None else float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"leaderpool tooz URL: {name} must be a positive number of seconds, got {text!r}")
    return value


def redis_url(parsed_url: Any, options: dict[str, Any]) -> str:
    """The redis:// (or redis+sentinel://, redis+cluster://) URL a ``leaderpool://`` URL names.
    ``?cluster=true`` names a Redis Cluster through the URL's node; ``?cluster=HOST:PORT,...``
    adds more nodes to start from (tooz's URL has room for one host)."""
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ConfigError(
            f"leaderpool tooz URL has unknown option(s) {', '.join(sorted(unknown))}; "
            f"it takes {', '.join(sorted(_OPTIONS))}"
        )
    userinfo = ""
    if parsed_url.username or parsed_url.password:
        user = quote(unquote(parsed_url.username or ""), safe="")
        password = quote(unquote(parsed_url.password or ""), safe="")
        userinfo = f"{user}:{password}@" if parsed_url.password is not None else f"{user}@"
    host = parsed_url.hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    db = _option(options, "db") or (parsed_url.path or "").strip("/") or "0"
    if not db.isdigit():
        # tooz's Redis driver ignores the path (its db is ``?db=N``); so does this one, and says so
        log.warning("tooz_url_path_ignored", pool=None, member=None, term=None, path=db, db=0)
        db = "0"
    sentinel = _option(options, "sentinel")
    ssl = (_option(options, "ssl") or "").lower() in _YES
    cluster = _option(options, "cluster") or ""
    if cluster.lower() not in ("", "0", "false", "no", "off"):
        if sentinel:
            raise ConfigError("leaderpool tooz URL: sentinel and cluster name different setups; give one")
        if db != "0":
            raise ConfigError(f"leaderpool tooz URL: a Redis Cluster has only database 0, got {db}")
        more = "" if cluster.lower() in _YES else f",{cluster}"
        scheme = "rediss+cluster" if ssl else "redis+cluster"
        url = f"{scheme}://{userinfo}{host}:{parsed_url.port or 6379}{more}/0"
        validate_redis_url(url)  # a bad node list: one clear error now, not at start()
        return url
    if sentinel:
        scheme = "rediss+sentinel" if ssl else "redis+sentinel"
        return f"{scheme}://{userinfo}{host}:{parsed_url.port or 26379}/{quote(sentinel, safe='')}/{db}"
    scheme = "rediss" if ssl else "redis"
    return f"{scheme}://{userinfo}{host}:{parsed_url.port or 6379}/{db}"


@contextmanager
def _translated() -> Iterator[None]:
    """Redis failures as tooz's connection error, which callers of tooz expect."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, RedisUnavailable) as exc:
        raise coordination.ToozConnectionError(str(exc)) from exc
    except (redis.exceptions.RedisError, LeaderpoolError) as exc:
        if isinstance(exc, tooz.ToozError):
            raise
        raise tooz.ToozError(str(exc)) from exc


def _result(fn: Callable[..., T], *args: Any) -> coordination.CoordinatorResult[T]:
    """Run ``fn`` now; its result or error comes out of ``.get()``, as tooz's contract wants."""
    fut: futures.Future[T] = futures.Future()
    try:
        with _translated():
            fut.set_result(fn(*args))
    except Exception as exc:
        fut.set_exception(exc)
    return coordination.CoordinatorResult(fut)


class LeaderpoolLock(locking.Lock):
    """A tooz lock on :class:`leaderpool.locks.blocking_lock.Lock`: renewed in the background while held, with
    a fencing token per acquisition (:attr:`token`). Exclusive only (shared raises tooz's
    NotImplemented). One object is also exclusive between the threads that share it."""

    def __init__(self, name: bytes, client: redis.Redis, ttl_s: int) -> None:
        super().__init__(name)
        self._lock = Lock(client, _text(name), ttl_s=ttl_s)
        self._local = threading.Lock()

    @property
    def token(self) -> int | None:
        """The fencing token of the current acquisition (strictly increasing per name), or None."""
        return self._lock.token

    def acquire(self, blocking: bool | float = True, shared: bool = False, timeout: float | None = None) -> bool:
        if shared:
            raise tooz.NotImplemented("leaderpool locks are exclusive")
        wait, limit = _blocking(blocking, timeout)
        began = time.monotonic()
        # threading.Lock refuses a timeout on a non-blocking call
        if not (self._local.acquire(True, -1 if limit is None else limit) if wait else self._local.acquire(False)):
            return False
        left = None if limit is None else max(0.0, limit - (time.monotonic() - began))
        try:
            with _translated():
                taken = self._lock.acquire(blocking=wait, timeout=left)
        except BaseException:
            self._local.release()
            raise
        if not taken:
            self._local.release()
        return taken

    def release(self) -> bool:
        if self._lock.token is None:
            return False
        try:
            with _translated():
                self._lock.release()
        finally:
            self._local.release()
        return not self._lock.lost

    def break_(self) -> bool:
        with _translated():
            self._lock.reset()
        return True

    def is_still_owner(self) -> bool:
        if self._lock.token is None:
            return False
        with _translated():
            owner = self._lock.get_owner_id()
        return bool(owner == self._lock.id)


class _LocalHandOvers:
    """Leads given up by this process's coordinators (stop, stand-down). The successor may be
    another coordinator of this process whose election has not heard of it yet (tooz's suite
    checks at once), so after one, run_watchers asks Redis instead of trusting the local view."""

    _lock = threading.Lock()
    count = 0

    @classmethod
    def bump(cls) -> None:
        with cls._lock:
            cls.count += 1


def _blocking(blocking: bool | float, timeout: float | None) -> tuple[bool, float | None]:
    """tooz's ``blocking`` is a bool or a number of seconds to wait."""
    if isinstance(blocking, bool):
        return blocking, timeout
    return True, float(blocking)


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
        self._url = redis_url(parsed_url, options)
        self._ttl_s = _seconds(options, "timeout", DEFAULT_TIMEOUT_S)
        self._prefix = _option(options, "prefix") or "leaderpool"
        priority = _option(options, "priority") or "0"
        if not priority.lstrip("-").isdigit():
            raise ConfigError(f"leaderpool tooz URL: priority must be an integer, got {priority!r}")
        self._priority = int(priority)
        self._fast_failover = (_option(options, "fast_failover") or "1").lower() not in ("0", "false", "no", "off")
        self._lock_ttl_s = max(1, math.ceil(_seconds(options, "lock_timeout", self._ttl_s)))
        self._member = _text(member_id)
        self._client: redis.Redis | None = None
        self._groups: GroupStore | None = None
        self._elections: dict[bytes, Election] = {}
        self._announced: dict[bytes, int] = {}
        self._hand_overs_seen: dict[bytes, int] = {}
        self._members_seen: dict[bytes, set[bytes]] = {}
        self._events: GroupEvents | None = None
        self._lapse_due: dict[bytes, float] = {}
        """Per watched group, the monotonic instant its first known lease ends: a member may
        have lapsed unannounced (a crash) and run_watchers reads the group (evicting it)."""

    # ---- start and stop ----

    def _start(self) -> None:
        client = blocking_client(self._url, socket_connect_timeout=self._ttl_s, socket_timeout=self._ttl_s)
        try:
            with _translated():
                client.ping()
        except Exception:
            client.close()
            raise
        self._client = client
        self._groups = GroupStore(client, self._prefix)
        self._events = GroupEvents(self._url)
        for group_id in self._watched_groups():  # a restart keeps tooz's hooks: listen again
            with suppress(coordination.GroupNotCreated):
                self._watch_members(group_id)

    def _watched_groups(self) -> set[bytes]:
        return {g for g in set(self._hooks_join_group) | set(self._hooks_leave_group) if self._has_hooks_for_group(g)}

    def _stop(self) -> None:
        for group in list(self._elections):
            self._stop_election(group)
        if self._events is not None:
            self._events.close()
        if self._client is not None:
            self._client.close()
        self._client = self._groups = self._events = None
        self._members_seen.clear()
        self._lapse_due.clear()

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
            with _translated():
                refreshed = self._store.refresh(_text(group), self._member, ttl_ms)
            self._note_lapse(group, refreshed.next_lapse_ms)
            if not refreshed.renewed:
                log.warning("tooz_membership_lost", pool=_text(group), member=self._member, term=None)
                self._joined_groups.discard(group)
        return self._ttl_s / 3

    # ---- groups ----

    def create_group(self, group_id: bytes) -> coordination.CoordAsyncResult[None]:
        def create() -> None:
            if not self._store.create(_text(group_id)):
                raise coordination.GroupAlreadyExist(group_id)

        return _result(create)

    def get_groups(self) -> coordination.CoordAsyncResult[list[bytes]]:
        return _result(lambda: [_bytes(g) for g in self._store.groups()])

    def delete_group(self, group_id: bytes) -> coordination.CoordAsyncResult[None]:
        def delete() -> None:
            status = self._store.delete(_text(group_id))
            if status is GroupStatus.NO_GROUP:
                raise coordination.GroupNotCreated(group_id)
            if status is GroupStatus.CONFLICT:
                raise coordination.GroupNotEmpty(group_id)

        return _result(delete)

    def join_group(
        self, group_id: bytes, capabilities: coordination.Capabilities | None = None
    ) -> coordination.CoordAsyncResult[None]:
        def join() -> None:
            status = self._store.join(_text(group_id), self._member, capabilities, int(self._ttl_s * 1000))
            if status is GroupStatus.NO_GROUP:
                raise coordination.GroupNotCreated(group_id)
            if status is GroupStatus.CONFLICT:
                raise coordination.MemberAlreadyExist(group_id, self._member)
            self._joined_groups.add(group_id)

        return _result(join)

    def leave_group(self, group_id: bytes) -> coordination.CoordAsyncResult[None]:
        def leave() -> None:
            self._joined_groups.discard(group_id)
            status = self._store.leave(_text(group_id), self._member)
            if status is GroupStatus.NO_GROUP:
                raise coordination.GroupNotCreated(group_id)
            if status is GroupStatus.CONFLICT:
                raise coordination.MemberNotJoined(group_id, self._member)

        return _result(leave)

    def _read(self, group_id: bytes) -> dict[str, Any]:
        members = self._store.read(_text(group_id))
        if members is None:
            raise coordination.GroupNotCreated(group_id)
        return members

    def get_members(self, group_id: bytes) -> coordination.CoordAsyncResult[set[bytes]]:
        return _result(lambda: {_bytes(m) for m in self._read(group_id)})

    def get_members_with_capabilities(
        self, group_id: bytes
    ) -> coordination.CoordAsyncResult[dict[bytes, coordination.Capabilities | None]]:
        return _result(lambda: {_bytes(m): info.capabilities for m, info in self._read(group_id).items()})

    def _one(self, group_id: bytes, member_id: bytes) -> Any:
        info = self._read(group_id).get(_text(member_id))
        if info is None:
            raise coordination.MemberNotJoined(group_id, member_id)
        return info

    def get_member_capabilities(
        self, group_id: bytes, member_id: bytes
    ) -> coordination.CoordAsyncResult[coordination.Capabilities | None]:
        return _result(lambda: self._one(group_id, member_id).capabilities)

    def get_member_info(self, group_id: bytes, member_id: bytes) -> coordination.CoordAsyncResult[dict[str, Any]]:
        def info() -> dict[str, Any]:
            one = self._one(group_id, member_id)
            return {
                "capabilities": one.capabilities,
                "created_at": one.created_at_ms / 1000,
                "updated_at": one.updated_at_ms / 1000,
            }

        return _result(info)

    def update_capabilities(
        self, group_id: bytes, capabilities: coordination.Capabilities
    ) -> coordination.CoordAsyncResult[None]:
        def update() -> None:
            status = self._store.update(_text(group_id), self._member, capabilities)
            if status is GroupStatus.NO_GROUP:
                raise coordination.GroupNotCreated(group_id)
            if status is GroupStatus.CONFLICT:
                raise coordination.MemberNotJoined(group_id, self._member)

        return _result(update)

    # ---- watching members ----

    def _note_lapse(self, group_id: bytes, next_lapse_ms: int | None) -> None:
        if group_id in self._members_seen:
            due = math.inf if next_lapse_ms is None else time.monotonic() + next_lapse_ms / 1000
            self._lapse_due[group_id] = due

    def _watch_members(self, group_id: bytes) -> None:
        """Subscribe to the group's events, then read it once: events that cross the read
        are applied by set difference, so they change nothing."""
        if group_id in self._members_seen or self._events is None:
            return
        with _translated():
            channel = self._store.keys(_text(group_id)).events
            self._events.watch(_text(group_id), channel, timeout=self._ttl_s)
            try:
                self._refresh_members(group_id)
            except coordination.GroupNotCreated:
                self._events.unwatch(_text(group_id))
                raise

    def _refresh_members(self, group_id: bytes) -> set[bytes]:
        """Read the group (one script); its members as the new baseline."""
        snapshot = self._store.snapshot(_text(group_id))
        if snapshot is None:
            raise coordination.GroupNotCreated(group_id)
        self._members_seen[group_id] = {_bytes(m) for m in snapshot.members}
        self._note_lapse(group_id, snapshot.next_lapse_ms)
        return self._members_seen[group_id]

    def _unwatch_members(self, group_id: bytes) -> None:
        if self._has_hooks_for_group(group_id) or group_id not in self._members_seen:
            return
        self._members_seen.pop(group_id, None)
        self._lapse_due.pop(group_id, None)
        if self._events is not None:
            with _translated():
                self._events.unwatch(_text(group_id))

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

    def _member_changes(self) -> list[tuple[bytes, bytes, bool]]:
        """(group, member, joined?) since the last run: the queued events first (no Redis
        command), then one read per group whose events may have been missed (a reconnect) or
        whose first known lease has ended (a member may have lapsed unannounced)."""
        changes: list[tuple[bytes, bytes, bool]] = []
        if self._events is None:
            return changes
        for group, message in self._events.drain():
            group_id = _bytes(group)
            seen = self._members_seen.get(group_id)
            if seen is None:  # no longer watched
                continue
            member = _bytes(message.member)
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
        stale = list(dict.fromkeys([_bytes(g) for g in missed] + due))
        for i, group_id in enumerate(stale):
            before = self._members_seen.get(group_id)
            if before is None:
                continue
            try:
                with _translated():
                    after = self._refresh_members(group_id)
            except coordination.GroupNotCreated:
                after = self._members_seen[group_id] = set()
                self._lapse_due[group_id] = math.inf
            except coordination.ToozConnectionError as exc:
                # Redis is away: what was heard is still reported; the reads wait for the next run
                self._events.mark(missed & {_text(g) for g in stale[i:]})
                log.warning("tooz_members_unread", pool=_text(group_id), member=self._member, term=None, error=str(exc))
                break
            changes.extend((group_id, m, True) for m in after - before)
            changes.extend((group_id, m, False) for m in before - after)
        return changes

    # ---- leader election ----

    def watch_elected_as_leader(
        self, group_id: bytes, callback: coordination.EventCallback[coordination.LeaderElected]
    ) -> None:
        super().watch_elected_as_leader(group_id, callback)
        self._run_for(group_id)

    def unwatch_elected_as_leader(
        self, group_id: bytes, callback: coordination.EventCallback[coordination.LeaderElected]
    ) -> None:
        super().unwatch_elected_as_leader(group_id, callback)
        if group_id not in self._hooks_elected_leader:
            self._stop_election(group_id)

    def _run_for(self, group_id: bytes) -> None:
        if group_id in self._elections or self._client is None:
            return
        config = MemberConfig(
            pool=_text(group_id),
            member_id=self._member,
            priority=self._priority,
            ttl_s=self._ttl_s,
            prefix=self._prefix,
            fast_failover=self._fast_failover,
            meta={"tooz": True},
        )
        election = Election(config, self._url)
        election.start()
        self._elections[group_id] = election

    def _stop_election(self, group_id: bytes) -> None:
        election = self._elections.pop(group_id, None)
        self._announced.pop(group_id, None)
        self._hand_overs_seen.pop(group_id, None)
        if election is not None:
            try:
                election.stop()
            finally:
                _LocalHandOvers.bump()

    def _won(self, election: Election, deadline: float) -> int | None:
        """The term this member leads with, once the election has settled (waiting up to
        ``deadline`` for a vacancy to fill or a lead handed to us to arrive); None if another
        member leads. No Redis command while the local view has another member leading and no
        coordinator of this process has given up a lead since the last look."""
        if election.is_leader:
            return election.term
        group_id = _bytes(election.pool)
        leader, hand_overs = election.leader, _LocalHandOvers.count
        if leader is not None and leader.member != self._member and self._hand_overs_seen.get(group_id) == hand_overs:
            return None
        self._hand_overs_seen[group_id] = hand_overs
        try:
            # a new candidate has joined once its own first read of the pool found a leader (local)
            election.wait_for_leader(timeout=max(0.0, deadline - time.monotonic()))
            found = self._leader_value(election.pool)  # one GET: the local view may be a hand-over late
            while found is None:  # a vacancy (first start, a release): Redis says who fills it
                if time.monotonic() >= deadline:
                    return None
                time.sleep(HAND_OVER_POLL_S)
                found = self._leader_value(election.pool)
            if found.member != self._member:
                return None
            return election.wait_until_leader(timeout=max(0.0, deadline - time.monotonic()))
        except (TimeoutError, asyncio.TimeoutError):  # distinct classes on Python 3.10
            return None

    def _leader_value(self, pool: str) -> LeaderValue | None:
        return LeaderValue.parse(self._store.client.get(Keyspace(pool, self._prefix).leader))

    def get_leader(self, group_id: bytes) -> coordination.CoordAsyncResult[bytes | None]:  # type: ignore[override]
        def leader() -> bytes | None:
            value = self._leader_value(_text(group_id))
            return None if value is None else _bytes(value.member)

        return _result(leader)

    def stand_down_group_leader(self, group_id: bytes) -> bool:
        """Hand the lead to the next candidate (leaderpool's resign); this member stays a
        candidate, ranked last for one lease."""
        election = self._elections.get(group_id)
        term = None if election is None else election.term
        if election is None or term is None:
            return False
        try:
            with _translated():
                election.resign()
                # tooz callers expect the lead gone on return: wait for the hand-over script
                deadline = time.monotonic() + 2 * self._ttl_s
                while time.monotonic() < deadline:
                    leader = self._leader_value(election.pool)
                    if leader is None or leader.member != self._member or leader.term != term:
                        break
                    time.sleep(HAND_OVER_POLL_S)
        finally:
            _LocalHandOvers.bump()  # once Redis shows it: a successor here may not have heard yet
        return True

    # ---- run_watchers ----

    def run_watchers(self, timeout: float | None = None) -> list[Any]:
        """Report membership changes since the last run (from the events heard in the
        background: no Redis command unless a reconnect or a lease's end calls for a read, see
        :meth:`_member_changes`) and the elections this member won (from the election's local
        view; see :meth:`_won` for when it reads, and waits at most ``timeout`` or two leases)."""
        deadline = time.monotonic() + (2 * self._ttl_s if timeout is None else timeout)
        result: list[Any] = []
        for group_id, member, joined in self._member_changes():
            if not joined and member == _bytes(self._member):
                self._joined_groups.discard(group_id)  # we were made to leave, or lapsed
            # .get: indexing tooz's defaultdicts would leave an empty hook list behind, and a
            # group that looks watched forever
            if joined and (on_join := self._hooks_join_group.get(group_id)) is not None:
                result.extend(on_join.run(coordination.MemberJoinedGroup(group_id, member)))
            elif not joined and (on_leave := self._hooks_leave_group.get(group_id)) is not None:
                result.extend(on_leave.run(coordination.MemberLeftGroup(group_id, member)))
        for group_id in list(self._hooks_elected_leader):
            self._run_for(group_id)
            election = self._elections.get(group_id)
            if election is None:
                continue
            with _translated():
                term = self._won(election, deadline)
            if term is not None and self._announced.get(group_id) != term:
                self._announced[group_id] = term
                log.info("tooz_elected", pool=_text(group_id), member=self._member, term=term)
                event = coordination.LeaderElected(group_id, self._member_id)
                result.extend(self._hooks_elected_leader[group_id].run(event))
        return result

    def get_lock(self, name: bytes) -> LeaderpoolLock:
        if self._client is None:
            raise tooz.ToozError("the coordinator is not started")
        return LeaderpoolLock(name, self._client, self._lock_ttl_s)
