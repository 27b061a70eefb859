"""A client of a pool for processes that are not members: :class:`AsyncPoolClient` and the
blocking :class:`PoolClient` (its blocking twin, run on the blocking elections' background loop:
:mod:`leaderpool.util.lifecycle`).

It never stands as a candidate. It hands the pool work (``submit``, ``call``, ``multicall``;
see :mod:`leaderpool.jobs.calls`) and answers ``leader`` and ``members()`` from a local cache,
as the seed's callers read the local ETS table: a web process finds the leader (and, say, its
address in ``leader.meta``) without a round trip. The cache is kept fresh by the process's
shared watcher (keyspace and pool-event hints, each followed by one read of the pool) and by a
read at least every :data:`REFRESH_S`, since a hint can be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

from leaderpool.backend.clients import AsyncClient, RedisLike, async_client
from leaderpool.backend.keys import DEFAULT_PREFIX, Keyspace
from leaderpool.backend.listener import NotificationSource
from leaderpool.backend.pool_store import PoolStore
from leaderpool.backend.redis_errors import RETRYABLE
from leaderpool.backend.shared_watcher import shared_watcher
from leaderpool.backend.watcher import Watcher
from leaderpool.events import LeaderInfo
from leaderpool.jobs.calls import Calls
from leaderpool.jobs.jobs_config import JobsConfig
from leaderpool.jobs.pool_work import PoolWorkInBatches
from leaderpool.members import MemberInfo, by_priority_then_age
from leaderpool.util.background_loop import BackgroundLoop
from leaderpool.util.lifecycle import AsyncLifecycle, BlockingTwin, on_background_loop
from leaderpool.util.log import get_logger
from leaderpool.util.timeouts import cancel_and_wait, within

REFRESH_S = 2.0
"""The cache is re-read at least this often, whatever the notifications said."""
COALESCE_S = 0.005
"""Hints that come together (a hand-over publishes several) cost one read."""

log = get_logger("leaderpool")


class AsyncPoolClient(PoolWorkInBatches, AsyncLifecycle):
    """Hands work to a pool and knows who leads it, on the running asyncio loop.

    ``async with AsyncPoolClient("jobs", "redis://...") as pool:`` then ``await pool.call(...)``,
    ``pool.leader``, ``pool.members()`` (the work methods: :class:`~leaderpool.jobs.pool_work.PoolWork`).
    """

    def __init__(
        self, pool: str, redis: RedisLike, *, prefix: str = DEFAULT_PREFIX, jobs: JobsConfig | None = None
    ) -> None:
        self.keys = Keyspace(pool, prefix)
        self.jobs_config = jobs or JobsConfig()
        self._redis = redis
        self._client: AsyncClient | None = None
        self._calls: Calls | None = None
        self._leader: LeaderInfo | None = None
        self._members: list[MemberInfo] = []
        self._hint = asyncio.Event()
        self._fresh = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watcher: Watcher | None = None

    @property
    def pool(self) -> str:
        return self.keys.pool

    # ---- lifecycle ----

    async def start(self, timeout: float = 5.0) -> None:
        """Connect, subscribe and read the pool once (waiting up to ``timeout`` for that read:
        an unreachable Redis is retried in the background, never raised here)."""
        if self._client is not None:
            return
        self._client = async_client(self._redis)
        self._calls = Calls(self._client, self.keys, self.jobs_config)
        self._watcher = shared_watcher(self._client)
        await self._watcher.watch(self.keys, self._on_message, timeout=timeout)
        self._task = asyncio.get_running_loop().create_task(self._refresh_loop(), name=f"leaderpool-client-{self.pool}")
        with contextlib.suppress(asyncio.TimeoutError):
            await within(self._fresh.wait(), timeout)

    async def stop(self) -> None:
        """Stop reading the pool, unsubscribe, and close the connection this client opened."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        if self._watcher is not None:
            with contextlib.suppress(*RETRYABLE):
                await self._watcher.unwatch(self.keys, self._on_message)
            self._watcher = None
        if self._client is not None and self._client is not self._redis:
            await self._client.aclose()
        self._client = None

    # ---- the cache ----

    @property
    def leader(self) -> LeaderInfo | None:
        """Who leads, from the local cache (its ``info.meta`` carries the leader's metadata)."""
        return self._leader

    def members(self) -> list[MemberInfo]:
        """The live members as of the last read, in the default ranking order."""
        return list(self._members)

    def _on_message(self, source: NotificationSource, payload: str) -> None:
        self._hint.set()

    async def _refresh_loop(self) -> None:
        assert self._client is not None
        store = PoolStore(self._client, self.keys)
        while True:
            try:
                obs = await store.observe(prune=False)
                members = {m.member: m for m in obs.members}
                if obs.leader is None:
                    self._leader = None
                else:
                    info = members.get(obs.leader.member)
                    if info is not None:  # the lead's lease left, as the elections' cache has it
                        info = dataclasses.replace(info, lease_ms=obs.leader_pttl_ms)
                    self._leader = LeaderInfo(obs.leader.member, obs.leader.term, info)
                self._members = by_priority_then_age(obs.members)
                self._fresh.set()
            except RETRYABLE as exc:
                log.warning("pool_client_read_failed", pool=self.pool, error=str(exc) or type(exc).__name__)
            with contextlib.suppress(asyncio.TimeoutError):
                await within(self._hint.wait(), REFRESH_S)
            await asyncio.sleep(COALESCE_S)
            self._hint.clear()

    # ---- work ----

    @property
    def calls(self) -> Calls:
        if self._calls is None:
            raise RuntimeError("the pool client has not been started")
        return self._calls


class PoolClient(BlockingTwin[AsyncPoolClient]):
    """The blocking :class:`AsyncPoolClient`, for threaded code (``with PoolClient(...) as pool:``)."""

    def __init__(
        self, pool: str, redis: RedisLike, *, prefix: str = DEFAULT_PREFIX, jobs: JobsConfig | None = None
    ) -> None:
        self._inner = BackgroundLoop.run(_make(pool, redis, prefix, jobs))

    @property
    def pool(self) -> str:
        return self._inner.pool

    start = on_background_loop(AsyncPoolClient.start)
    stop = on_background_loop(AsyncPoolClient.stop)

    # ---- the cache: plain reads, no hop to the loop thread ----

    @property
    def leader(self) -> LeaderInfo | None:
        """Who leads, from the local cache (its ``info.meta`` carries the leader's metadata)."""
        return self._inner.leader

    def members(self) -> list[MemberInfo]:
        """The live members as of the last read, in the default ranking order."""
        return self._inner.members()

    # ---- work ----

    submit = on_background_loop(AsyncPoolClient.submit)
    submit_many = on_background_loop(AsyncPoolClient.submit_many)
    call = on_background_loop(AsyncPoolClient.call)
    multicall = on_background_loop(AsyncPoolClient.multicall)


async def _make(pool: str, redis: RedisLike, prefix: str, jobs: JobsConfig | None) -> AsyncPoolClient:
    """Built on the background loop: its asyncio events belong to that loop."""
    return AsyncPoolClient(pool, redis, prefix=prefix, jobs=jobs)
