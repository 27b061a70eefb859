"""Liveness endpoints, the sockets of fast failover (:mod:`leaderpool.fast_failover.failover`): a member
process's TCP listener (:class:`Endpoint`), and the connections other processes keep to it
(:class:`Link`), with the fallback check (:func:`endpoint_gone`).

One :class:`Endpoint` per process (per event loop and listening address) serves every member of
the process; it says hello with a random nonce it advertises, then holds each connection open
until the process dies or its last member stops. One :class:`Link` per remote endpoint serves
every member of this process watching it, and reports a close by the peer (EOF, a reset, a
refused reconnect, another process answering), never a timeout. Both carry TCP keep-alive so an
idle middlebox does not drop them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import secrets
import socket
from collections.abc import Callable
from typing import ClassVar
from weakref import WeakKeyDictionary

from leaderpool.backend.clients import AsyncClient
from leaderpool.config import MemberConfig, parse_host_port
from leaderpool.fast_failover import descriptor_slots
from leaderpool.fast_failover.admission import ACCEPT_BURST, Admission
from leaderpool.util.log import get_logger
from leaderpool.util.throttle import Throttle
from leaderpool.util.timeouts import within

HELLO = b"leaderpool-liveness "
"""What an endpoint says first, followed by its nonce and a newline."""
KEEPALIVE = {"TCP_KEEPIDLE": 15, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3}
"""Keep-alive probes after 15 s idle, 5 s apart, 3 of them: a middlebox's idle timer is reset,
and a vanished peer shows as a timeout (silence, never a trigger) within half a minute."""
HELLO_TIMEOUT_S = 2.0
"""How long a link waits for an endpoint's hello once connected."""
LINK_RETRY_FIRST_S, LINK_RETRY_MAX_S = 0.05, 2.0
"""Reconnect delays of a link whose connection failed or closed, while anyone watches it."""

log = get_logger("leaderpool.liveness")


