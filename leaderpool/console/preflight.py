"""What went wrong with Redis, in one line: the one place where the CLI and the worker classify a
Redis failure before (or instead of) a traceback.

Four kinds, two exits::

    unreachable   refused, reset, timed out, loading...     a fault: the CLI exits 1, the worker retries
    auth          WRONGPASS / NOAUTH (AuthenticationError)   configuration: exit 2 at start
    permission    NOPERM (NoPermissionError, AuthorizationError)   configuration: exit 2 at start
    tls           rediss:// to a plain-text server, or an SSL error   configuration: exit 2 at start
    sentinel      the Sentinels answer but know no master of the URL's name   configuration: exit 2 at start

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

Kind = Literal["unreachable", "auth", "permission", "tls", "sentinel"]
CONFIG_KINDS: frozenset[str] = frozenset({"auth", "permission", "tls", "sentinel"})
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
    if first in AUTH_ERROR_CODES:
        return first
    # Redis 7 answers an unauthenticated client's command of many arguments (EXISTS of a pool's
    # keys) with a protocol error instead of NOAUTH: it means the same
    return "NOAUTH" if "unauthenticated" in str(exc) else None


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

    from leaderpool.backend.redis_errors import REDIS_FAILURES, is_master_unknown

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
    if any(is_master_unknown(e) for e in _causes(exc)):
        from leaderpool.backend.urls import parse_sentinel_url

        known = _sentinel_masters(url)
        if known is not None and parse_sentinel_url(url).master not in known:  # a wrong name: no retry fixes it
            return Problem(
                "sentinel",
                f"the Sentinels of {where} know no master named {parse_sentinel_url(url).master!r} "
                f"(they know: {', '.join(sorted(known)) or 'none'}): check the name after the addresses in the URL",
            )
    if isinstance(exc, REDIS_FAILURES):
        return Problem("unreachable", f"cannot reach Redis at {where}: {_first_line(exc)}")
    return None


def _first_line(exc: BaseException) -> str:
    from leaderpool.backend.redis_errors import short_reason

    for e in _causes(exc):
        if str(e).strip():
            return short_reason(e)
    return type(exc).__name__


def _sentinel_masters(url: str) -> list[str] | None:
    """The master names the first Sentinel of ``url`` that answers knows (None: none answered,
    or the URL is not a Sentinel URL)."""
    import redis

    from leaderpool.backend.urls import is_sentinel, parse_sentinel_url

    if not is_sentinel(url):
        return None
    where = parse_sentinel_url(url)
    for host, port in where.sentinels:
        client = redis.Redis(
            host=host, port=port, username=where.sentinel_username, password=where.sentinel_password,
            ssl=where.sentinel_ssl, socket_timeout=PROBE_TIMEOUT_S * 2, socket_connect_timeout=PROBE_TIMEOUT_S * 2,
        )  # fmt: skip
        try:
            masters = client.sentinel_masters()
        except redis.RedisError:
            continue
        finally:
            client.close()
        return [m.decode() if isinstance(m, bytes) else str(m) for m in masters]
    return None


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
