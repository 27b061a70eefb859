"""Blocking clients from a URL, Sentinel's included, for the command-line tools; and the one
place a Sentinel URL becomes a redis-py client (asyncio or blocking).

redis-py is imported inside the functions: the CLI's one-shot commands check a URL, and most
run on their own small client (:mod:`leaderpool.cli.resp`), before paying for it.
"""

from __future__ import annotations

from typing import Any

from leaderpool.urls import SentinelURL, is_sentinel, parse_sentinel_url, validate_redis_url

__all__ = ["blocking_client", "sentinel_master"]


def blocking_client(url: str, **options: Any) -> Any:
    """A blocking redis-py client for ``url`` (``redis.Redis``)."""
    validate_redis_url(url)
    if is_sentinel(url):
        return sentinel_master(parse_sentinel_url(url), asynchronous=False, **options)
    import redis

    return redis.Redis.from_url(url, **options)


def sentinel_master(where: SentinelURL, *, asynchronous: bool, **options: Any) -> Any:
    """A client of the master that ``where``'s Sentinels name, asyncio or blocking. redis-py's
    Sentinel pool asks the Sentinels for the master's address on every new connection and drops
    connections to a master that became a replica, so after a failover the next command (and the
    watcher's next reconnect) reaches the new master."""
    if asynchronous:
        from redis.asyncio.sentinel import Sentinel as AsyncSentinel

        sentinel_class: Any = AsyncSentinel
    else:
        from redis.sentinel import Sentinel as BlockingSentinel

        sentinel_class = BlockingSentinel
    timeouts: dict[str, Any] = {k: options[k] for k in ("socket_timeout", "socket_connect_timeout") if k in options}
    sentinel_kwargs: dict[str, Any] = {"ssl": where.sentinel_ssl, **timeouts}
    if where.sentinel_username is not None:
        sentinel_kwargs["username"] = where.sentinel_username
    if where.sentinel_password is not None:
        sentinel_kwargs["password"] = where.sentinel_password
    manager = sentinel_class(list(where.sentinels), sentinel_kwargs=sentinel_kwargs)
    kwargs: dict[str, Any] = {"db": where.db, "username": where.username, "password": where.password, **options}
    if where.ssl:
        kwargs["ssl"] = True
    return manager.master_for(where.master, **kwargs)