def keep_alive(sock: socket.socket) -> None:
    """TCP keep-alive with :data:`KEEPALIVE` (where the platform has the options)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in KEEPALIVE.items():
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


def route_address(client: AsyncClient) -> str:
    """The local address this process uses to reach Redis (a UDP connect sends nothing; it asks
    the kernel for the route); 127.0.0.1 for a unix socket or an in-process fake."""
    nodes = getattr(client, "nodes_manager", None)  # a RedisCluster: the route to a node of it
    kwargs = next(iter(nodes.startup_nodes.values())).connection_kwargs if nodes else None
    kwargs = kwargs or client.connection_pool.connection_kwargs
    host, port = kwargs.get("host"), kwargs.get("port") or 6379
    if not host or "path" in kwargs or "server" in kwargs:
        return "127.0.0.1"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, _, _, _, address = infos[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(address)
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_endpoint(advertised: str) -> tuple[str, int, str] | None:
    """``HOST:PORT/NONCE`` as (host, port, nonce); None when malformed (a newer peer's format)."""
    address, _, nonce = advertised.rpartition("/")
    try:
        host, port = parse_host_port("endpoint", address, port_required=True)
    except ValueError:
        return None
    return (host, port, nonce) if host and port and nonce else None


# ---- the listener ----


class Endpoint:
    """This process's liveness listener. It only says hello (with its nonce) and holds each
    connection open until the process dies or the last member using it stops.

    Accepted connections move to low descriptor slots (:mod:`leaderpool.fast_failover.descriptor_slots`): a
    dying process's kernel then releases its Redis connections before them, so by the time a
    follower reads the close and asks Redis, Redis has heard of the leader's close already."""

    _shared: ClassVar[WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, int, str], Endpoint]]] = (
        WeakKeyDictionary()
    )

    def __init__(self, host: str, port: int, advertise: str) -> None:
        self.host, self.port, self._advertise = host, port, advertise
        self.nonce = secrets.token_hex(8)
        self.users = 0
        self.advertised = ""
        """``HOST:PORT/NONCE``: what members put in their records."""
        self._listener: socket.socket | None = None
        self._peers: set[asyncio.Task[None]] = set()
        self._admission = Admission()

    @classmethod
    async def acquire(cls, config: MemberConfig, client: AsyncClient) -> Endpoint:
        """The running loop's endpoint for ``config``'s address, opened on first use."""
        host, port = parse_host_port("liveness address", config.liveness_address or "")
        route = route_address(client)
        host = host or route
        advertise = config.liveness_advertise or ""
        by_address = cls._shared.setdefault(asyncio.get_running_loop(), {})
        key = (host, port, advertise)
        endpoint = by_address.get(key)
        if endpoint is None or not endpoint.serving:
            endpoint = cls(host, port, advertise)
            endpoint._open(route)
            by_address[key] = endpoint
        endpoint.users += 1
        return endpoint

    async def release(self) -> None:
        """One member stopped using the endpoint; the last one closes it (after its hand-over:
        a leader never closes its endpoint while it leads)."""
        self.users -= 1
        if self.users > 0:
            return
        by_address = self._shared.get(asyncio.get_running_loop(), {})
        if by_address.get((self.host, self.port, self._advertise)) is self:
            del by_address[(self.host, self.port, self._advertise)]
        await self.close()

    @property
    def serving(self) -> bool:
        return self._listener is not None

    def _open(self, route: str) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.port))
            listener.listen(128)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        bound = listener.getsockname()
        shown = route if self.host in ("0.0.0.0", "::") else self.host
        advertise = self._advertise or join_host_port(shown, int(bound[1]))
        self.advertised = f"{advertise}/{self.nonce}"
        asyncio.get_running_loop().add_reader(listener.fileno(), self._accept, listener)
        log.info("liveness_endpoint_open", listening=join_host_port(str(bound[0]), int(bound[1])), advertised=advertise)

    def _accept(self, listener: socket.socket) -> None:
        """The listener is readable: accept what waits, within :mod:`.admission`'s bounds. (A reader
        callback rather than ``loop.sock_accept``, whose cancellation races with a connection
        arriving on Python 3.11.)"""
        loop = asyncio.get_running_loop()
        for _ in range(ACCEPT_BURST):
            if not self._admission.may_accept():  # over the rate: the rest wait in the backlog
                self._pause(listener, self._admission.wait_s())
                return
            try:
                conn, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, say: the connection waits in the backlog
                _log_throttled("liveness_accept_failed", error=str(exc))
                self._pause(listener, LINK_RETRY_FIRST_S)
                return
            peer = str(address[0])
            refused = self._admission.admit(peer, conn.fileno())
            if refused is not None:
                conn.close()
                _log_throttled("liveness_connection_refused", peer=peer, why=refused, open=self._admission.open)
                continue
            conn.setblocking(False)
            task = loop.create_task(self._serve(descriptor_slots.move_low(conn), peer))
            self._peers.add(task)
            task.add_done_callback(self._peers.discard)

    def _pause(self, listener: socket.socket, delay_s: float) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(listener.fileno())
        loop.call_later(max(delay_s, 0.001), self._resume, listener)

    def _resume(self, listener: socket.socket) -> None:
        if self._listener is listener:
            asyncio.get_running_loop().add_reader(listener.fileno(), self._accept, listener)

    async def _serve(self, conn: socket.socket, peer: str) -> None:
        loop = asyncio.get_running_loop()
        keep_alive(conn)
        try:
            await loop.sock_sendall(conn, HELLO + self.nonce.encode() + b"\n")
            # Peers send nothing: the first thing read is their EOF, or a stranger's byte, and
            # either ends the connection. (Reading on would let one stranger's stream of junk
            # keep the loop busy: issue 23.)
            await loop.sock_recv(conn, 1)
        except OSError:
            pass  # a watcher that went away is none of the leader's business
        finally:
            self._admission.release(peer)
            descriptor_slots.close(conn)

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        asyncio.get_running_loop().remove_reader(listener.fileno())
        listener.close()
        for task in list(self._peers):
            task.cancel()
        await asyncio.gather(*self._peers, return_exceptions=True)


_throttles: dict[str, Throttle] = {}


def _log_throttled(event: str, **fields: object) -> None:
    """A warning that a stranger can cause: one line, then one every 5 s at most while it goes
    on, with the count of the lines left out (:class:`~leaderpool.util.throttle.Throttle`)."""
    bucket = _throttles.setdefault(event, Throttle(burst=1, per_s=0.2))
    suppressed = bucket.allow()
    if suppressed is not None:
        log.warning(event, suppressed=suppressed, **fields)


# ---- the connections to other processes' endpoints ----


