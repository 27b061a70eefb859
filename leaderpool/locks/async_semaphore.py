"""The asyncio face of the queued recipes: :class:`AsyncQueuedHolder` and :class:`AsyncSemaphore`.

The same keys, scripts and rules as :mod:`leaderpool.locks.semaphore` (whose docstring tells how a
permit is held), so asyncio and blocking holders of one resource share its permits and its queue.
Renewal is a task per held permit, as :class:`~leaderpool.locks.async_lock.AsyncLock` renews.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType

import redis.asyncio
import redis_lock

from leaderpool.backend.keys import DEFAULT_PREFIX, QueueKeys
from leaderpool.backend.redis_errors import RETRYABLE, is_acl_refusal, translate_redis_errors
from leaderpool.locks.holder_liveness import LIVENESS
from leaderpool.locks.lock_renewal import RENEW_FRACTION, log
from leaderpool.locks.lock_rules import validate_timeout, wait_cap
from leaderpool.locks.queue_core import (
    DEFAULT_LEASE_S,
    Mode,
    QueueHolderState,
    Taken,
    block_for,
    translated,
    validate_lease,
    validate_permits,
)
from leaderpool.locks.queue_scripts import QueueScripts
from leaderpool.util.timeouts import cancel_and_wait


class AsyncQueuedHolder:
    """One holder of a queued recipe on redis-py's asyncio client: :meth:`acquire`,
    :meth:`release`, an async context manager."""

    def __init__(self, client: redis.asyncio.Redis, state: QueueHolderState, *, timeout: float | None = None) -> None:
        self.state = state
        self.timeout = validate_timeout(timeout)
        self._client = client
        self._scripts = QueueScripts.on(client)
        self._wait_cap = wait_cap(client)
        self._renewer: asyncio.Task[None] | None = None

    @property
    def resource(self) -> str:
        return self.state.resource

    @property
    def token(self) -> int | None:
        """The fencing token of the current permit; None while not held."""
        return self.state.token

    @property
    def lost(self) -> bool:
        return self.state.lost

    @property
    def lost_why(self) -> str:
        return self.state.lost_why

    @property
    def attempts(self) -> int:
        return self.state.attempts

    @property
    def holding(self) -> bool:
        """True while the permit is ours by our own clock: check it before each action."""
        return self.state.holding

    async def acquire(self, timeout: float | None = None, attempts: int | None = None) -> bool:
        """Take a permit; False when ``timeout`` passed or ``attempts`` tries were refused."""
        s = self.state
        if s.token is not None:
            raise redis_lock.AlreadyAcquired(f"this {s.what} object already holds {s.resource!r}")
        limit = validate_timeout(self.timeout if timeout is None else timeout)
        began = time.monotonic()
        deadline = None if limit is None else began + limit
        s.attempts = 0
        keys = s.keys.script_keys
        decided, s.liveness = LIVENESS.ready(self._client, s.keys.prefix)
        if not decided:  # the process's first permit on this server: connect off the loop
            s.liveness = await asyncio.to_thread(LIVENESS.for_client, self._client, s.keys.prefix)
        try:
            with translated("queue_acquire"), translate_redis_errors():
                while True:
                    s.attempts += 1
                    left = None if deadline is None else deadline - time.monotonic()
                    last = (attempts is not None and s.attempts >= attempts) or (left is not None and left <= 0)
                    sent_at = time.monotonic()
                    taken = s.check(
                        Taken.parse(await self._scripts.acquire.raw(keys, s.acquire_args(waiting=not last)))
                    )
                    if taken.granted:
                        s.granted(taken.token, sent_at, began)
                        self._renewer = asyncio.get_running_loop().create_task(
                            self._renew(), name=f"{s.keys.kind}-{s.resource}"
                        )
                        return True
                    if last:
                        return False
                    wait = block_for(taken, left, self._wait_cap)
                    if wait > 0:
                        await self._client.blpop([s.wake_key], timeout=wait)
        except BaseException:
            await asyncio.shield(self._leave_quietly())  # cancelled while queued: do not hold the queue up
            raise

    async def _renew(self) -> None:
        """Extend every third of the ttl; give up, marking the permit lost, when it is no longer
        ours or no renewal succeeded for a whole ttl."""
        s = self.state
        interval, renewed = s.ttl_s * RENEW_FRACTION, time.monotonic()
        while True:
            await asyncio.sleep(interval)
            sent_at = time.monotonic()
            try:
                lost = int(await self._scripts.extend.raw(s.keys.script_keys, s.extend_args()))
            except RETRYABLE as exc:
                if is_acl_refusal(exc):
                    s.mark_lost(f"Redis refused the renewal ({str(exc)[:200]}): see `leaderpool-cli acl`")
                    return
                if time.monotonic() - renewed >= s.ttl_s:
                    s.mark_lost(f"no renewal succeeded for its ttl ({exc or type(exc).__name__})")
                    return
                log.warning("permit_renewal_failed", resource=s.resource, error=str(exc) or type(exc).__name__)
                continue
            if lost:
                s.mark_lost("renewal found the permit no longer ours")
                return
            renewed = time.monotonic()
            s.renewed(sent_at)

    async def release(self) -> None:
        """Stop renewing and give the permit back (waking the next in line); a permit whose
        lease ended meanwhile is marked lost."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            await cancel_and_wait(renewer)
        s = self.state
        if s.token is None:
            return
        try:
            with translated("queue_leave"), translate_redis_errors():
                lost = int(await self._scripts.leave.raw(s.keys.script_keys, s.args()))
            if lost:
                s.mark_lost("the release found the permit no longer ours")
        finally:
            s.released()  # released, or not ours to rely on: its lease ends anyway

    async def _leave_quietly(self) -> None:
        s = self.state
        with contextlib.suppress(Exception):  # best effort: the waiter lease ends anyway
            await self._scripts.leave.raw(s.keys.script_keys, s.args())
        s.released()

    async def __aenter__(self) -> AsyncQueuedHolder:
        started = time.monotonic()
        if not await self.acquire():
            raise self.state.not_acquired(time.monotonic() - started)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()


class AsyncSemaphore(AsyncQueuedHolder):
    """``async with AsyncSemaphore(client, "gpu", permits=4) as permit: ... permit.token``: the
    same semaphore as :class:`~leaderpool.locks.semaphore.Semaphore`, for asyncio."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        resource: str,
        *,
        permits: int,
        ttl_s: float = DEFAULT_LEASE_S,
        timeout: float | None = None,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        state = QueueHolderState(
            QueueKeys("semaphore", resource, prefix),
            Mode.SEMAPHORE,
            validate_permits(permits),
            validate_lease(ttl_s),
            "semaphore",
        )
        super().__init__(client, state, timeout=timeout)
        self.permits = state.permits

    async def __aenter__(self) -> AsyncSemaphore:
        await super().__aenter__()
        return self


__all__ = ["AsyncQueuedHolder", "AsyncSemaphore"]
