"""The exceptions leaderpool raises, one root with context::

    LeaderpoolError
    ├── ConfigError          bad pool/member name, ttl, heartbeat, URL... (also a ValueError)
    ├── NotLeader            a leader-only operation on a member that does not lead
    ├── LeaseLost            leadership ended while the caller relied on it
    ├── StaleTerm            a fenced write carried a term older than one already accepted
    └── RedisUnavailable     Redis could not be reached or did not answer in time

Backend (redis-py) exceptions are translated in :func:`translate_redis_errors` only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import redis.exceptions


class LeaderpoolError(Exception):
    """Root of every leaderpool error; carries the pool, member and term where known."""

    def __init__(
        self,
        message: str,
        *,
        pool: str | None = None,
        member: str | None = None,
        term: int | None = None,
    ) -> None:
        super().__init__(message)
        self.pool = pool
        self.member = member
        self.term = term


class ConfigError(LeaderpoolError, ValueError):
    """A setting or name is invalid; the message names it and says what is wrong."""


class NotLeader(LeaderpoolError):
    """The operation needs leadership and this member does not hold it."""


class LeaseLost(LeaderpoolError):
    """Leadership ended while the operation relied on it."""


class StaleTerm(LeaderpoolError):
    """A fenced write was refused: a newer term already wrote this resource."""


class RedisUnavailable(LeaderpoolError):
    """Redis did not answer: connection refused, reset, or timed out."""


REDIS_FAILURES: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
    asyncio.TimeoutError,
    ConnectionError,
    OSError,
)

RETRYABLE: tuple[type[BaseException], ...] = (*REDIS_FAILURES, redis.exceptions.RedisError)
"""What a background loop survives and retries: unreachable Redis and server-side errors."""


@contextmanager
def translate_redis_errors(
    *, pool: str | None = None, member: str | None = None, term: int | None = None
) -> Iterator[None]:
    """Re-raise connection-level failures as :class:`RedisUnavailable` with context."""
    try:
        yield
    except REDIS_FAILURES as exc:
        raise RedisUnavailable(
            f"redis unavailable: {exc or type(exc).__name__}", pool=pool, member=member, term=term
        ) from exc
