"""One thread renews every held blocking :class:`~leaderpool.locks.blocking_lock.Lock` of the process.

Starting and joining a thread per acquisition (python-redis-lock's way) costs about as much as
the lock's own two round trips (see ``benchmarks/locks.py``), so the locks share one daemon
thread: each held lock is due every third of its ttl; the thread renews what is due, outside its
condition, holding only that lock's ``busy`` mutex, which a release takes too (so a release
never races a renewal of the same lock into a false "lost"). Locks are held weakly: a lock
dropped without a release stops being renewed, and its key expires within its ttl.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Protocol

import redis_lock

from leaderpool.backend.redis_errors import RETRYABLE, is_acl_refusal
from leaderpool.util.log import get_logger
from leaderpool.util.threads import start_thread

RENEW_FRACTION = 1 / 3
"""A held lock is renewed every third of its ttl: two renewals may fail before it lapses."""

log = get_logger("leaderpool")


class Renewable(Protocol):
    """What the renewer needs of a held lock (:class:`~leaderpool.locks.blocking_lock.Lock`)."""

    @property
    def ttl_s(self) -> float: ...

    @property
    def resource(self) -> str: ...

    def extend(self, expire: float | None = None) -> None: ...

    def mark_lost(self, why: str) -> None: ...


class Renewal:
    """One held lock's place in the renewer's schedule."""

    __slots__ = ("active", "busy", "due", "interval", "ref", "renewed", "ttl_s")

    def __init__(self, lock: Renewable) -> None:
        self.ref = weakref.ref(lock)
        self.ttl_s = lock.ttl_s
        self.interval = lock.ttl_s * RENEW_FRACTION
        self.renewed = time.monotonic()
        self.due = self.renewed + self.interval
        self.active = True
        self.busy = threading.Lock()


class Renewer:
    """The process's lock-renewal thread, started with the first held lock."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held: set[Renewal] = set()
        self._thread: threading.Thread | None = None

    def add(self, lock: Renewable) -> Renewal:
        renewal = Renewal(lock)
        with self._cond:
            self._held.add(renewal)
            if self._thread is None or not self._thread.is_alive():
                self._thread = start_thread(self._run, "leaderpool-lock-renewer")
            self._cond.notify()
        return renewal

    def remove(self, renewal: Renewal) -> None:
        """Stop renewing; returns once a renewal of this lock in flight has finished."""
        with self._cond:
            renewal.active = False
            self._held.discard(renewal)
        with renewal.busy:
            pass

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [r for r in self._held if r.due <= now]
                if not due:
                    next_due = min((r.due for r in self._held), default=None)
                    self._cond.wait(None if next_due is None else next_due - now)
                    continue
            for renewal in due:
                if not self._renew(renewal):
                    with self._cond:
                        self._held.discard(renewal)

    @staticmethod
    def _renew(renewal: Renewal) -> bool:
        """Extend one lock; False when it is to be renewed no more."""
        with renewal.busy:
            lock = renewal.ref()
            if not renewal.active or lock is None:
                return False
            try:
                lock.extend(expire=renewal.ttl_s)
                renewal.renewed = time.monotonic()
            except redis_lock.NotAcquired:
                lock.mark_lost("renewal found the lock no longer ours")
                return False
            except RETRYABLE as exc:
                if is_acl_refusal(exc):  # an ACL without TTL or EXPIRE: retrying cannot help
                    lock.mark_lost(f"Redis refused the renewal ({str(exc)[:200]}): see `leaderpool-cli acl`")
                    return False
                error = str(exc) or type(exc).__name__
                if time.monotonic() - renewal.renewed >= renewal.ttl_s:  # expired in Redis by now
                    lock.mark_lost(f"no renewal succeeded for its ttl ({error})")
                    return False
                log.warning("lock_renewal_failed", resource=lock.resource, error=error)
            renewal.due = time.monotonic() + renewal.interval
            return True


RENEWER = Renewer()
