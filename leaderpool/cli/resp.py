"""A small blocking Redis client for the CLI's one-shot commands: RESP2 on one socket.

``leaderpool-cli status`` needs one script call, and importing redis-py (which loads its asyncio
client and asyncio with it) took longer than the whole command should. This client speaks just
what the one-shot commands send, with redis-py's reply shapes (bytes, ints, lists), so
:class:`~leaderpool.backend.pool_store.PoolStore` runs on it unchanged through
:class:`leaderpool.console.oneshot.Blocking`.

It takes plain ``redis://`` and ``unix://`` URLs (user, password, database as the path or
``?db=``); :func:`handles` says so, and anything else (``rediss://``, other query options) is
left to redis-py. Errors: an error reply is :class:`ReplyError` (``str`` is the whole reply,
code first: ``WRONGPASS ...``), a connection that fails is :class:`ConnectionFailed`, an
``OSError`` worded as redis-py words it (``Error 111 connecting to HOST:PORT. ...``).
"""

from __future__ import annotations

import select
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

Reply = Any

MAX_LINE_BYTES = 64 * 1024
"""The longest status, error or length line read (Redis's own are far shorter)."""
MAX_BULK_BYTES = 512 * 1024 * 1024
"""The largest bulk string (Redis's own limit, ``proto-max-bulk-len``)."""
MAX_DEPTH = 16
"""The deepest nesting of arrays (the one-shot commands' replies are at most 3 deep)."""
READ_CHUNK_BYTES = 1024 * 1024


class ReplyError(Exception):
    """An error reply from Redis."""


class ConnectionFailed(ConnectionError):
    """The connection could not be made, or broke."""


def handles(url: str) -> bool:
    """Whether this client can take ``url`` (plain TCP or a unix socket, no options but ``db``)."""
    parts = urlsplit(url)
    return parts.scheme in ("redis", "unix") and set(parse_qs(parts.query)) <= {"db"}


def _integer(body: bytes) -> int:
    try:
        if len(body) > 20:
            raise ValueError
        return int(body)
    except ValueError:
        raise ConnectionFailed(f"Protocol error: {body[:40]!r} is not an integer") from None


def _encode(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, float):
        return repr(value).encode()
    return str(value).encode()


