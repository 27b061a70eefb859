"""The asyncio face: :class:`AsyncElection`, driving :class:`~leaderpool.election.ElectionCore`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from leaderpool.clients import RedisLike, async_client
from leaderpool.config import MemberConfig
from leaderpool.dispatch import Callbacks, LoopDispatcher, OnElected, OnLeaderChanged, OnRevoked
from leaderpool.election import ElectionCore
from leaderpool.errors import LeaderpoolError, NotLeader, StaleTerm, translate_redis_errors
from leaderpool.events import Elected, Event, LeaderInfo, Revoked, RevokeReason, Role
from leaderpool.members import MemberInfo
from leaderpool.store import FenceResult, fenced_set


class AsyncElection:
    """One member of one pool, on the running asyncio loop.

    ``async with AsyncElection(MemberConfig(pool="jobs"), "redis://...") as e:`` joins the pool
    and takes part in elections until the block ends; ``e.is_leader``, ``e.term`` and ``e.leader``
    are answered locally. Callbacks may be plain or ``async`` functions; they run in order, off
    the election loop: ``on_elected(term)``, ``on_revoked(reason)``, ``on_leader_changed(leader)``.
    """

    def __init__(
        self,
        config: MemberConfig,
        redis: RedisLike,
        *,
        on_elected: OnElected | None = None,
        on_revoked: OnRevoked | None = None,
        on_leader_changed: OnLeaderChanged | None = None,
    ) -> None:
        self.config = config
        self._redis = redis
        self._callbacks = Callbacks(on_elected, on_revoked, on_leader_changed)
        self._client: Any = None
        self._core: ElectionCore | None = None
        self._task: asyncio.Task[None] | None = None
        self._submit: Callable[[Event], Awaitable[None]] | None = None
        self._close_dispatch: Callable[[], Awaitable[None]] | None = None
        self._leading = asyncio.Event()
        self._leader_known = asyncio.Event()

    # ---- lifecycle ----

    def use_dispatcher(self, submit: Callable[[Event], Awaitable[None]]) -> None:
        """Deliver events through ``submit`` instead of this face's callback task (used by the
        blocking face, which calls callbacks on a thread)."""
        self._submit = submit

    async def start(self) -> None:
        """Join the pool; returns once subscribed, while the election runs in the background."""
        if self._task is not None:
            return
        self._client = async_client(self._redis)
        if self._submit is None:
            dispatcher = LoopDispatcher(self._callbacks)
            self._submit, self._close_dispatch = dispatcher.submit, dispatcher.close
        self._core = ElectionCore(self.config, self._client, self._sink)
        self._task = asyncio.get_running_loop().create_task(self._core.run(), name=f"leaderpool-{self.config.pool}")

    def request_stop(self) -> None:
        """Ask the election to stop, without waiting (safe in a signal handler on the loop);
        :meth:`stop` then waits for it. A no-op before :meth:`start`."""
        if self._core is not None:
            self._core.request_stop()

    async def stop(self) -> None:
        """Stop leading (telling ``on_revoked`` first), leave the pool, and return."""
        if self._task is None or self._core is None:
            return
        self._core.request_stop()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._close_dispatch is not None:
            await self._close_dispatch()
        if self._client is not self._redis:
            await self._client.aclose() if hasattr(self._client, "aclose") else await self._client.close()

    async def __aenter__(self) -> AsyncElection:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _sink(self, event: Event) -> Awaitable[None]:
        if isinstance(event, Elected):
            self._leading.set()
        elif isinstance(event, Revoked):
            self._leading.clear()
        if self.core.leader is not None:
            self._leader_known.set()
        else:
            self._leader_known.clear()
        assert self._submit is not None
        return self._submit(event)

    # ---- local answers ----

    @property
    def core(self) -> ElectionCore:
        if self._core is None:
            raise LeaderpoolError(
                "the election has not been started", pool=self.config.pool, member=self.config.member_id
            )
        return self._core

    @property
    def member_id(self) -> str:
        return self.config.member_id

    @property
    def pool(self) -> str:
        return self.config.pool

    @property
    def is_leader(self) -> bool:
        return self._core is not None and self._core.is_leader

    @property
    def term(self) -> int | None:
        """This member's leadership term (the fencing token), None while not leading."""
        return self._core.term if self._core is not None else None

    @property
    def leader(self) -> LeaderInfo | None:
        """The current leader from the local cache, kept fresh by the watcher."""
        return self._core.leader if self._core is not None else None

    @property
    def renew_deadline(self) -> float | None:
        """While leading, the ``time.monotonic()`` instant at which the lead ends unless renewed
        first (it moves on with every renewal); None while not leading."""
        return self._core.renew_deadline if self._core is not None else None

    @property
    def role(self) -> Role:
        return self._core.role if self._core is not None else Role.STOPPED

    # ---- waiting ----

    async def wait_until_leader(self, timeout: float | None = None) -> int:
        """Wait until this member leads; returns the term. Raises TimeoutError."""
        await asyncio.wait_for(self._leading.wait(), timeout)
        term = self.term
        if term is None:
            return await self.wait_until_leader(timeout)
        return term

    async def wait_for_leader(self, timeout: float | None = None) -> LeaderInfo:
        """Wait until some member leads (as seen locally); returns it. Raises TimeoutError."""
        await asyncio.wait_for(self._leader_known.wait(), timeout)
        leader = self.leader
        return leader if leader is not None else await self.wait_for_leader(timeout)

    # ---- actions ----

    async def resign(self, *, rejoin: bool = False) -> None:
        """Hand the lead to the next preferred member (raises :class:`NotLeader` if not leading).
        With ``rejoin``, also rejoin the pool as its youngest member."""
        if not self.is_leader:
            raise NotLeader("resign() needs leadership", pool=self.pool, member=self.member_id)
        self.core.request_resign(RevokeReason.RESIGNED, rejoin=rejoin)

    def step_down(self, reason: RevokeReason, rejoin: bool = False) -> None:
        """Like :meth:`resign` with another reason (``task_failed``), and no error when not leading."""
        self.core.request_resign(reason, rejoin=rejoin)

    async def current_leader(self, *, fresh: bool = False) -> LeaderInfo | None:
        """The leader: from the local cache, or with ``fresh`` read from Redis."""
        if not fresh:
            return self.leader
        with translate_redis_errors(pool=self.pool, member=self.member_id):
            found = await self.core.store.leader_record()
        if found is None:
            return None
        value, _pttl, info = found
        return LeaderInfo(value.member, value.term, info)

    async def members(self) -> list[MemberInfo]:
        """The live members, read from Redis, with their remaining lease."""
        with translate_redis_errors(pool=self.pool, member=self.member_id):
            return (await self.core.store.observe()).members

    async def fenced_set(self, key: str, value: str | bytes, *, px: int = 0) -> FenceResult:
        """SET ``key`` under this member's term; a newer term's write wins, a stale one raises
        :class:`StaleTerm` (see "Fenced writes" in the README)."""
        term = self.term
        if term is None or not self.is_leader:
            raise NotLeader("fenced_set() needs leadership", pool=self.pool, member=self.member_id)
        with translate_redis_errors(pool=self.pool, member=self.member_id, term=term):
            result = await fenced_set(self._client, key, value, term, px)
        if not result.written:
            raise StaleTerm(
                f"term {term} is older than term {result.term} that already wrote {key!r}",
                pool=self.pool,
                member=self.member_id,
                term=term,
            )
        return result
