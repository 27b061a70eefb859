"""SCAN over one Redis or over every master of a Redis Cluster.

redis-py's cluster client sends ``SCAN 0`` to every master and answers with one cursor per node
(a dict); each node is then scanned on to its own end. A plain client answers one cursor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

MAX_ROUNDS = 1_000_000
"""A bound on SCAN calls per node (each returns up to ``count`` keys): never reached in practice."""


async def scan_keys(client: Any, pattern: str, count: int = 500) -> AsyncIterator[Any]:
    """Every key matching ``pattern`` (a key moved by a resharding meanwhile may come twice or
    not at all, as with SCAN on one server during a rename). ``client`` is an asyncio redis-py
    client (a cluster's included) or the CLI's :class:`~leaderpool.console.oneshot.Blocking`."""
    cursor, keys = await client.scan(0, match=pattern, count=count)
    for key in keys:
        yield key
    if not isinstance(cursor, dict):
        for _ in range(MAX_ROUNDS):
            if int(cursor) == 0:
                return
            cursor, keys = await client.scan(cursor, match=pattern, count=count)
            for key in keys:
                yield key
        return
    # the cluster client itself, or the one inside the CLI's Blocking wrapper: get_node is not I/O
    raw = vars(client).get("sync", client) if hasattr(client, "__dict__") else client
    for name, node_cursor in cursor.items():
        node = raw.get_node(node_name=name)
        for _ in range(MAX_ROUNDS):
            if int(node_cursor) == 0:
                break
            reply, keys = await client.scan(node_cursor, match=pattern, count=count, target_nodes=node)
            node_cursor = reply[name]
            for key in keys:
                yield key