class Client:
    """One connection, opened on the first command; :meth:`close` closes it."""

    def __init__(self, url: str, *, connect_timeout_s: float = 5.0, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        path_db = parts.path.lstrip("/") if parts.scheme == "redis" else ""
        self.unix_path = unquote(parts.path) if parts.scheme == "unix" else None
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        self.db = int((query.get("db") or [path_db or "0"])[0])
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password is not None else None
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._file: Any = None

    # ---- the connection ----

    def _connect(self) -> None:
        where = self.unix_path or f"{self.host}:{self.port}"
        try:
            if self.unix_path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.connect_timeout_s)
                sock.connect(self.unix_path)
            else:
                sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            raise ConnectionFailed(
                f"Error {exc.errno or ''} connecting to {where}. {exc.strerror or exc}.".replace("Error  ", "Error ")
            ) from exc
        sock.settimeout(self.timeout_s)
        self._sock, self._file = sock, sock.makefile("rb")
        if self.password is not None:
            self.execute("AUTH", *([self.username] if self.username else []), self.password)
        if self.db:
            self.execute("SELECT", self.db)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if self._file is not None:
            self._file.close()
            self._file = None
        if sock is not None:
            sock.close()

    def execute(self, *args: Any) -> Reply:
        """Send one command and read its reply."""
        return self._talk(args, 1)[0]

    def _talk(self, args: Sequence[Any], replies: int) -> list[Reply]:
        """Send one command and read ``replies`` replies (SUBSCRIBE answers once per channel)."""
        if self._sock is None:
            self._connect()
        assert self._sock is not None
        parts = [_encode(a) for a in args]
        payload = b"".join([b"*%d\r\n" % len(parts), *(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)])
        try:
            self._sock.sendall(payload)
            return [self._read() for _ in range(replies)]
        except OSError as exc:
            self.close()
            if isinstance(exc, ConnectionFailed):
                raise
            raise ConnectionFailed(f"Error while talking to Redis: {exc or type(exc).__name__}") from exc

    # ---- pub/sub: a connection of its own (:meth:`another`), then only messages ----

    def another(self) -> Client:
        """A client with the same settings, on a connection of its own (a subscriber's)."""
        twin = Client.__new__(Client)
        twin.__dict__.update(self.__dict__)
        twin._sock, twin._file = None, None
        return twin

    def subscribe(self, *channels: str) -> None:
        """SUBSCRIBE: from now on this connection receives only :meth:`next_message`'s messages."""
        self._talk(["SUBSCRIBE", *channels], len(channels))

    def next_message(self, timeout_s: float) -> tuple[bytes, bytes] | None:
        """The next message on a subscribed channel, as (channel, data); None when none came
        within ``timeout_s``. A message already buffered is returned without waiting."""
        sock = self._sock
        if sock is None:
            raise ConnectionFailed("not subscribed")
        try:
            sock.settimeout(0.0)  # peek at what is buffered without blocking
            try:
                buffered = self._file.peek(1)
            finally:
                sock.settimeout(self.timeout_s)
            if not buffered and not select.select([sock], [], [], max(0.0, timeout_s))[0]:
                return None
            reply = self._read()
        except OSError as exc:
            self.close()
            if isinstance(exc, ConnectionFailed):
                raise
            raise ConnectionFailed(f"Error while talking to Redis: {exc or type(exc).__name__}") from exc
        if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
            return bytes(reply[1]), bytes(reply[2])
        return None  # another push (a subscription's confirmation): the caller asks again

    def _read(self, depth: int = 0) -> Reply:
        """One reply. Whatever the bytes, the only errors are :class:`ReplyError` and
        :class:`ConnectionFailed`: a line, a bulk string and nesting are bounded
        (:data:`MAX_LINE_BYTES`, :data:`MAX_BULK_BYTES`, :data:`MAX_DEPTH`), and a bulk string is
        read as it arrives, so memory follows what the server sent, not what it announced."""
        line = self._file.readline(MAX_LINE_BYTES)
        if not line.endswith(b"\r\n"):
            if len(line) >= MAX_LINE_BYTES:
                raise ConnectionFailed(f"Protocol error: a reply line longer than {MAX_LINE_BYTES} bytes")
            raise ConnectionFailed("Connection closed by server.")
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return body
        if kind == b"-":
            raise ReplyError(body.decode(errors="replace"))
        if kind == b":":
            return _integer(body)
        if kind == b"$":
            size = _integer(body)
            if size < 0:
                return None
            if size > MAX_BULK_BYTES:
                raise ConnectionFailed(f"Protocol error: a bulk string of {size} bytes")
            data = self._read_exactly(size + 2)
            if data[-2:] != b"\r\n":
                raise ConnectionFailed("Protocol error: a bulk string not ended by CRLF")
            return data[:-2]
        if kind == b"*":
            size = _integer(body)
            if size >= 0 and depth >= MAX_DEPTH:
                raise ConnectionFailed(f"Protocol error: replies nested deeper than {MAX_DEPTH}")
            return None if size < 0 else [self._read(depth + 1) for _ in range(size)]
        raise ConnectionFailed(f"Protocol error: unexpected reply {line[:40]!r}")

    def _read_exactly(self, size: int) -> bytes:
        chunks, left = [], size
        while left:
            chunk = self._file.read(min(left, READ_CHUNK_BYTES))
            if not chunk:
                raise ConnectionFailed("Connection closed by server.")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    # ---- the commands the one-shot commands use, shaped as redis-py returns them ----

    def ping(self) -> bool:
        return bool(self.execute("PING") == b"PONG")

    def time(self) -> tuple[int, int]:
        seconds, micros = self.execute("TIME")
        return int(seconds), int(micros)

    def exists(self, *keys: str) -> int:
        return int(self.execute("EXISTS", *keys))

    def publish(self, channel: str, message: str) -> int:
        return int(self.execute("PUBLISH", channel, message))

    def scan(self, cursor: Any = 0, match: str | None = None, count: int | None = None) -> tuple[int, list[bytes]]:
        args: list[Any] = ["SCAN", cursor]
        if match is not None:
            args += ["MATCH", match]
        if count is not None:
            args += ["COUNT", count]
        next_cursor, keys = self.execute(*args)
        return int(next_cursor), list(keys)

    def zrange(self, key: str, start: int, end: int, withscores: bool = False) -> list[Any]:
        if not withscores:
            return list(self.execute("ZRANGE", key, start, end))
        flat = self.execute("ZRANGE", key, start, end, "WITHSCORES")
        return [(flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2)]

    def xrevrange(self, key: str, count: int | None = None) -> list[Any]:
        args: list[Any] = ["XREVRANGE", key, "+", "-"]
        if count is not None:
            args += ["COUNT", count]
        return [
            (entry_id, {fields[i]: fields[i + 1] for i in range(0, len(fields), 2)})
            for entry_id, fields in self.execute(*args)
        ]

    def register_script(self, source: str) -> Callable[..., Reply]:
        """A script called by EVAL (Redis caches it by its digest, as EVALSHA would use)."""

        def call(keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Reply:
            return self.execute("EVAL", source, len(keys), *keys, *args)

        return call
