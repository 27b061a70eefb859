"""What went wrong with Redis, in one line: the one place where the CLI and the worker classify a
Redis failure before (or instead of) a traceback.

Four kinds, two exits::

    unreachable   refused, reset, timed out, loading...     a fault: the CLI exits 1, the worker retries
    auth          WRONGPASS / NOAUTH (AuthenticationError)   configuration: exit 2 at start
    permission    NOPERM (NoPermissionError, AuthorizationError)   configuration: exit 2 at start
    tls           rediss:// to a plain-text server, or an SSL error   configuration: exit 2 at start

:func:`ping` connects once, sends PING and classifies what failed. For a ``rediss://`` URL it
first asks the server in plain text (a PING on a bare socket, half a second at most): a
plain-text Redis answers at once, where a TLS handshake with it would hang until the connect
timeout. redis-py is imported only when a check runs.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from leaderpool.errors import AUTH_ERROR_CODES

if TYPE_CHECKING:
    from leaderpool.backend.keys import Keyspace

Kind = Literal["unreachable", "auth", "permission", "tls"]
CONFIG_KINDS: frozenset[str] = frozenset({"auth", "permission", "tls"})
PROBE_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class Problem:
    """A classified Redis failure: ``message`` is the whole line to print."""

    kind: Kind
    message: str

    @property
    def is_config(self) -> bool:
        """Settings, not the network: retrying cannot help, so exit 2 at start."""
        return self.kind in CONFIG_KINDS


def redact(url: str) -> str:
    """``url`` as given (database, query and all) with the password left out."""
    from leaderpool.backend.urls import redact as redact_url

    return redact_url(url)


def _code(exc: BaseException) -> str | None:
    """WRONGPASS, NOAUTH or NOPERM when ``exc`` carries one (redis-py's status code, or the text)."""
    code = getattr(exc, "status_code", None)
    if code in AUTH_ERROR_CODES:
        return str(code)
    first = str(exc).split(" ", 1)[0].upper()
    return first if first in AUTH_ERROR_CODES else None


def _causes(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in out:
        out.append(seen)
        seen = seen.__cause__ or seen.__context__
    return out


def classify(exc: BaseException, url: str) -> Problem | None:
    """The kind of Redis failure ``exc`` is, or None when it is not one (a bug, bad data)."""
    import ssl

    import redis.exceptions as rex

    from leaderpool.backend.redis_errors import REDIS_FAILURES

    where = redact(url)
    code = _code(exc)
    if isinstance(exc, rex.AuthenticationError) or code in ("WRONGPASS", "NOAUTH"):
        if code == "NOAUTH" or (code is None and urlsplit(url).password is None):
            return Problem(
                "auth",
                f"Redis at {where} requires a password (NOAUTH): put it in the URL, redis://USER:PASSWORD@HOST:PORT/DB",
            )
        return Problem(
            "auth", f"Redis at {where} refused the credentials (WRONGPASS): check the URL's user and password"
        )
    if isinstance(exc, (rex.NoPermissionError, rex.AuthorizationError)) or code == "NOPERM":
        detail = str(exc).removeprefix("NOPERM ").rstrip(".")
        return Problem(
            "permission",
            f"Redis at {where} refused a command (NOPERM: {detail}): give this ACL user leaderpool's "
            "commands, keys and channels (`leaderpool-cli acl --prefix PREFIX` prints them)",
        )
    tls = urlsplit(url).scheme == "rediss"
    if any(isinstance(e, ssl.SSLError) for e in _causes(exc)) or (
        tls and any("handshake" in str(e).lower() for e in _causes(exc))
    ):
        return Problem(
            "tls",
            f"Redis at {where}: the TLS handshake failed ({_first_line(exc)}): check that the server "
            "serves TLS on that port, and its certificate",
        )
    if isinstance(exc, REDIS_FAILURES):
        return Problem("unreachable", f"cannot reach Redis at {where}: {_first_line(exc)}")
    return None


def _first_line(exc: BaseException) -> str:
    for e in _causes(exc):
        text = str(e).strip()
        if text:
            return text.splitlines()[0]
    return type(exc).__name__


def plain_text_answer(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the server of a ``rediss://`` URL answers a plain-text PING (it is not TLS)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "localhost", parts.port or 6379), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            reply = s.recv(64)
    except OSError:
        return False
    return reply[:1] in (b"+", b"-")  # a RESP reply (+PONG, -NOAUTH ...); TLS would send an alert record


def tls_mismatch(url: str) -> Problem | None:
    """For a ``rediss://`` URL whose server speaks plain text: the one-line problem, at once."""
    if urlsplit(url).scheme != "rediss" or not plain_text_answer(url):
        return None
    return Problem(
        "tls",
        f"Redis at {redact(url)} answers in plain text, not TLS: use redis:// for this server "
        "(or turn TLS on in the server)",
    )


def ping(client: Any, url: str, keys: Keyspace | None = None) -> Problem | None:
    """PING through ``client`` (a blocking redis-py client for ``url``); the problem, if any.
    With ``keys``, also read that pool with its script and subscribe to its channels, as a
    member does: an ACL that refuses any of it is a problem now, not a retry loop later."""
    mismatch = tls_mismatch(url)
    if mismatch is not None:
        return mismatch
    try:
        client.ping()
        if keys is not None:
            _try_pool_access(client, keys)
    except Exception as exc:
        problem = classify(exc, url)
        if problem is None:
            raise
        return problem
    return None


def _try_pool_access(client: Any, keys: Keyspace) -> None:
    """Read the pool (the observe script, read-only) and subscribe to its channels; raises what
    Redis refused."""
    from leaderpool.backend.pool_store import PoolStore
    from leaderpool.console.oneshot import Blocking, run
    from leaderpool.errors import BadPoolData, RedisAuthFailed

    try:
        run(PoolStore(Blocking(client), keys).observe(prune=False))
    except BadPoolData:
        pass  # readable, with data to repair: the members report it, and doctor names it
    except RedisAuthFailed as exc:  # the store's translation: classify what Redis said
        raise exc.__cause__ or exc from None
    pool = getattr(client, "connection_pool", None)  # a cluster client has none: database 0
    db = int(pool.connection_kwargs.get("db", 0) or 0) if pool is not None else 0
    pubsub = client.pubsub()
    try:
        pubsub.subscribe(keys.events, keys.leader_channel(db))
        for _ in range(2):  # the confirmations, or the refusal raised
            pubsub.get_message(timeout=1.0)
    finally:
        pubsub.close()


def check(url: str, timeout_s: float = 2.0, keys: Keyspace | None = None) -> Problem | None:
    """Connect to ``url`` once, PING (and try ``keys``' pool, see :func:`ping`), classify;
    closes its connection."""
    from leaderpool.backend.connect import blocking_client

    try:
        client = blocking_client(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    except Exception as exc:  # a cluster client connects as it is built
        problem = classify(exc, url)
        if problem is None:
            raise
        return problem
    try:
        return ping(client, url, keys)
    finally:
        client.close()


def exit_on_config_error(prog: str, url: str, keys: Keyspace | None = None) -> None:
    """At a program's start: a configuration problem is one line and exit 2; an unreachable Redis
    is left to the caller (the worker keeps retrying, as documented)."""
    from leaderpool.console.args import fail

    problem = check(url, keys=keys)
    if problem is not None and problem.is_config:
        fail(prog, problem.message)
