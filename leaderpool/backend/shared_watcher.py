"""The watcher a member, a pool client or a command uses: one per event loop and Redis server (or
cluster), shared by every pool of the process.

The one place that chooses the kind: a plain :class:`~leaderpool.backend.watcher.Watcher` for a
server, a :class:`~leaderpool.backend.cluster_watcher.ClusterWatcher` for a Redis Cluster. Here,
not in the watcher itself, so that the imports go one way: the cluster watcher builds on the
watcher, and this module on both.
"""

from __future__ import annotations

from leaderpool.backend.clients import AsyncClient
from leaderpool.backend.cluster_watcher import ClusterWatcher, cluster_identity
from leaderpool.backend.connect import is_cluster_client
from leaderpool.backend.watcher import Watcher, server_identity, shared_on_loop


def shared_watcher(client: AsyncClient) -> Watcher:
    """The watcher of the running loop for the Redis server ``client`` talks to."""
    if is_cluster_client(client):  # a RedisCluster: one watcher per master, behind one
        key = cluster_identity(client)
        return shared_on_loop(key, lambda: ClusterWatcher(client, key))
    return shared_on_loop(server_identity(client), lambda: Watcher(client))
