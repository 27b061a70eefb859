"""A cluster-wide counting semaphore for blocking code: at most ``permits`` holders of a resource
at once, each with a fencing token, a lease renewed while held, and a place in a first-come,
first-served queue while it waits.

``with Semaphore(client, "gpu", permits=4, ttl_s=10, timeout=30) as permit: ... permit.token``.

How it holds (the Lua is :mod:`leaderpool.locks.queue_scripts`, the keys
:class:`~leaderpool.backend.keys.QueueKeys`):

- a permit is an entry in a sorted set, holder -> lease deadline on Redis's clock; every script
  first drops the entries whose lease ended, so a crashed holder's permit is reclaimed at its
  lease end; a live holder's lease is renewed every third of ``ttl_s`` on the process's one
  renewal thread (:mod:`leaderpool.locks.lock_renewal`);
- the fencing token is handed out by the script that grants the permit, so tokens grow in the
  order permits were granted;
- a waiter joins a queue in arrival order and only the head(s) are granted a free permit; it
  blocks in ``BLPOP`` on its own wake-up list, which a release (or a lapsed lease found by any
  script) pushes for exactly those now first in line, never longer than until the first lease
  ends; a waiter that dies leaves the queue within :data:`~leaderpool.locks.queue_core.WAITER_LEASE_S`.
- :attr:`QueuedHolder.holding` is false once the renewal deadline passed (a process resumed from a
  SIGSTOP past its lease knows before acting), and :attr:`QueuedHolder.lost` once a renewal or the
  release found the permit gone.

Every user of a resource must give the same ``permits``: while anyone holds or waits, another
count is refused (:class:`~leaderpool.errors.ConfigError`); it may change once the semaphore is idle.
"""

from __future__ import annotations

import contextlib
import time
from types import TracebackType

import redis
import redis_lock

from leaderpool.backend.keys import DEFAULT_PREFIX, QueueKeys
from leaderpool.backend.redis_errors import translate_redis_errors
from leaderpool.locks.holder_liveness import LIVENESS
from leaderpool.locks.lock_renewal import RENEWER, Renewal
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


