"""The asyncio face of the cluster-wide locks: :class:`AsyncLock` and :func:`atrans`.

It speaks python-redis-lock's protocol, with python-redis-lock's own unlock and extend scripts
and leaderpool's acquire script (see :mod:`leaderpool.locks.blocking_lock`, which holds the rules both faces
share), so an asyncio holder and a blocking holder of one resource exclude each other.
"""

from __future__ import annotations

import asyncio
import time
from base64 import b64encode
from collections.abc import Awaitable, Callable
from os import urandom
from types import TracebackType
from typing import Any, TypeVar

import redis.asyncio
import redis_lock

from leaderpool import probe
from leaderpool.backend.keys import DEFAULT_PREFIX, LockKeys
from leaderpool.backend.redis_errors import RETRYABLE, is_acl_refusal, translate_redis_errors
from leaderpool.errors import LockNotAcquired
from leaderpool.locks.blocking_lock import (
    DEFAULT_LOCK_TTL_S,
    RENEW_FRACTION,
    SIGNAL_EXPIRE_MS,
    log,
    next_wait,
    timed_out_message,
    validate_retries,
    validate_ttl,
)
from leaderpool.locks.lock_rules import validate_timeout, wait_cap
from leaderpool.locks.lock_scripts import LockScripts
from leaderpool.util.timeouts import cancel_and_wait

T = TypeVar("T")


class AsyncLock:
    """``async with AsyncLock(client, "orders", ttl_s=10, timeout=5) as lock: ... lock.token``:
    the same lock as :class:`~leaderpool.locks.blocking_lock.Lock`, for redis-py's asyncio client.
    ``fair=True`` gives an :class:`~leaderpool.locks.fair_lock.AsyncFairLock` (arrival order)."""

    def __new__(
        cls,
        client: redis.asyncio.Redis,
        resource: str,
        *,
        fair: bool = False,
        ttl_s: int = DEFAULT_LOCK_TTL_S,
        timeout: float | None = None,
        prefix: str = DEFAULT_PREFIX,
    ) -> Any:  # an AsyncFairLock when fair: the same face, another class
        if not fair:
            return super().__new__(cls)
        from leaderpool.locks.fair_lock import AsyncFairLock

        return AsyncFairLock(client, resource, ttl_s=ttl_s, timeout=timeout, prefix=prefix)

    def __init__(
        self,
        client: redis.asyncio.Redis,
        resource: str,
        *,
        fair: bool = False,
        ttl_s: int = DEFAULT_LOCK_TTL_S,
        timeout: float | None = None,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self.keys = LockKeys(resource, prefix)
        self.resource = resource
        self.ttl_s = validate_ttl(ttl_s)
        self.timeout = validate_timeout(timeout)
        self.id = b64encode(urandom(18)).decode("ascii")  # as python-redis-lock makes its ids
        self.token: int | None = None
        """The fencing token of the current acquisition; None while not held."""
        self.lost = False
        self.lost_why = ""
        """Why :attr:`lost` was set: the renewal found it gone, none succeeded for a ttl, Redis refused it."""
        self.attempts = 0
        self._client = client
        scripts = LockScripts.on(client)
        self._take, self._extend, self._unlock = scripts.acquire.raw, scripts.extend.raw, scripts.unlock.raw
        self._wait_cap = wait_cap(client)
        self._renewer: asyncio.Task[None] | None = None

    async def acquire(self, timeout: float | None = None, attempts: int | None = None) -> bool:
        """Take the lock; False when ``timeout`` passed or ``attempts`` tries were refused."""
        if self.token is not None:
            raise redis_lock.AlreadyAcquired("Already acquired from this Lock instance.")
        limit = validate_timeout(self.timeout if timeout is None else timeout)
        began = time.monotonic()
        deadline = None if limit is None else began + limit
        self.attempts = 0
        k = self.keys
        with translate_redis_errors():
            while True:
                self.attempts += 1
                taken, value = await self._take(keys=[k.lock, k.token], args=[self.id, self.ttl_s * 1000])
                if int(taken) == 1:
                    self.token, self.lost = int(value), False
                    log.debug("lock_acquired", resource=self.resource, token=self.token)
                    probe.lock("acquired", time.monotonic() - began)
                    self._renewer = asyncio.get_running_loop().create_task(self._renew(), name=f"lock-{self.resource}")
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                if (attempts is not None and self.attempts >= attempts) or (left is not None and left <= 0):
                    return False
                wait = next_wait(int(value), left, self._wait_cap)
                if wait > 0:
                    await self._client.blpop([k.signal], timeout=wait)

    async def _renew(self) -> None:
        """Extend every third of the ttl; give up, marking the lock lost, when it is no longer
        ours or no renewal succeeded for a whole ttl."""
        interval, renewed = self.ttl_s * RENEW_FRACTION, time.monotonic()
        while True:
            await asyncio.sleep(interval)
            try:
                error = await self._extend(keys=[self.keys.lock, self.keys.signal], args=[self.id, self.ttl_s])
            except RETRYABLE as exc:
                if is_acl_refusal(exc):  # an ACL without TTL or EXPIRE: retrying cannot help
                    self.mark_lost(f"Redis refused the renewal ({str(exc)[:200]}): see `leaderpool-cli acl`")
                    return
                if time.monotonic() - renewed >= self.ttl_s:
                    self.mark_lost(f"no renewal succeeded for its ttl ({exc or type(exc).__name__})")
                    return
                log.warning("lock_renewal_failed", resource=self.resource, error=str(exc) or type(exc).__name__)
                continue
            if int(error) != 0:
                self.mark_lost("renewal found the lock no longer ours")
                return
            renewed = time.monotonic()

    def mark_lost(self, why: str) -> None:
        if not self.lost:
            self.lost, self.lost_why = True, why
            log.warning("lock_lost", resource=self.resource, token=self.token, why=why)
            probe.lock("lost")

    async def release(self) -> None:
        """Stop renewing and release (waking one waiter); an expired lock is marked lost."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            await cancel_and_wait(renewer)
        if self.token is None:
            return
        self.token = None
        with translate_redis_errors():
            error = await self._unlock(keys=[self.keys.lock, self.keys.signal], args=[self.id, SIGNAL_EXPIRE_MS])
        if int(error) != 0:
            self.mark_lost("the release found the lock no longer ours")

    async def __aenter__(self) -> AsyncLock:
        started = time.monotonic()
        if not await self.acquire():
            waited = time.monotonic() - started
            raise LockNotAcquired(
                timed_out_message(self.resource, waited, self.attempts),
                resource=self.resource,
                waited_s=waited,
                attempts=self.attempts,
            )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()


async def atrans(
    client: redis.asyncio.Redis,
    resource: str,
    fn: Callable[[], Awaitable[T]],
    *,
    retries: int | None = None,
    ttl_s: int = DEFAULT_LOCK_TTL_S,
    prefix: str = DEFAULT_PREFIX,
) -> T:
    """:func:`~leaderpool.locks.blocking_lock.trans` for asyncio: ``await atrans(client, "orders", coro_fn)``."""
    limit = validate_retries(retries)
    lock = AsyncLock(client, resource, ttl_s=ttl_s, prefix=prefix)
    started = time.monotonic()
    if not await lock.acquire(attempts=None if limit is None else limit + 1):
        waited = time.monotonic() - started
        raise LockNotAcquired(
            timed_out_message(resource, waited, lock.attempts) + f": gave up after {limit} retries",
            resource=resource,
            waited_s=waited,
            attempts=lock.attempts,
        )
    try:
        return await fn()
    finally:
        await lock.release()


__all__ = ["AsyncLock", "atrans"]
