"""What a ``leaderpool://`` URL says, for the tooz driver: the Redis URL it names
(:func:`redis_url`) and the driver's settings from its query (:class:`DriverOptions`).

``leaderpool://HOST:PORT/DB`` (or ``?db=N``); ``?sentinel=MASTER`` for Sentinel,
``?cluster=true`` (or ``?cluster=HOST:PORT,...``) for Redis Cluster, ``?ssl=true`` for TLS;
``?timeout=`` (the lease of members, leads and locks), ``?lock_timeout=``, ``?prefix=``,
``?priority=``, ``?fast_failover=``. An unknown option or a bad value is one clear
:class:`~leaderpool.errors.ConfigError` at ``get_coordinator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from leaderpool.backend.urls import validate_redis_url
from leaderpool.errors import ConfigError
from leaderpool.util.log import get_logger

__all__ = ["DEFAULT_TIMEOUT_S", "DriverOptions", "redis_url"]

log = get_logger("leaderpool.tooz")

DEFAULT_TIMEOUT_S = 5.0
"""The lease of members, leads and locks (``?timeout=``); leaderpool's default ttl."""

_OPTIONS = {"db", "timeout", "sentinel", "cluster", "prefix", "priority", "fast_failover", "lock_timeout", "ssl"}

_YES = ("1", "true", "yes", "on")


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


@dataclass(frozen=True)
class DriverOptions:
    """A coordinator's settings, read from its URL once (validated: see :meth:`from_url`)."""

    url: str
    """The Redis URL (:func:`redis_url`)."""
    ttl_s: float
    """The lease of joined members and of leads (``?timeout=``)."""
    prefix: str
    priority: int
    """This coordinator's priority as a candidate (higher leads first)."""
    fast_failover: bool
    lock_ttl_s: int
    """The lease of locks, whole seconds (``?lock_timeout=``, else the timeout rounded up)."""

    @classmethod
    def from_url(cls, parsed_url: Any, options: dict[str, Any]) -> DriverOptions:
        """The settings a ``leaderpool://`` URL gives; raises :class:`ConfigError` for a bad one."""
        url = redis_url(parsed_url, options)
        ttl_s = _seconds(options, "timeout", DEFAULT_TIMEOUT_S)
        prefix = _option(options, "prefix") or "leaderpool"
        priority = _option(options, "priority") or "0"
        if not priority.lstrip("-").isdigit():
            raise ConfigError(f"leaderpool tooz URL: priority must be an integer, got {priority!r}")
        fast_failover = (_option(options, "fast_failover") or "1").lower() not in ("0", "false", "no", "off")
        lock_ttl_s = max(1, math.ceil(_seconds(options, "lock_timeout", ttl_s)))
        return cls(url, ttl_s, prefix, int(priority), fast_failover, lock_ttl_s)
