"""A member's unique names, for both faces: register, unregister, take over, look up.

Runs on the election loop; :class:`~leaderpool.aio.AsyncElection` awaits it (its name methods
are :class:`NameMethods`, written here) and
:class:`~leaderpool.blocking.Election` drives it on its loop thread, except cached lookups,
which read :class:`~leaderpool.names.name_cache.NameCache` directly from any thread.
"""

from __future__ import annotations

import asyncio
import time

from leaderpool.backend.clients import AsyncClient
from leaderpool.backend.redis_errors import translate_redis_errors
from leaderpool.backend.shared_watcher import shared_watcher
from leaderpool.backend.watcher import Watcher
from leaderpool.election.core import ElectionCore
from leaderpool.errors import LeaderpoolError, RedisUnavailable
from leaderpool.names.name_cache import HeldNames, NameCache
from leaderpool.names.registry import NameOwner, NameStore, RegisterStatus, Registration, validate_value
from leaderpool.util.naming import validate_name
from leaderpool.util.timeouts import within


class MemberNames:
    """The names of one member (``core``), and its view of everyone's names."""

    def __init__(self, core: ElectionCore, client: AsyncClient) -> None:
        self._core = core
        self._client = client
        self.store = NameStore(core.store.client, core.config.prefix)
        self.held = HeldNames(self.store, core.membership.clock)
        core.membership.ride(self.held)  # while we hold names, the member's beat and leave keep them
        self.cache: NameCache | None = None
        self._watcher: Watcher | None = None
        self._cache_lock = asyncio.Lock()
        self._inflight: set[asyncio.Future[Registration]] = set()
        self._pool, self._member = core.config.pool, core.config.member_id

    @property
    def client(self) -> AsyncClient:
        return self._client

    async def register(self, name: str, value: str | None = None, *, takeover: bool = False) -> Registration:
        """Register ``name`` for this member (``takeover``: even from another holder). Waits
        up to one lease for the member to have joined; raises :class:`LeaderpoolError` if it
        is not a live member by then."""
        validate_name("name", name)
        validate_value(value)
        c = self._core.config
        if not self.held.live.is_set():
            try:
                await within(self.held.live.wait(), c.ttl_s)
            except TimeoutError:
                raise LeaderpoolError(
                    f"cannot register name {name!r}: not a live member of pool {c.pool} yet",
                    pool=self._pool,
                    member=self._member,
                ) from None
        sent = time.monotonic()
        call = asyncio.ensure_future(
            self.store.register(
                self._core.keys,
                c.member_id,
                c.node,
                name,
                value,
                takeover=takeover,
                incarnation=self._core.membership.incarnation,
            )
        )
        # bookkept when Redis answers, even if our caller was cancelled meanwhile (a stopping
        # worker): a name registered then must be freed by the leave, not outlive the member
        call.add_done_callback(lambda done: self._registered(done, name, value, sent, takeover))
        self._inflight.add(call)
        call.add_done_callback(self._inflight.discard)
        with translate_redis_errors(pool=self._pool, member=self._member):
            reg = await asyncio.shield(call)
        if reg.status is RegisterStatus.NOT_MEMBER:
            raise LeaderpoolError(
                f"cannot register name {name!r}: not a live member of pool {c.pool}",
                pool=self._pool,
                member=self._member,
            )
        return reg

    def _registered(
        self, call: asyncio.Future[Registration], name: str, value: str | None, sent: float, takeover: bool
    ) -> None:
        if call.cancelled() or call.exception() is not None:
            return
        reg = call.result()
        if reg.status is RegisterStatus.REGISTERED:
            c = self._core.config
            self.held.held[name] = sent
            self._core.lead.log.info("name_registered", name=name, takeover=takeover)
            if self.cache is not None:
                self.cache.note(NameOwner(name, c.pool, c.member_id, c.node, value, reg.left_ms), sent)

    async def settle(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for registrations still in flight, so that a leave that
        follows frees what they registered."""
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=timeout)

    async def unregister(self, name: str) -> bool:
        """Free ``name`` if this member holds it; False when it does not."""
        validate_name("name", name)
        c = self._core.config
        self.held.held.pop(name, None)  # first: a beat in flight must not keep it
        with translate_redis_errors(pool=self._pool, member=self._member):
            owner = await self.store.unregister(
                name, (c.pool, c.member_id), incarnation=self._core.membership.incarnation
            )
        if owner is not None:
            self._core.lead.log.info("name_unregistered", name=name)
        return owner is not None

    async def whereis(self, name: str, *, fresh: bool = False) -> NameOwner | None:
        validate_name("name", name)
        if fresh:
            with translate_redis_errors(pool=self._pool, member=self._member):
                found = await self.store.read([name])
            return found[0] if found else None
        return (await self.loaded_cache()).lookup(name)

    async def registered(self, *, fresh: bool = False) -> list[str]:
        if fresh:
            with translate_redis_errors(pool=self._pool, member=self._member):
                return [owner.name for owner in await self.store.read()]
        return (await self.loaded_cache()).names()

    def ready_cache(self) -> NameCache | None:
        """The cache once loaded (for lookups from another thread), else None."""
        cache = self.cache
        return cache if cache is not None and cache.loaded.is_set() else None

    async def loaded_cache(self) -> NameCache:
        """The cache, subscribed and loaded on first use (bounded by one lease)."""
        async with self._cache_lock:
            if self.cache is None:
                cache = NameCache(self.store)
                watcher = self._watcher = shared_watcher(self._client)
                await watcher.watch_channels((self.store.keys.events,), cache.on_message, self._core.config.heartbeat)
                cache.start()
                self.cache = cache
        cache = self.cache
        try:
            await within(cache.loaded.wait(), self._core.config.ttl_s)
        except TimeoutError:
            raise RedisUnavailable(
                "could not load the names from Redis", pool=self._pool, member=self._member
            ) from None
        return cache

    async def close(self) -> None:
        cache, self.cache, watcher = self.cache, None, self._watcher
        if cache is not None:
            await cache.close()
        if cache is not None and watcher is not None:
            await watcher.unwatch_channels((self.store.keys.events,), cache.on_message)


class NameMethods:
    """A member face's name methods, over its :attr:`names` (they raise until it is started)."""

    @property
    def names(self) -> MemberNames:
        raise NotImplementedError

    @property
    def held_names(self) -> list[str]:
        """The names this member holds, as its last heartbeat confirmed."""
        try:
            return self.names.held.names()
        except LeaderpoolError:  # not started: none
            return []

    async def register_name(self, name: str, value: str | None = None) -> bool:
        """Register ``name`` (unique across every pool under the prefix) for this member, with an
        optional ``value``; False when another live member holds it. It stays ours until
        :meth:`unregister_name`, ``stop()``, or the end of our lease."""
        return (await self.names.register(name, value)).status is RegisterStatus.REGISTERED

    async def re_register_name(self, name: str, value: str | None = None) -> bool:
        """Register ``name`` for this member even if another member holds it (a deliberate
        takeover; the old holder learns at its next heartbeat). True once the name is ours, as
        :meth:`register_name` says; False only when this member is not a live member of its
        pool (its lease lapsed), as no other holder can refuse it."""
        return (await self.names.register(name, value, takeover=True)).status is RegisterStatus.REGISTERED

    async def unregister_name(self, name: str) -> bool:
        """Free ``name`` if this member holds it; False when it does not."""
        return await self.names.unregister(name)

    async def whereis_name(self, name: str, *, fresh: bool = False) -> NameOwner | None:
        """Who holds ``name``, from the local cache (loaded on first use, then kept fresh by
        notifications), or with ``fresh`` read from Redis; None when nobody does."""
        return await self.names.whereis(name, fresh=fresh)

    async def registered_names(self, *, fresh: bool = False) -> list[str]:
        """Every name held under the prefix, sorted (from the cache, or ``fresh`` from Redis)."""
        return await self.names.registered(fresh=fresh)
