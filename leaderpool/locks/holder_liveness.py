"""The process's liveness connection to Redis, for reclaiming a dead holder's permit before its
lease ends (the queued recipes: semaphores, read-write locks, fair locks).

The election's fast path proves a member's death by its Redis connection being gone
(:mod:`leaderpool.fast_failover`); a permit does the same. Each process opens one connection per
Redis server (and key prefix), asks its ``CLIENT ID``, subscribes it to a channel of its own
(:func:`~leaderpool.backend.keys.connection_channel`, which nobody publishes to) and never leaves
it. A permit records that channel when granted; a script run for a waiter drops a permit whose
channel has no subscriber any more (``PUBSUB NUMSUB``): the process's kernel closed the
connection, so the process is gone (see :mod:`leaderpool.locks.queue_scripts`).

A live process whose connection drops (a network reset, ``CLIENT KILL``) must not keep acting:
a thread blocks reading the connection, and the moment it fails every permit registered on it is
marked lost (``holding`` turns false); the next acquire opens a new connection. Where the
connection cannot be made the same way as the client's (TLS, Sentinel, Cluster, a fake client)
or Redis refuses ``CLIENT ID`` or ``SUBSCRIBE``, nothing is registered and a dead holder's permit
is reclaimed at its lease end, as before.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any, Protocol

import redis
import redis.asyncio
import redis.asyncio.connection
import redis.connection

from leaderpool.backend.keys import connection_channel
from leaderpool.util.log import get_logger
from leaderpool.util.threads import start_thread

CONNECT_TIMEOUT_S = 5.0
"""How long opening the liveness connection may take when the client sets no connect timeout."""
log = get_logger("leaderpool")

_TCP = (redis.connection.Connection, redis.asyncio.connection.Connection)
_UNIX = (redis.connection.UnixDomainSocketConnection, redis.asyncio.connection.UnixDomainSocketConnection)
_SAME = ("db", "username", "password", "credential_provider")


class Losable(Protocol):
    """What a liveness connection tells when it drops (a held permit's state)."""

    def mark_lost(self, why: str) -> None: ...


def _connection_for(pool: Any) -> redis.connection.AbstractConnection | None:
    """A blocking connection to the server ``pool`` connects to, with its credentials; None when
    that cannot be made the same way (TLS, Sentinel, a fake, a cluster)."""
    kind, kwargs = getattr(pool, "connection_class", None), getattr(pool, "connection_kwargs", None)
    if kind is None or kwargs is None:
        return None
    same = {k: kwargs[k] for k in _SAME if kwargs.get(k) is not None}
    connect_s = kwargs.get("socket_connect_timeout") or CONNECT_TIMEOUT_S  # no slower than the client's own
    common = {"socket_timeout": None, "socket_connect_timeout": connect_s, "retry_on_timeout": False}
    if kind in _TCP and "host" in kwargs:
        return redis.connection.Connection(host=kwargs["host"], port=kwargs.get("port", 6379), socket_keepalive=True,
                                           **same, **common)  # fmt: skip
    if kind in _UNIX and "path" in kwargs:
        # redis-py types host as abstract; the class is concrete
        return redis.connection.UnixDomainSocketConnection(path=kwargs["path"], **same, **common)  # type: ignore[abstract]
    return None


def _server(pool: Any) -> tuple[Any, ...] | None:
    kwargs = getattr(pool, "connection_kwargs", None)
    if kwargs is None:
        return None
    return (kwargs.get("host"), kwargs.get("port"), kwargs.get("path"), kwargs.get("db"), kwargs.get("username"))


class Liveness:
    """One subscribed connection and the permits registered on it."""

    def __init__(self, conn: redis.connection.AbstractConnection, prefix: str) -> None:
        self._conn = conn
        self.channel = ""
        self.dropped = threading.Event()
        # by id: a holder's state is a dataclass (unhashable); held weakly, a permit dropped unreleased goes
        self._held: weakref.WeakValueDictionary[int, Losable] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()
        self._prefix = prefix

    def open(self) -> None:
        """Connect, subscribe to our channel, start the reader; raises (closed) on a failure."""
        conn = self._conn
        try:
            conn.connect()
            conn.send_command("CLIENT", "ID")
            channel = connection_channel(self._prefix, int(conn.read_response()))
            conn.send_command("SUBSCRIBE", channel)
            # the confirmation (a pub/sub message to redis-py): subscribed before anyone relies on it
            reply = conn.read_response(push_request=True)
            if not (isinstance(reply, list) and reply and reply[0] in (b"subscribe", "subscribe")):
                raise redis.ResponseError(f"unexpected reply to SUBSCRIBE: {reply!r}")
        except BaseException:
            conn.disconnect()
            raise
        self.channel = channel
        start_thread(self._read, "leaderpool-permit-liveness")

    def _read(self) -> None:
        """Block on the connection until it fails: then every permit on it is lost."""
        try:
            while True:
                self._conn.read_response(push_request=True)  # nobody publishes: only a failure ends this
        except BaseException as exc:  # any end of the connection is its drop
            why = f"{type(exc).__name__}: {str(exc)[:120]}"
        self.dropped.set()
        with self._lock:
            held = list(self._held.values())
        log.warning("liveness_dropped", channel=self.channel, permits=len(held), why=why)
        for state in held:
            state.mark_lost("the process's liveness connection to Redis dropped: a waiter may take the permit")
        self._conn.disconnect()

    def watch(self, state: Losable) -> bool:
        """Register a held permit: False when the connection has dropped already (then the permit
        is not ours to rely on)."""
        with self._lock:
            self._held[id(state)] = state
        return not self.dropped.is_set()

    def unwatch(self, state: Losable) -> None:
        with self._lock:
            self._held.pop(id(state), None)


class _Registry:
    """The process's liveness connections, one per server and prefix, opened on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._open: dict[tuple[Any, ...], Liveness] = {}
        self._refused: set[tuple[Any, ...]] = set()

    def ready(self, client: redis.Redis | redis.asyncio.Redis, prefix: str) -> tuple[bool, Liveness | None]:
        """Without I/O: (True, the connection or None) when known, (False, None) when
        :meth:`for_client` has to open one."""
        server = _server(getattr(client, "connection_pool", None))
        if server is None:
            return True, None
        key = (*server, prefix)
        with self._lock:
            if self._pid != os.getpid():
                return False, None
            current = self._open.get(key)
            if current is not None and not current.dropped.is_set():
                return True, current
            return key in self._refused, None

    def for_client(self, client: redis.Redis | redis.asyncio.Redis, prefix: str) -> Liveness | None:
        """The liveness connection for ``client``'s server (opened now if needed: blocking I/O),
        or None where there is none to be had."""
        pool = getattr(client, "connection_pool", None)
        server = _server(pool)
        if server is None:
            return None
        key = (*server, prefix)
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's connections are not ours
                self._pid, self._open, self._refused = os.getpid(), {}, set()
            current = self._open.get(key)
            if current is not None and not current.dropped.is_set():
                return current
            if key in self._refused:
                return None
            conn = _connection_for(pool)
            if conn is None:
                self._refused.add(key)
                return None
            made = Liveness(conn, prefix)
            try:
                made.open()
            except (redis.RedisError, OSError, ValueError) as exc:
                if isinstance(exc, redis.ResponseError):  # refused (an ACL): do not ask again
                    self._refused.add(key)
                log.info("liveness_unavailable", why=f"{type(exc).__name__}: {str(exc)[:120]}")
                return None
            self._open[key] = made
            return made


LIVENESS = _Registry()
"""The one registry of the process."""
