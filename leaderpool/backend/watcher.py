"""One pub/sub connection per event loop and Redis server, serving every pool of the process.

Members register a listener for a pool; the watcher subscribes to the leader key's keyspace
channel and to the pool's events channel, and calls the listener with ``(KEYSPACE, event)``,
``(EVENTS, payload)``, ``(DISCONNECTED, "")`` the moment the connection is lost, or
``(RESYNC, "")`` after it was re-established (pub/sub is fire-and-forget: whatever happened while
disconnected is lost, so listeners re-read state): the sources are
:class:`~leaderpool.backend.listener.NotificationSource`.

The connection's Redis client id (``CLIENT ID``, asked before subscribing) is :attr:`client_id`:
a leader registers it for fast failover (:mod:`leaderpool.fast_failover.failover`) and steps down when it
drops. Before anything else the connection subscribes to a channel of its own, which nobody
publishes to: a script proves the connection gone by that channel's having no subscriber.
The connection is used with no retries inside redis-py, so a drop is always seen here.
A notification is a hint, never the truth: listeners re-read Redis after every one.

Members get the watcher of their loop and server from
:func:`~leaderpool.backend.shared_watcher.shared_watcher`: on a Redis Cluster, a
:class:`~leaderpool.backend.cluster_watcher.ClusterWatcher` (one watcher of this kind per master
that serves a watched slot, behind the same API).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any
from weakref import WeakKeyDictionary

from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from leaderpool import probe
from leaderpool.backend.acl import acl_user
from leaderpool.backend.clients import AsyncClient, clone_async_client
from leaderpool.backend.keys import Keyspace, connection_channel
from leaderpool.backend.listener import Listener, NotificationSource
from leaderpool.backend.protocol import connection_registration, text
from leaderpool.backend.redis_errors import COMMAND_REFUSED, REDIS_FAILURES, RETRYABLE, auth_failure_code
from leaderpool.util.constants import NEEDED_KEYSPACE_FLAGS as NEEDED_KEYSPACE_FLAGS  # re-exported for doctor
from leaderpool.util.constants import WATCHER_RETRY_FIRST_S, WATCHER_RETRY_MAX_S
from leaderpool.util.log import get_logger
from leaderpool.util.timeouts import cancel_and_wait, within

_ALIAS_A = set("g$lshzxetd")

log = get_logger("leaderpool.watcher")

_warned_about_config: list[bool] = []  # one warning per process, however many watchers come and go


_shared: WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], Watcher]] = WeakKeyDictionary()
"""The watchers in use, by event loop and identity (:func:`shared_on_loop`)."""


def shared_on_loop(identity: tuple[Any, ...], make: Callable[[], Watcher]) -> Watcher:
    """The watcher of the running loop registered under ``identity``, made by ``make`` (and
    registered) if there is none. A watcher leaves the registry as it closes, with its last
    listener. :func:`~leaderpool.backend.shared_watcher.shared_watcher` chooses the identity."""
    by_server = _shared.setdefault(asyncio.get_running_loop(), {})
    watcher = by_server.get(identity)
    if watcher is None:
        watcher = by_server[identity] = make()
    return watcher


def server_identity(client: AsyncClient) -> tuple[Any, ...]:
    """What makes two clients the same Redis server for sharing a watcher."""
    pool = client.connection_pool
    kw = pool.connection_kwargs
    return (
        pool.connection_class.__name__,
        kw.get("host"),
        kw.get("port"),
        kw.get("path"),
        kw.get("db", 0),
        kw.get("username"),
        id(kw.get("server")),  # fakeredis: one FakeServer is one Redis
    )


def missing_keyspace_flags(current: str) -> str:
    """The flags of :data:`NEEDED_KEYSPACE_FLAGS` that ``current`` lacks."""
    have = set(current)
    if "A" in have:
        have |= _ALIAS_A
    return "".join(f for f in NEEDED_KEYSPACE_FLAGS if f not in have)


async def _as_is(message: Any) -> Any:
    """Each message as it came: redis-py's default handler formats every message for a debug log
    line, even with debug off (thousands of lease renewals a second, in a process of many pools)."""
    return message


async def _subscribe_own(pubsub: PubSub, client_id: int, prefixes: list[str]) -> set[str]:
    """Subscribe the pub/sub connection ``client_id`` to its own channel under each prefix
    (:func:`~leaderpool.backend.keys.connection_channel`), one by one, before anything else is subscribed,
    reading each confirmation (a push message in RESP3): once it is read, Redis counts the
    subscription, so a registration written after it may say so. Returns the channels subscribed
    (an ACL may refuse some)."""
    conn = pubsub.connection
    assert conn is not None  # connect() ran
    subscribed: set[str] = set()
    if client_id <= 0:
        return subscribed
    for prefix in prefixes:
        channel = connection_channel(prefix, client_id)
        await conn.send_command("SUBSCRIBE", channel)
        try:
            reply = await conn.read_response(push_request=True)
        except COMMAND_REFUSED:  # its ACL has no such channel: its leaders are proved gone by CLIENT LIST
            continue
        if isinstance(reply, list) and len(reply) == 3 and text(reply[1]) == channel:
            subscribed.add(channel)
    return subscribed


async def _ask_client_id(pubsub: PubSub) -> int:
    """CLIENT ID of the pub/sub connection, before it subscribes (0 if CLIENT is refused). The
    connection must never reconnect behind our back (its id would change unseen): no retries."""
    conn = pubsub.connection
    assert conn is not None  # connect() ran
    conn.retry = Retry(NoBackoff(), 0)
    await conn.send_command("CLIENT", "ID")
    try:
        return int(await conn.read_response())
    except COMMAND_REFUSED:  # an ACL without CLIENT, fakeredis: followers probe the endpoint
        return 0


class Watcher:
    """Keyspace and pool-event notifications for every pool watched in this process."""

    def __init__(self, client: AsyncClient) -> None:
        self._identity = server_identity(client)
        # our own connections: members come and go, closing their clients, while we serve on
        self._client = clone_async_client(client)
        self._db = int(client.connection_pool.connection_kwargs.get("db", 0) or 0)
        self._listeners: dict[str, list[Listener]] = {}
        self._confirmed: dict[str, asyncio.Event] = {}
        self._pubsub: PubSub | None = None
        self._subscribed: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.keyspace_notifications: bool | None = None
        """True once Redis confirmed keyspace events; False where CONFIG is refused."""
        self.client_id: int | None = None
        """The pub/sub connection's Redis client id while it is up; 0 where CLIENT is refused;
        None while disconnected."""
        self._prefixes: set[str] = set()
        self._own_channels: set[str] = set()  # this connection's channels (see _subscribe_own)

    @property
    def idle(self) -> bool:
        """Whether no listener is left (the connection is closed then)."""
        return not self._listeners

    def channels_for(self, keys: Keyspace) -> tuple[str, str]:
        return keys.leader_channel(self._db), keys.events

    async def watch(self, keys: Keyspace, listener: Listener, timeout: float = 5.0) -> None:
        """Deliver ``keys``' notifications to ``listener``; returns once subscribed (or after
        ``timeout`` if Redis is unreachable: the watcher keeps trying and resyncs when back)."""
        # the connection subscribes to its own channel under each prefix as it connects (a prefix
        # first watched once it is up waits for the next connection: CLIENT LIST serves meanwhile)
        self._prefixes.add(keys.prefix)
        await self.watch_channels(self.channels_for(keys), listener, timeout)

    def registration(self, prefix: str) -> str:
        """What a leader of a pool under ``prefix`` registers for this connection
        (:func:`~leaderpool.backend.protocol.connection_registration`); "" while disconnected."""
        client_id = self.client_id
        if client_id is None:
            return ""
        subscribed = connection_channel(prefix, client_id) in self._own_channels
        return connection_registration(client_id, subscribed=subscribed)

    async def watch_channels(self, channels: tuple[str, ...], listener: Listener, timeout: float = 5.0) -> None:
        """Deliver messages on ``channels`` (plain pub/sub channels: ``(EVENTS, payload)``) to
        ``listener``, and ``(RESYNC, "")`` after a reconnection; returns once subscribed (``timeout``
        0: once the subscription is sent)."""
        for ch in channels:
            self._listeners.setdefault(ch, []).append(listener)
            self._confirmed.setdefault(ch, asyncio.Event())
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="leaderpool-watcher")
        await self._sync_subscriptions(channels)
        if timeout <= 0:  # not waiting for Redis's confirmation (and no zero timeout racing a cancellation)
            return
        with contextlib.suppress(TimeoutError):
            await within(asyncio.gather(*(self._confirmed[ch].wait() for ch in channels)), timeout)

    async def unwatch(self, keys: Keyspace, listener: Listener) -> None:
        """Stop delivering to ``listener``; the connection closes with the last listener."""
        await self.unwatch_channels(self.channels_for(keys), listener)

    async def unwatch_channels(self, channels: tuple[str, ...], listener: Listener) -> None:
        for ch in channels:
            listeners = self._listeners.get(ch, [])
            if listener in listeners:
                listeners.remove(listener)
            if not listeners and ch in self._listeners:
                del self._listeners[ch]
                self._confirmed.pop(ch, None)
        if not self._listeners:
            await self.close()
        else:
            await self._sync_subscriptions(channels)

    async def _sync_subscriptions(self, channels: Iterable[str] | None = None) -> None:
        """Subscribe to channels that gained listeners, unsubscribe from those that lost all:
        among ``channels`` (a member's watch or unwatch: a process may watch tens of thousands of
        channels), or all of them. Before the connection is up this does nothing:
        :meth:`_connect` calls it once ready."""
        pubsub = self._pubsub
        if not self._ready.is_set() or pubsub is None:
            return
        listened, subscribed = self._listeners, self._subscribed
        candidates = listened.keys() | subscribed if channels is None else set(channels)
        added = sorted(ch for ch in candidates if ch in listened and ch not in subscribed)
        removed = sorted(ch for ch in candidates if ch not in listened and ch in subscribed)
        subscribed.update(added)  # before awaiting, so a concurrent call does not repeat us
        subscribed.difference_update(removed)
        try:
            if added:
                await pubsub.subscribe(*added)
            if removed:
                await pubsub.unsubscribe(*removed)
        except REDIS_FAILURES:
            pass  # the reader notices the broken connection and resubscribes everything

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        await self._disconnect()
        with contextlib.suppress(Exception):
            await self._client.aclose()
        self._unregister()

    def _unregister(self) -> None:
        """Leave the registry of :func:`shared_on_loop`: the next watch there makes a new watcher."""
        by_server = _shared.get(asyncio.get_running_loop(), {})
        if by_server.get(self._identity) is self:
            del by_server[self._identity]

    async def _run(self) -> None:
        delay = WATCHER_RETRY_FIRST_S
        first = True
        auth_errors: set[str] = set()
        while True:
            try:
                await self._connect()
                if not first:
                    log.info("watcher_resubscribed", channels=len(self._listeners))
                    probe.reconnected()
                    self._dispatch_all(NotificationSource.RESYNC, "")
                first = False
                delay = WATCHER_RETRY_FIRST_S
                auth_errors.clear()
                await self._read()
            except asyncio.CancelledError:
                await self._disconnect()
                raise
            except RETRYABLE as exc:
                self._ready.clear()
                await self._disconnect()
                self._dispatch_all(NotificationSource.DISCONNECTED, "")
                first = False
                code = auth_failure_code(exc)
                if code is not None:  # a configuration error: say so once, retry slowly
                    delay = WATCHER_RETRY_MAX_S
                    if str(exc) not in auth_errors:
                        auth_errors.add(str(exc))
                        log.error("watcher_auth_failed", code=code, error=str(exc), retry_s=delay)
                else:
                    log.warning("watcher_disconnected", error=str(exc) or type(exc).__name__, retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, WATCHER_RETRY_MAX_S)

    async def _connect(self) -> None:
        await self._ensure_keyspace_events()
        pubsub = self._pubsub = self._client.pubsub(push_handler_func=_as_is)
        self._subscribed = set()
        for event in self._confirmed.values():
            event.clear()
        await pubsub.connect()
        client_id = await _ask_client_id(pubsub)
        self._own_channels = await _subscribe_own(pubsub, client_id, sorted(self._prefixes))
        self.client_id = client_id
        await pubsub.ping()
        self._ready.set()
        await self._sync_subscriptions()

    async def _disconnect(self) -> None:
        self.client_id = None
        self._own_channels = set()
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _read(self) -> None:
        pubsub = self._pubsub
        assert pubsub is not None  # set by _connect, which runs first
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            kind = text(message["type"])
            channel = text(message["channel"]) if message.get("channel") is not None else ""
            if kind == "subscribe":
                event = self._confirmed.get(channel)
                if event is not None:
                    event.set()
            elif kind == "message":
                payload = text(message["data"])
                keyspace = channel.startswith("__keyspace@")
                source = NotificationSource.KEYSPACE if keyspace else NotificationSource.EVENTS
                for listener in list(self._listeners.get(channel, ())):
                    self._deliver(listener, source, payload)

    def _dispatch_all(self, source: NotificationSource, payload: str) -> None:
        seen: set[int] = set()
        for listeners in list(self._listeners.values()):
            for listener in listeners:
                if id(listener) not in seen:
                    seen.add(id(listener))
                    self._deliver(listener, source, payload)

    @staticmethod
    def _deliver(listener: Listener, source: NotificationSource, payload: str) -> None:
        try:
            listener(source, payload)
        except Exception:
            log.exception("watcher_listener_failed", source=source.value)

    async def _ensure_keyspace_events(self) -> None:
        """Turn on the keyspace events leaderpool needs, where CONFIG is allowed.

        Managed Redis services and fakeredis refuse CONFIG: one warning, then members rely on
        their lease-deadline timers and the pool events channel. An ACL user (a user named in
        the URL, not ``default``) is not asked: the printed rules leave CONFIG out (``CONFIG
        GET`` reads the server's secrets), and a refusal would fill the ACL log at every start;
        the operator sets the events, and ``leaderpool-cli doctor`` checks them by hearing them.
        """
        user = acl_user(self._client)
        if user is not None:
            self.keyspace_notifications = None
            if not _warned_about_config:
                _warned_about_config.append(True)
                log.info("keyspace_events_unchecked", user=user, hint="leaderpool-cli doctor checks them")
            return
        try:
            reply = await self._client.config_get("notify-keyspace-events")
            current = {text(k): text(v) for k, v in reply.items()}.get("notify-keyspace-events", "")
            missing = missing_keyspace_flags(current)
            if missing:
                await self._client.config_set("notify-keyspace-events", current + missing)
                log.info("keyspace_events_enabled", flags=current + missing)
            self.keyspace_notifications = True
        except COMMAND_REFUSED as exc:  # CONFIG refused (managed Redis, fakeredis, an ACL)
            self.keyspace_notifications = False
            if not _warned_about_config:
                _warned_about_config.append(True)
                log.warning(
                    "keyspace_events_unavailable",
                    error=str(exc),
                    hint="set notify-keyspace-events to include Kg$x; meanwhile failover relies on lease timers",
                )