def _closed_by_peer(exc: BaseException) -> bool:
    """A reset or refusal (the peer host's kernel answered, or a middlebox said it did): a
    trigger. Timeouts and unreachable networks are silence."""
    if isinstance(exc, (ConnectionResetError, ConnectionRefusedError, BrokenPipeError)):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.ECONNREFUSED, errno.EPIPE)


Closed = Callable[[], None]


class Link:
    """This process's connection to one remote endpoint, shared by every member watching it;
    reconnects while watched. Calls each watcher's callback when the connection is closed by the
    peer (EOF, reset, refused, another process answering), never on a timeout."""

    _shared: ClassVar[WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Link]]] = WeakKeyDictionary()

    def __init__(self, advertised: str) -> None:
        self.advertised = advertised
        self.up = False
        self.ever_up = False
        """The endpoint's own process answered on this link at least once."""
        self._watchers: dict[int, Closed] = {}
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def watch(cls, advertised: str, key: int, on_closed: Closed) -> Link:
        links = cls._shared.setdefault(asyncio.get_running_loop(), {})
        link = links.get(advertised)
        if link is None:
            link = links[advertised] = cls(advertised)
        link._watchers[key] = on_closed
        if link._task is None or link._task.done():
            link._task = asyncio.get_running_loop().create_task(link._run(), name="leaderpool-liveness-link")
        return link

    def unwatch(self, key: int) -> None:
        self._watchers.pop(key, None)
        if not self._watchers:
            links = self._shared.get(asyncio.get_running_loop(), {})
            if links.get(self.advertised) is self:
                del links[self.advertised]
            if self._task is not None:
                self._task.cancel()
                self._task = None
            self.up = False

    def _closed(self) -> None:
        for on_closed in list(self._watchers.values()):
            try:
                on_closed()
            except Exception:
                log.exception("liveness_watcher_failed")

    async def _run(self) -> None:
        delay = LINK_RETRY_FIRST_S
        while self._watchers:
            outcome = await self._hold()
            if self.up:  # it had connected: a fresh start for the reconnects
                delay = LINK_RETRY_FIRST_S
            self.up = False
            if outcome is not None:
                self._closed()
            await asyncio.sleep(delay)  # the watchers act first; then the log line
            if outcome is not None:
                log.info("liveness_link_closed", endpoint=self.advertised, why=outcome, watchers=len(self._watchers))
            delay = min(delay * 2, LINK_RETRY_MAX_S)

    async def _hold(self) -> str | None:
        """Connect and hold the connection; returns why the peer closed it (a trigger), or
        None for silence (a timeout, an unreachable network)."""
        found = split_endpoint(self.advertised)
        if found is None:
            return None
        host, port, nonce = found
        writer: asyncio.StreamWriter | None = None
        try:
            reader, opened = await within(asyncio.open_connection(host, port), HELLO_TIMEOUT_S)
            writer = opened
            sock = opened.get_extra_info("socket")
            if sock is not None:
                keep_alive(sock)
            hello = await within(reader.readline(), HELLO_TIMEOUT_S)
            if not hello:
                return "eof"
            if hello.strip() != HELLO.strip() + b" " + nonce.encode():
                return "another process answers"
            self.up = self.ever_up = True
            log.info("liveness_watching", endpoint=self.advertised, watchers=len(self._watchers))
            while await reader.read(256):
                pass
            return "eof"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return "reset" if _closed_by_peer(exc) else None
        finally:
            if writer is not None:
                writer.close()


async def endpoint_gone(advertised: str) -> bool | None:
    """The fallback confirmation: True when nothing listens at the endpoint any more (refused)
    or another process does (another nonce); False when the same process answers; None when it
    cannot tell (a timeout, an unreachable network)."""
    found = split_endpoint(advertised)
    if found is None:
        return None
    host, port, nonce = found
    writer: asyncio.StreamWriter | None = None
    try:
        reader, writer = await within(asyncio.open_connection(host, port), HELLO_TIMEOUT_S)
        hello = await within(reader.readline(), HELLO_TIMEOUT_S)
        return hello.strip() != HELLO.strip() + b" " + nonce.encode()
    except Exception as exc:
        return True if isinstance(exc, ConnectionRefusedError) else None
    finally:
        if writer is not None:
            writer.close()
