"""The watcher on a Redis Cluster: keyspace notifications are node-local, so each channel is
watched on the master that serves its slot (a pool's channels carry its hash tag ``{POOL}``,
the same slot as its keys), through one plain :class:`~leaderpool.backend.watcher.Watcher` per master.

The slot map is read (``CLUSTER SLOTS``, from any node that answers) every
:data:`FOLLOW_S`, and sooner while a node watcher is disconnected. When a channel's slot has a
new master (a resharding moved it, or a replica took over a dead master) its listeners move to
that master's watcher and get ``(RESYNC, "")``: whatever happened meanwhile is re-read. Each
node watcher turns keyspace events on on its master when it connects (a promoted replica
included).

Pool events go by plain PUBLISH, which a cluster broadcasts to every node: subscribing on the
slot's master receives them as well. Fast failover's CLIENT LIST check is per node, so this
watcher reports client id 0 (CLIENT refused): followers confirm a death through the endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import redis.asyncio
from redis.crc import key_slot

from leaderpool.backend.clients import PORTABLE_SETTINGS, AsyncClient
from leaderpool.backend.listener import Listener, NotificationSource
from leaderpool.backend.protocol import text
from leaderpool.backend.redis_errors import REDIS_FAILURES
from leaderpool.backend.watcher import Watcher
from leaderpool.util.log import get_logger
from leaderpool.util.timeouts import cancel_and_wait

FOLLOW_S = 1.0
"""How often the slot map is re-read while every node watcher is connected."""
FOLLOW_DISCONNECTED_S = 0.2
"""... and while one is not: its master may have died, and a replica taken over."""
MOVE_CONFIRM_S = 2.0
"""How long a move waits for the new master to confirm the subscription (it carries on after)."""

log = get_logger("leaderpool.cluster_watcher")

Address = tuple[str, int]


class ClusterWatcher(Watcher):
    """Keyspace and pool-event notifications for every pool of this process on one cluster."""

    def __init__(self, client: Any, identity: tuple[Any, ...]) -> None:  # no super().__init__: node watchers do the I/O
        self._identity = identity
        self._db = 0  # a cluster has database 0 only
        kwargs = client.nodes_manager.connection_kwargs
        self._node_kwargs = {k: v for k, v in kwargs.items() if k in PORTABLE_SETTINGS or k.startswith("ssl_")}
        self._connection_class = kwargs.get("connection_class", redis.asyncio.Connection)
        self._known: list[Address] = [(n.host, int(n.port)) for n in client.nodes_manager.startup_nodes.values()]
        self._slots: list[tuple[int, int, Address]] = []
        self._asker: tuple[Address, AsyncClient] | None = None  # where the slot map is read
        self._listeners: dict[str, list[Listener]] = {}
        self._at: dict[str, Address] = {}  # where each channel is watched now
        self._nodes: dict[Address, Watcher] = {}
        self._lock = asyncio.Lock()  # one subscription change at a time: watch, unwatch, move
        self._task: asyncio.Task[None] | None = None
        self.keyspace_notifications = None
        self.client_id = 0  # see the module docstring: no CLIENT LIST across nodes
        self._prefixes = set()
        self._own_channels = set()  # nor a connection's own channel: deaths are proved by the endpoint

    # ---- the Watcher API ----

    async def watch_channels(self, channels: tuple[str, ...], listener: Listener, timeout: float = 5.0) -> None:
        async with self._lock:
            if not self._slots:  # unreachable now: the follower subscribes once it reads the map
                with contextlib.suppress(*REDIS_FAILURES):
                    await self._read_slot_map()
            for ch in channels:
                self._listeners.setdefault(ch, []).append(listener)
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._follow(), name="leaderpool-cluster-watcher")
            by_node: dict[Address, list[str]] = {}
            for ch in channels:
                node = self._at.get(ch) or self._master_of(ch)
                if node is not None:
                    self._at[ch] = node
                    by_node.setdefault(node, []).append(ch)
            for node, chans in by_node.items():
                await self._node(node).watch_channels(tuple(chans), listener, timeout)

    async def unwatch_channels(self, channels: tuple[str, ...], listener: Listener) -> None:
        async with self._lock:
            for ch in channels:
                listeners = self._listeners.get(ch, [])
                if listener in listeners:
                    listeners.remove(listener)
                node = self._at.get(ch)
                if node is not None:
                    await self._leave(node, ch, listener)
                if not listeners:
                    self._listeners.pop(ch, None)
                    self._at.pop(ch, None)
        if not self._listeners:
            await self.close()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            await cancel_and_wait(task)
        nodes, self._nodes = self._nodes, {}
        for watcher in nodes.values():
            await watcher.close()
        await self._close_asker()
        self._unregister()

    # ---- following the slot map ----

    async def _follow(self) -> None:
        failing = False
        while True:  # until close() cancels it
            connected = all(w.client_id is not None for w in self._nodes.values())
            await asyncio.sleep(FOLLOW_S if connected else FOLLOW_DISCONNECTED_S)
            try:
                await self._read_slot_map()
                failing = False
                async with self._lock:
                    await self._move_channels()
            except REDIS_FAILURES as exc:  # every node unreachable: the next round asks again
                if not failing:  # once per outage
                    log.warning("cluster_slot_map_unavailable", error=str(exc) or type(exc).__name__)
                failing = True
            except (ValueError, TypeError, IndexError) as exc:  # a reply we cannot read: say so, go on
                log.error("cluster_slot_map_unreadable", error=str(exc))
            flags = [w.keyspace_notifications for w in self._nodes.values()]
            self.keyspace_notifications = None if None in flags or not flags else all(flags)

    async def _move_channels(self) -> None:
        """Watch every channel on its slot's master now; listeners of a moved channel resync."""
        moved: dict[int, Listener] = {}
        for ch, listeners in list(self._listeners.items()):
            want, have = self._master_of(ch), self._at.get(ch)
            if want is None or want == have:
                continue
            log.info("cluster_channel_moved", channel=ch, slot=key_slot(ch.encode()), to=_name(want), were=_name(have))
            self._at[ch] = want
            for listener in list(listeners):
                if have is not None:
                    await self._leave(have, ch, listener)
                await self._node(want).watch_channels((ch,), listener, MOVE_CONFIRM_S)
                moved[id(listener)] = listener
        for listener in moved.values():
            self._deliver(listener, NotificationSource.RESYNC, "")

    async def _leave(self, node: Address, channel: str, listener: Listener) -> None:
        watcher = self._nodes.get(node)
        if watcher is None:
            return
        await watcher.unwatch_channels((channel,), listener)  # closes it with its last listener
        if watcher.idle:
            self._nodes.pop(node, None)

    async def _read_slot_map(self) -> None:
        """``CLUSTER SLOTS``, asked on the connection that answered last, else of each node known
        in turn; learns every node the reply names."""
        failure: BaseException | None = None
        asker = self._asker
        candidates = ([asker[0]] if asker else []) + [a for a in self._known if not asker or a != asker[0]]
        for address in candidates:
            client = asker[1] if asker and asker[0] == address else self._client_for(address)
            try:
                reply = await client.execute_command("CLUSTER", "SLOTS")
            except REDIS_FAILURES as exc:
                failure = exc
                with contextlib.suppress(Exception):
                    await client.aclose()
                if asker and asker[0] == address:
                    asker = self._asker = None
                continue
            if not asker or asker[0] != address:
                await self._close_asker()
                self._asker = (address, client)
            slots: list[tuple[int, int, Address]] = []
            for first, last, master, *replicas in reply:
                for node in (master, *replicas):
                    where = (text(node[0]) or address[0], int(node[1]))
                    if where not in self._known:
                        self._known.append(where)
                slots.append((int(first), int(last), (text(master[0]) or address[0], int(master[1]))))
            self._slots = slots
            return
        if failure is not None:
            raise failure

    async def _close_asker(self) -> None:
        asker, self._asker = self._asker, None
        if asker is not None:
            with contextlib.suppress(Exception):
                await asker[1].aclose()

    def _master_of(self, channel: str) -> Address | None:
        slot = key_slot(channel.encode())
        return next((node for first, last, node in self._slots if first <= slot <= last), None)

    def _node(self, address: Address) -> Watcher:
        watcher = self._nodes.get(address)
        if watcher is None:
            watcher = self._nodes[address] = Watcher(self._client_for(address))
        return watcher

    def _client_for(self, address: Address) -> AsyncClient:
        pool = redis.asyncio.ConnectionPool(
            connection_class=self._connection_class, **{**self._node_kwargs, "host": address[0], "port": address[1]}
        )
        return redis.asyncio.Redis.from_pool(pool)  # owns the pool: aclose() closes its connections


def cluster_identity(client: Any) -> tuple[Any, ...]:
    """What makes two cluster clients the same cluster for sharing a watcher: the URL they were
    built from (a client built elsewhere is its own cluster)."""
    from leaderpool.backend.connect import cluster_url_of

    where = cluster_url_of(client)
    return ("cluster", where.nodes, where.username) if where is not None else ("cluster", id(client))


def _name(address: Address | None) -> str:
    return "" if address is None else f"{address[0]}:{address[1]}"