class QueuedHolder:
    """One holder of a queued recipe on a blocking redis-py client (a semaphore's permit, one side
    of a read-write lock, a fair lock): :meth:`acquire`, :meth:`release`, a context manager."""

    def __init__(
        self,
        client: redis.Redis,
        state: QueueHolderState,
        *,
        timeout: float | None = None,
        auto_renew: bool = True,
    ) -> None:
        self.state = state
        self.timeout = validate_timeout(timeout)
        self._client = client
        self._scripts = QueueScripts.on(client)
        self._auto_renew = auto_renew
        self._wait_cap = wait_cap(client)
        self._renewal: Renewal | None = None

    # what a lock user reads (and the renewer needs)
    @property
    def resource(self) -> str:
        return self.state.resource

    @property
    def ttl_s(self) -> float:
        return self.state.ttl_s

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
        """True while the permit is ours by our own clock (see :mod:`leaderpool.locks.queue_core`):
        check it before each action that must not overlap another holder's."""
        return self.state.holding

    # ---- taking ----

    def acquire(self, blocking: bool = True, timeout: float | None = None, attempts: int | None = None) -> bool:
        """Take a permit; False when ``timeout`` (default: the constructor's) passed or
        ``attempts`` tries were refused first. Waits in the queue, woken by its wake-up list."""
        s = self.state
        if s.token is not None:
            raise redis_lock.AlreadyAcquired(f"this {s.what} object already holds {s.resource!r}")
        limit = validate_timeout(self.timeout if timeout is None else timeout)
        began = time.monotonic()
        deadline = None if limit is None else began + limit
        s.attempts = 0
        keys = s.keys.script_keys
        s.liveness = LIVENESS.for_client(self._client, s.keys.prefix)
        try:
            with translated("queue_acquire"), translate_redis_errors():
                while True:
                    s.attempts += 1
                    left = None if deadline is None else deadline - time.monotonic()
                    last = (
                        not blocking
                        or (attempts is not None and s.attempts >= attempts)
                        or (left is not None and left <= 0)
                    )
                    sent_at = time.monotonic()
                    taken = s.check(Taken.parse(self._scripts.acquire.blocking(keys, s.acquire_args(waiting=not last))))
                    if taken.granted:
                        s.granted(taken.token, sent_at, began)
                        if self._auto_renew:
                            self.start_renewal()
                        return True
                    if last:
                        return False
                    wait = block_for(taken, left, self._wait_cap)
                    if wait > 0:
                        self._client.blpop([s.wake_key], timeout=wait)
        except BaseException:
            self._leave_quietly()  # interrupted while queued: do not hold the queue up
            raise

    def __enter__(self) -> QueuedHolder:
        started = time.monotonic()
        if not self.acquire():
            raise self.state.not_acquired(time.monotonic() - started)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    # ---- holding ----

    def start_renewal(self) -> None:
        """Renew the permit every third of its ttl until it is released (on the process's one
        renewal thread)."""
        if self._renewal is None:
            self._renewal = RENEWER.add(self)

    def extend(self, expire: float | None = None) -> None:
        """Push the lease on by ``ttl_s`` (the renewer calls it); raises
        ``redis_lock.NotAcquired`` when the permit is no longer ours."""
        s = self.state
        sent_at = time.monotonic()
        # untranslated: the renewer tells Redis's errors apart (an ACL refusal, a failure to retry)
        lost = int(self._scripts.extend.blocking(s.keys.script_keys, s.extend_args()))
        if lost:
            raise redis_lock.NotAcquired(f"{s.what} {s.resource!r}: the permit's lease ended")
        s.renewed(sent_at)

    def mark_lost(self, why: str) -> None:
        self.state.mark_lost(why)

    # ---- releasing ----

    def release(self) -> None:
        """Stop renewing and give the permit back (waking the next in line). A permit whose
        lease ended meanwhile is marked :attr:`lost` instead of raising."""
        renewal, self._renewal = self._renewal, None
        if renewal is not None:
            RENEWER.remove(renewal)
        s = self.state
        if s.token is None:
            return
        try:
            with translated("queue_leave"), translate_redis_errors():
                lost = int(self._scripts.leave.blocking(s.keys.script_keys, s.args()))
            if lost:
                s.mark_lost("the release found the permit no longer ours")
        finally:
            s.released()  # released, or not ours to rely on: its lease ends anyway

    def _leave_quietly(self) -> None:
        s = self.state
        with contextlib.suppress(Exception):  # best effort: the waiter lease ends anyway
            self._scripts.leave.blocking(s.keys.script_keys, s.args())
        s.released()


class Semaphore(QueuedHolder):
    """A cluster-wide counting semaphore on ``resource`` for a blocking redis-py client: at most
    ``permits`` holders at once, served in arrival order.

    ``with Semaphore(client, "gpu", permits=4, ttl_s=10, timeout=30) as permit: ...`` waits up to
    ``timeout`` seconds (None: for ever) and raises :class:`~leaderpool.errors.LockNotAcquired`
    when no permit came; ``permit.token`` is its fencing token. ``auto_renew=False`` leaves
    renewal to :meth:`start_renewal` (``leaderpool-cli lock -n`` forks its command first)."""

    def __init__(
        self,
        client: redis.Redis,
        resource: str,
        *,
        permits: int,
        ttl_s: float = DEFAULT_LEASE_S,
        timeout: float | None = None,
        auto_renew: bool = True,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        state = QueueHolderState(
            QueueKeys("semaphore", resource, prefix),
            Mode.SEMAPHORE,
            validate_permits(permits),
            validate_lease(ttl_s),
            "semaphore",
        )
        super().__init__(client, state, timeout=timeout, auto_renew=auto_renew)
        self.permits = state.permits

    def __enter__(self) -> Semaphore:
        super().__enter__()
        return self


__all__ = ["QueuedHolder", "Semaphore"]
