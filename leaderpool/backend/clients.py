"""Turning what the user gives (a URL, a redis-py client, a fakeredis client) into the asyncio
client the core runs on, and validating Redis URLs with one-line errors."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio

from leaderpool.backend.connect import cluster_client, sentinel_master
from leaderpool.backend.urls import SCHEMES as SCHEMES  # re-exported
from leaderpool.backend.urls import (
    is_cluster,
    is_sentinel,
    parse_cluster_url,
    parse_sentinel_url,
    redact,
    validate_redis_url,
)
from leaderpool.errors import ConfigError
from leaderpool.util.constants import DEFAULT_URL as DEFAULT_URL  # re-exported: the CLI and worker use it

PORTABLE_SETTINGS = frozenset(
    {"host", "port", "path", "db", "username", "password", "socket_timeout", "socket_connect_timeout",
     "socket_keepalive", "client_name", "encoding", "encoding_errors", "decode_responses"}
)  # fmt: skip
"""The plain connection settings (with every ``ssl_*`` one) that may be copied from one client's
connection pool to a new client's: sync-only objects (a Retry, handlers) must not leak in. The
cluster watcher copies them to its clients of each master."""

AsyncClient = redis.asyncio.Redis
"""The client the core runs on: redis-py's asyncio client (fakeredis's ``FakeAsyncRedis`` is one)."""

RedisLike = str | redis.Redis | redis.asyncio.Redis
"""What an election accepts: a URL, or a blocking or asyncio redis-py client (fakeredis's are
subclasses of these)."""


def async_client(target: RedisLike, **options: Any) -> AsyncClient:
    """An asyncio client for ``target``: a URL, or a client whose connection settings we copy."""
    if isinstance(target, str):
        validate_redis_url(target)
        if is_sentinel(target):
            return sentinel_master(parse_sentinel_url(target), asynchronous=True, **options)  # type: ignore[no-any-return]
        if is_cluster(target):  # a RedisCluster: the core calls only what both clients have
            return cluster_client(parse_cluster_url(target), asynchronous=True, **options)  # type: ignore[no-any-return]
        return redis.asyncio.Redis.from_url(target, **options)
    if isinstance(target, redis.asyncio.Redis):
        return target
    module = type(target).__module__
    if module.startswith("fakeredis"):
        import fakeredis

        kwargs = target.connection_pool.connection_kwargs
        fake: AsyncClient = fakeredis.FakeAsyncRedis(server=kwargs["server"], db=kwargs.get("db", 0), **options)
        return fake
    if isinstance(target, redis.Redis):
        # Copy only plain connection settings: sync-only objects (Retry, handlers) must not leak in.
        given = target.connection_pool.connection_kwargs
        kwargs = {k: v for k, v in given.items() if k in PORTABLE_SETTINGS or k.startswith("ssl_")}
        kwargs.update(options)
        connection_class: type[redis.asyncio.connection.AbstractConnection] = redis.asyncio.Connection
        if "path" in kwargs:
            connection_class = redis.asyncio.UnixDomainSocketConnection
        elif isinstance(target.connection_pool.connection_class, type) and issubclass(
            target.connection_pool.connection_class, redis.SSLConnection
        ):
            connection_class = redis.asyncio.SSLConnection
        pool = redis.asyncio.ConnectionPool(connection_class=connection_class, **kwargs)
        return redis.asyncio.Redis(connection_pool=pool)
    raise ConfigError(f"redis must be a URL or a redis-py client, got {type(target).__name__}")


def describe(target: RedisLike) -> str:
    """A short, password-free description of where a client points, for logs."""
    if isinstance(target, str):
        if is_sentinel(target):
            return parse_sentinel_url(target).describe()
        if is_cluster(target):
            return parse_cluster_url(target).describe()
        return redact(target).partition("?")[0]
    kwargs = getattr(getattr(target, "connection_pool", None), "connection_kwargs", {})
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


def clone_async_client(client: AsyncClient) -> AsyncClient:
    """A new asyncio client with its own connection pool, to the same server as ``client``."""
    from redis.asyncio.sentinel import SentinelConnectionPool

    module = type(client).__module__
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    if isinstance(pool, SentinelConnectionPool):  # a client of whatever the Sentinels name master
        kwargs.pop("connection_pool", None)
        kwargs["connection_class"] = pool.connection_class
        sentinel_client: AsyncClient = pool.sentinel_manager.master_for(pool.service_name, **kwargs)
        return sentinel_client
    if module.startswith("fakeredis"):
        import fakeredis

        fake: AsyncClient = fakeredis.FakeAsyncRedis(server=kwargs["server"], db=kwargs.get("db", 0))
        return fake
    clone_pool = redis.asyncio.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    return redis.asyncio.Redis(connection_pool=clone_pool)
