"""Blocking clients from a URL, Sentinel's included, for the command-line tools; and the one
place a Sentinel URL becomes a redis-py client (asyncio or blocking).

redis-py is imported inside the functions: the CLI's one-shot commands check a URL, and most
run on their own small client (:mod:`leaderpool.cli.resp`), before paying for it.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from leaderpool.backend.urls import (
    CLUSTER_NO_WAIT,
    ClusterURL,
    SentinelURL,
    is_cluster,
    is_sentinel,
    parse_cluster_url,
    parse_sentinel_url,
    validate_redis_url,
)

__all__ = [
    "blocking_client", "cluster_client", "cluster_url_of", "is_cluster_client", "refuse_on_cluster", "sentinel_master",
]  # fmt: skip

_cluster_urls: WeakKeyDictionary[Any, ClusterURL] = WeakKeyDictionary()


def blocking_client(url: str, **options: Any) -> Any:
    """A blocking redis-py client for ``url`` (``redis.Redis``)."""
    validate_redis_url(url)
    if is_sentinel(url):
        return sentinel_master(parse_sentinel_url(url), asynchronous=False, **options)
    if is_cluster(url):
        return cluster_client(parse_cluster_url(url), asynchronous=False, **options)
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


def cluster_client(where: ClusterURL, *, asynchronous: bool, **options: Any) -> Any:
    """redis-py's cluster client (asyncio or blocking) for ``where``'s nodes. It learns the slot
    map from any of them, sends each command to the master of its key's slot and follows MOVED,
    ASK and failovers by re-reading the map; a pool's keys share the hash tag ``{POOL}``, so each
    of leaderpool's scripts runs on one node."""
    if asynchronous:
        from redis.asyncio.cluster import ClusterNode as AsyncNode
        from redis.asyncio.cluster import RedisCluster as AsyncCluster

        nodes: list[Any] = [AsyncNode(host, port) for host, port in where.nodes]
        cluster_class: Any = AsyncCluster
    else:
        from redis.cluster import ClusterNode, RedisCluster

        nodes = [ClusterNode(host, port) for host, port in where.nodes]
        cluster_class = RedisCluster
    options.pop("db", None)  # a cluster has database 0 only
    kwargs: dict[str, Any] = {"username": where.username, "password": where.password, **options}
    if where.ssl:
        kwargs["ssl"] = True
    # the asyncio client connects on its first command; the blocking one as it is built
    client = cluster_class(startup_nodes=nodes, **kwargs) if asynchronous else _connected(cluster_class, nodes, kwargs)
    _cluster_urls[client] = where
    return client


def _connected(cluster_class: Any, nodes: list[Any], kwargs: dict[str, Any]) -> Any:
    """The blocking cluster client reads the slot map as it is built: when no node answers, raise
    what the last one said (refused connection, wrong password, NOPERM), as a single server's
    client would on its first command, so the callers' classification applies."""
    import redis.exceptions

    try:
        return cluster_class(startup_nodes=nodes, **kwargs)
    except redis.exceptions.RedisClusterException as exc:
        cause: BaseException | None = exc
        for _ in range(5):  # down the chain (redis-py chains some with "from", some not) to Redis's answer
            if cause is None or isinstance(cause, redis.exceptions.RedisError):
                break
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, redis.exceptions.ResponseError) and not isinstance(cause, _refusals()):
            raise redis.exceptions.ConnectionError(f"{exc} ({cause})") from exc  # not a cluster node
        if isinstance(cause, redis.exceptions.RedisError):
            raise cause from exc
        raise redis.exceptions.ConnectionError(str(exc)) from exc


def _refusals() -> tuple[type[BaseException], ...]:
    import redis.exceptions

    return (redis.exceptions.NoPermissionError, redis.exceptions.AuthenticationError)


def is_cluster_client(client: Any) -> bool:
    """Whether ``client`` (or the one inside the CLI's ``Blocking`` wrapper) is a RedisCluster."""
    from redis.asyncio.cluster import RedisCluster as AsyncCluster
    from redis.cluster import RedisCluster

    raw = vars(client).get("sync", client) if hasattr(client, "__dict__") else client
    return isinstance(raw, (AsyncCluster, RedisCluster))


def refuse_on_cluster(client: Any, *, wait_replicas: int) -> None:
    """:class:`~leaderpool.errors.ConfigError` for what a cluster client cannot do: ``wait_replicas``
    (a pipeline's WAIT would go to a node of redis-py's choosing, not the one that wrote)."""
    if wait_replicas and is_cluster_client(client):
        from leaderpool.errors import ConfigError

        raise ConfigError(CLUSTER_NO_WAIT)


def cluster_url_of(client: Any) -> ClusterURL | None:
    """The URL a cluster client of :func:`cluster_client` was built from (None for others)."""
    return _cluster_urls.get(client)
