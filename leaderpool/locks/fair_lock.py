"""``Lock(..., fair=True)`` and ``AsyncLock(..., fair=True)``: the mutex granted in arrival order.

A fair lock is a one-permit queued recipe (:mod:`leaderpool.locks.queue_scripts`) on the keys
``QueueKeys("fair-lock", resource)``: the same code as a semaphore, so the same fencing tokens,
leases, renewal deadline and per-waiter wake-ups. Its keys are not python-redis-lock's: a fair and
an unfair lock on one resource do not exclude each other, so every user of a resource must pick
the same.
"""

from __future__ import annotations

import redis
import redis.asyncio

from leaderpool.backend.keys import DEFAULT_PREFIX, QueueKeys
from leaderpool.locks.async_semaphore import AsyncQueuedHolder
from leaderpool.locks.queue_core import Mode, QueueHolderState, validate_lease
from leaderpool.locks.semaphore import QueuedHolder


def fair_state(resource: str, ttl_s: float, prefix: str = DEFAULT_PREFIX) -> QueueHolderState:
    return QueueHolderState(QueueKeys("fair-lock", resource, prefix), Mode.SEMAPHORE, 1, validate_lease(ttl_s), "lock")


class FairLock(QueuedHolder):
    """What ``Lock(client, resource, fair=True)`` gives: a blocking mutex served first come,
    first served (``with ... as lock: lock.token``)."""

    def __init__(
        self,
        client: redis.Redis,
        resource: str,
        *,
        ttl_s: float,
        timeout: float | None = None,
        auto_renew: bool = True,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        super().__init__(client, fair_state(resource, ttl_s, prefix), timeout=timeout, auto_renew=auto_renew)

    def __enter__(self) -> FairLock:
        super().__enter__()
        return self


class AsyncFairLock(AsyncQueuedHolder):
    """What ``AsyncLock(client, resource, fair=True)`` gives."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        resource: str,
        *,
        ttl_s: float,
        timeout: float | None = None,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        super().__init__(client, fair_state(resource, ttl_s, prefix), timeout=timeout)

    async def __aenter__(self) -> AsyncFairLock:
        await super().__aenter__()
        return self


__all__ = ["AsyncFairLock", "FairLock"]
