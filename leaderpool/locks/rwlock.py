"""Cluster-wide read-write locks, both faces: many readers or one writer, with **writer
preference**.

``rw = ReadWriteLock(client, "catalog")``; ``with rw.read() as held: ...`` or ``with rw.write()
as held: ... held.token``; :class:`AsyncReadWriteLock` likewise with ``async with``.

- Readers hold together; a writer holds alone.
- **Writer preference**: while a writer waits, no new reader is let in (readers already holding
  finish; then the writer goes, in arrival order among writers; then every waiting reader at once).
  Writers cannot starve; a steady stream of writers can hold readers back for as long as it lasts.
- Every read or write hold gets a fencing token from one counter per resource (strictly
  increasing in the order holds were granted), a lease renewed while held, and the renewal
  deadline of :mod:`leaderpool.locks.queue_core` (``held.holding``); a holder that dies frees its
  hold at its lease end.
- One object holds one side at a time: taking ``write()`` while its ``read()`` is held (an
  upgrade, which deadlocks two upgraders) or ``read()`` while its ``write()`` is held raises
  :class:`~leaderpool.errors.LockUpgradeRefused`; release first.

It is a queued recipe (:mod:`leaderpool.locks.queue_scripts`, mode ``rw``) on the keys
``QueueKeys("rwlock", resource)``: readers are members ``r:ID``, writers ``w:ID``.
"""

from __future__ import annotations

import redis
import redis.asyncio

from leaderpool.backend.keys import DEFAULT_PREFIX, QueueKeys
from leaderpool.errors import LockUpgradeRefused
from leaderpool.locks.async_semaphore import AsyncQueuedHolder
from leaderpool.locks.queue_core import DEFAULT_LEASE_S, Mode, QueueHolderState, validate_lease
from leaderpool.locks.semaphore import QueuedHolder

READ, WRITE = "read lock", "write lock"


class _Sides:
    """What both faces share: the settings, and which side this object holds."""

    def __init__(self, resource: str, ttl_s: float, prefix: str) -> None:
        self.keys = QueueKeys("rwlock", resource, prefix)
        self.resource = resource
        self.ttl_s = validate_lease(ttl_s)
        self.held: QueueHolderState | None = None

    def state(self, what: str) -> QueueHolderState:
        if self.held is not None and self.held.token is not None:
            if what == WRITE and self.held.what == READ:
                raise LockUpgradeRefused(
                    f"cannot take the write lock on {self.resource!r} while this object holds its read lock "
                    "(upgrades are refused: two upgraders would wait for each other for ever); release the read "
                    "lock first",
                    resource=self.resource,
                )
            raise LockUpgradeRefused(
                f"cannot take the {what} on {self.resource!r}: this object already holds its {self.held.what}",
                resource=self.resource,
            )
        prefix = "w:" if what == WRITE else "r:"
        self.held = QueueHolderState(self.keys, Mode.READ_WRITE, 1, self.ttl_s, what, prefix)
        return self.held


class _BlockingSide(QueuedHolder):
    def __enter__(self) -> _BlockingSide:
        super().__enter__()
        return self


class ReadWriteLock:
    """A cluster-wide read-write lock on ``resource`` for a blocking redis-py client (see the
    module docstring for its rules): ``.read()`` and ``.write()`` give context managers."""

    def __init__(
        self,
        client: redis.Redis,
        resource: str,
        *,
        ttl_s: float = DEFAULT_LEASE_S,
        timeout: float | None = None,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self._sides = _Sides(resource, ttl_s, prefix)
        self._client = client
        self.timeout = timeout
        self.resource = resource

    def read(self, timeout: float | None = None) -> _BlockingSide:
        """A read hold (``with rw.read() as held``), shared with other readers."""
        return self._side(READ, timeout)

    def write(self, timeout: float | None = None) -> _BlockingSide:
        """A write hold (``with rw.write() as held``), alone."""
        return self._side(WRITE, timeout)

    def _side(self, what: str, timeout: float | None) -> _BlockingSide:
        state = self._sides.state(what)
        return _BlockingSide(self._client, state, timeout=self.timeout if timeout is None else timeout)


class _AsyncSide(AsyncQueuedHolder):
    async def __aenter__(self) -> _AsyncSide:
        await super().__aenter__()
        return self


class AsyncReadWriteLock:
    """:class:`ReadWriteLock` for redis-py's asyncio client: ``async with rw.read() as held``."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        resource: str,
        *,
        ttl_s: float = DEFAULT_LEASE_S,
        timeout: float | None = None,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self._sides = _Sides(resource, ttl_s, prefix)
        self._client = client
        self.timeout = timeout
        self.resource = resource

    def read(self, timeout: float | None = None) -> _AsyncSide:
        return self._side(READ, timeout)

    def write(self, timeout: float | None = None) -> _AsyncSide:
        return self._side(WRITE, timeout)

    def _side(self, what: str, timeout: float | None) -> _AsyncSide:
        state = self._sides.state(what)
        return _AsyncSide(self._client, state, timeout=self.timeout if timeout is None else timeout)


__all__ = ["AsyncReadWriteLock", "ReadWriteLock"]
