"""The Redis a test's pool runs on: fakeredis (with Lua) in the process, or a real redis-server
on a free 127.0.0.1 port; each member on a link of its own that a test can cut.

On fakeredis a member's link is a connection class of its own, whose calls fail while the link
is cut (and, named after the member, gives the member a pub/sub watcher of its own, so a cut
member hears nothing either). On a real server each member talks through a
:class:`~leaderpool.testing.proxy.Proxy` that a cut blackholes and resets.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import redis
import redis.asyncio as aioredis

from leaderpool.testing.proxy import Proxy
from leaderpool.testing.redis_server import RedisServer

Kind = Literal["fake", "real"]
KINDS: tuple[Kind, ...] = ("fake", "real")


class Link:
    """One member's way to Redis; :attr:`cut` while partitioned."""

    def __init__(self, member: str, proxy: Proxy | None = None) -> None:
        self.member = member
        self.cut = False
        self.proxy = proxy
        self.clients: list[aioredis.Redis] = []


def _cuttable_connection(link: Link) -> type[Any]:
    from fakeredis import FakeAsyncRedisConnection

    def refuse() -> None:
        if link.cut:
            raise aioredis.ConnectionError(f"leaderpool testkit: {link.member} is partitioned from Redis")

    class KitConnection(FakeAsyncRedisConnection):
        async def _connect(self) -> None:
            refuse()
            await super()._connect()

        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            refuse()
            await super().send_packed_command(command, check_health)

        async def _read_response(self, **kwargs: Any) -> Any:
            refuse()
            return await super()._read_response(**kwargs)

    KitConnection.__name__ = f"KitConnection_{link.member}"  # a watcher of its own (backend.watcher.server_identity)
    return KitConnection


class KitRedis:
    """``leaderpool_redis``: the test's Redis, fake or real, and the members' links to it."""

    def __init__(self, kind: str = "fake", *, binary: str | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"leaderpool_redis: unknown kind {kind!r} (one of: fake, real)")
        self.kind: Kind = "real" if kind == "real" else "fake"
        self._links: dict[str, Link] = {}
        self.server: RedisServer | None = None
        self.fake_server: Any = None
        if kind == "real":
            self.server = RedisServer(binary).start()
        else:
            import fakeredis

            self.fake_server = fakeredis.FakeServer(version=(7,))

    @property
    def url(self) -> str:
        """The server's URL (a real server's; fakeredis has none: use :meth:`client`)."""
        if self.server is None:
            raise RuntimeError("fakeredis has no URL: use leaderpool_redis.client() or .async_client()")
        return self.server.url

    def client(self) -> redis.Redis:
        """A blocking client of the test's own (not through any member's link)."""
        if self.server is not None:
            return redis.Redis.from_url(self.server.url)
        import fakeredis

        return fakeredis.FakeRedis(server=self.fake_server)

    def async_client(self) -> aioredis.Redis:
        """An asyncio client of the test's own (use it on the loop it is first used on)."""
        if self.server is not None:
            return aioredis.Redis.from_url(self.server.url)
        import fakeredis

        return fakeredis.FakeAsyncRedis(server=self.fake_server)

    # ---- the members' links ----

    def link(self, member: str) -> Link:
        if member not in self._links:
            proxy = Proxy(self.server.port).start() if self.server is not None else None
            self._links[member] = Link(member, proxy)
        return self._links[member]

    def member_client(self, member: str) -> aioredis.Redis:
        """A new asyncio client for ``member``, through its link."""
        link = self.link(member)
        if link.proxy is not None:
            client = aioredis.Redis(host="127.0.0.1", port=link.proxy.port, socket_connect_timeout=1.0)
        else:
            import fakeredis

            client = fakeredis.FakeAsyncRedis(server=self.fake_server, connection_class=_cuttable_connection(link))
        link.clients.append(client)
        return client

    async def cut(self, member: str) -> None:
        """Partition ``member`` from Redis: its calls fail (fake) or hang (real), its connections drop."""
        link = self.link(member)
        link.cut = True
        if link.proxy is not None:
            link.proxy.blackhole()
            link.proxy.reset_clients()
        await self.drop_connections(member)

    def heal(self, member: str) -> None:
        link = self.link(member)
        link.cut = False
        if link.proxy is not None:
            link.proxy.heal()

    async def drop_connections(self, member: str) -> None:
        """Close ``member``'s connections, as the kernel closes a crashed process's sockets."""
        for client in self.link(member).clients:
            await client.connection_pool.disconnect()

    async def restart(self, *, lose_data: bool = True) -> None:
        """Restart the server: every connection drops; with ``lose_data`` it comes back empty."""
        if self.server is not None:
            await asyncio.to_thread(self.server.restart, keep_data=not lose_data)
        else:
            server = self.fake_server
            server.connected = False
            try:
                for member in list(self._links):
                    await self.drop_connections(member)
                if lose_data:
                    with server.lock:  # a database's condition is on the server's lock
                        for db in server.dbs.values():
                            db.clear()
                        server.script_cache.clear()
            finally:
                server.connected = True

    def close(self) -> None:
        for link in self._links.values():
            if link.proxy is not None:
                link.proxy.close()
        self._links.clear()
        if self.server is not None:
            self.server.cleanup()
            self.server = None
