"""Cluster-wide locks, as Erlang's ``:global.set_lock`` / ``del_lock`` / ``trans``, on
python-redis-lock.

:class:`Lock` *is* a python-redis-lock lock (a subclass), so it speaks its protocol: the lock
lock key holds the holder's random id with an expiry, and a release pushes onto the signal
list, waking one waiter blocked in ``BLPOP`` at once. What it adds:

- the keys are under the prefix (``leaderpool:lock:{orders}``, ``leaderpool:lock-signal:{orders}``),
  which the prefix's ACL covers, and the resource is their hash tag, so both keys, and the token
  counter, sit on one Redis Cluster slot;
- a **fencing token** per acquisition (``lock.token``), strictly increasing per resource: the
  lock is taken and the counter ``leaderpool:lock-token:{orders}`` incremented in one script, so tokens
  follow the order in which the lock was held (pass it along and refuse older ones downstream);
- waits bounded by the holder's expiry: a waiter also wakes when a dead holder's lock expires,
  not one full ``BLPOP`` timeout later; timeouts in fractions of a second;
- renewal every third of the ttl on one thread shared by every lock of the process
  (:mod:`leaderpool.locks.lock_renewal`), and a lost lock (it expired while we were paused) reported
  (``lock.lost``, a ``lock_lost`` warning) instead of a crashed renewal thread.

:class:`~leaderpool.locks.async_lock.AsyncLock` is the asyncio face: the same keys, scripts and rules,
so a blocking holder and an asyncio holder of one resource and prefix exclude each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import redis
import redis_lock

from leaderpool import probe
from leaderpool.backend.keys import DEFAULT_PREFIX, LockKeys
from leaderpool.backend.redis_errors import translate_redis_errors
from leaderpool.errors import ConfigError, LockNotAcquired
from leaderpool.locks.lock_renewal import RENEW_FRACTION as RENEW_FRACTION  # re-exported: the asyncio face
from leaderpool.locks.lock_renewal import RENEWER, Renewal
from leaderpool.locks.lock_rules import MAX_WAIT_S, validate_timeout, wait_cap
from leaderpool.locks.lock_scripts import LockScripts
from leaderpool.util.block_timeout import block_timeout
from leaderpool.util.log import get_logger

T = TypeVar("T")

DEFAULT_LOCK_TTL_S = 10
"""A holder that dies frees the lock within this long; renewal keeps a live holder's lock."""

SIGNAL_EXPIRE_MS = 1000
"""How long a release's wake-up signal waits for a waiter (python-redis-lock's default)."""


NO_EXPIRY_POLL_S = 1.0
"""How often a waiter re-checks a lock held without expiry (a plain python-redis-lock user's)."""

log = get_logger("leaderpool")


def validate_ttl(ttl_s: object) -> int:
    """The ttl in whole seconds (python-redis-lock's unit), at least 1."""
    if isinstance(ttl_s, float) and ttl_s.is_integer():
        ttl_s = int(ttl_s)
    if not isinstance(ttl_s, int) or isinstance(ttl_s, bool) or ttl_s < 1:
        raise ConfigError(f"a lock's ttl_s must be a whole number of seconds, at least 1, got {ttl_s!r}")
    return ttl_s


def validate_retries(retries: object) -> int | None:
    if retries is None:
        return None
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"retries must be None (no limit) or an integer >= 0, got {retries!r}")
    return retries


def next_wait(pttl_ms: int, left_s: float | None, cap_s: float = MAX_WAIT_S) -> float:
    """How long a waiter blocks for the release signal before trying again: until the holder's
    lock would expire (a dead holder sends no signal), at most ``cap_s``; 0 means try again at
    once, and any wait is at least :data:`~leaderpool.util.timeouts.MIN_BLOCK_S`."""
    if pttl_ms == -2:  # released meanwhile
        return 0.0
    wait = NO_EXPIRY_POLL_S if pttl_ms < 0 else pttl_ms / 1000 + 0.001
    wait = min(wait, cap_s)
    if left_s is not None:
        wait = min(wait, left_s)
    return block_timeout(wait) if wait > 0 else 0.0


def timed_out_message(resource: str, waited_s: float, attempts: int) -> str:
    return (
        f"could not take lock {resource!r}: still held by another holder after {waited_s:.1f}s ({attempts} attempt(s))"
    )


def _register_base_scripts(client: redis.Redis) -> None:
    """python-redis-lock registers its scripts once per process, on the class that asks first:
    were that this subclass, plain ``redis_lock.Lock`` objects made later would have none (and
    fail to release). Register them on the base class first."""
    base = redis_lock.Lock
    if base.unlock_script is None:
        base.unlock_script = client.register_script(redis_lock.UNLOCK_SCRIPT)
        base.extend_script = client.register_script(redis_lock.EXTEND_SCRIPT)
        base.reset_script = client.register_script(redis_lock.RESET_SCRIPT)
        base.reset_all_script = client.register_script(redis_lock.RESET_ALL_SCRIPT)


class Lock(redis_lock.Lock):  # type: ignore[misc]  # python-redis-lock ships no type hints
    """A cluster-wide lock on ``resource`` for a blocking redis-py client.

    ``with Lock(client, "orders", ttl_s=10, timeout=5) as lock: ... lock.token ...`` waits up to
    ``timeout`` seconds (None: for ever) and raises :class:`~leaderpool.errors.LockNotAcquired`
    when it could not take it; the lock is renewed while held and released on exit.
    ``auto_renew=False`` leaves renewal to :meth:`start_renewal` (``leaderpool-cli lock`` forks
    its command first).

    ``fair=True`` gives a :class:`~leaderpool.locks.fair_lock.FairLock` instead: the lock granted
    in arrival order (a one-permit queue, with the same ``token``, ``lost``, ``acquire`` and
    ``release``), on keys of its own: every user of a resource must pick the same."""

    def __new__(
        cls,
        client: redis.Redis,
        resource: str,
        *,
        fair: bool = False,
        ttl_s: int = DEFAULT_LOCK_TTL_S,
        timeout: float | None = None,
        auto_renew: bool = True,
        prefix: str = DEFAULT_PREFIX,
    ) -> Any:  # a FairLock when fair: the same face, another class
        if not fair:
            return super().__new__(cls)
        from leaderpool.locks.fair_lock import FairLock

        return FairLock(client, resource, ttl_s=ttl_s, timeout=timeout, auto_renew=auto_renew, prefix=prefix)

    def __init__(
        self,
        client: redis.Redis,
        resource: str,
        *,
        fair: bool = False,
        ttl_s: int = DEFAULT_LOCK_TTL_S,
        timeout: float | None = None,
        auto_renew: bool = True,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self.keys = LockKeys(resource, prefix)
        self.resource = resource
        self.ttl_s = validate_ttl(ttl_s)
        self.timeout = validate_timeout(timeout)
        _register_base_scripts(client)
        super().__init__(client, self.keys.redis_lock_name, expire=self.ttl_s, strict=False)
        self._name, self._signal = self.keys.lock, self.keys.signal  # under the prefix, not python-redis-lock's
        self.token: int | None = None
        """The fencing token of the current acquisition; None while not held."""
        self.lost = False
        """True once a renewal or the release found the lock no longer ours (it expired)."""
        self.lost_why = ""
        """Why: the renewal found it gone, none succeeded for a ttl, or Redis refused it."""
        self.attempts = 0
        self._auto_renew = auto_renew
        self._take = LockScripts.on(client).acquire.blocking
        self._wait_cap = wait_cap(client)
        self._renewal: Renewal | None = None

    # ---- taking ----

    def acquire(self, blocking: bool = True, timeout: float | None = None, attempts: int | None = None) -> bool:
        """Take the lock; False when ``timeout`` (default: the constructor's) passed or
        ``attempts`` tries were refused first. Waits on the release signal, bounded by when the
        holder's lock would expire."""
        if self.token is not None:
            raise redis_lock.AlreadyAcquired("Already acquired from this Lock instance.")
        limit = validate_timeout(self.timeout if timeout is None else timeout)
        began = time.monotonic()
        deadline = None if limit is None else began + limit
        self.attempts = 0
        with translate_redis_errors():
            while True:
                self.attempts += 1
                taken, value = self._take(keys=[self._name, self.keys.token], args=[self._id, self.ttl_s * 1000])
                if int(taken) == 1:
                    self.token, self.lost = int(value), False
                    log.debug("lock_acquired", resource=self.resource, token=self.token)
                    probe.lock("acquired", time.monotonic() - began)
                    if self._auto_renew:
                        self.start_renewal()
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                out_of_tries = attempts is not None and self.attempts >= attempts
                if not blocking or out_of_tries or (left is not None and left <= 0):
                    return False
                wait = next_wait(int(value), left, self._wait_cap)
                if wait > 0:
                    self._client.blpop([self._signal], timeout=wait)

    def __enter__(self) -> Lock:
        started = time.monotonic()
        if not self.acquire():
            waited = time.monotonic() - started
            raise LockNotAcquired(
                timed_out_message(self.resource, waited, self.attempts),
                resource=self.resource,
                waited_s=waited,
                attempts=self.attempts,
            )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    # ---- holding ----

    def start_renewal(self) -> None:
        """Renew the lock every third of its ttl until it is released (on the process's one
        renewal thread, which holds it weakly: a lock dropped unreleased expires)."""
        if self._renewal is None:
            self._renewal = RENEWER.add(self)

    def mark_lost(self, why: str) -> None:
        if not self.lost:
            self.lost, self.lost_why = True, why
            log.warning("lock_lost", resource=self.resource, token=self.token, why=why)
            probe.lock("lost")

    # ---- releasing ----

    def release(self) -> None:
        """Stop renewing and release (waking one waiter). A lock that expired meanwhile is
        marked :attr:`lost` instead of raising."""
        renewal, self._renewal = self._renewal, None
        if renewal is not None:
            RENEWER.remove(renewal)
        if self.token is None:
            return
        self.token = None
        try:
            with translate_redis_errors():
                super().release()
        except redis_lock.NotAcquired:
            self.mark_lost("the release found the lock no longer ours")


def trans(
    client: redis.Redis,
    resource: str,
    fn: Callable[[], T],
    *,
    retries: int | None = None,
    ttl_s: int = DEFAULT_LOCK_TTL_S,
    prefix: str = DEFAULT_PREFIX,
) -> T:
    """Take the lock on ``resource``, run ``fn()``, release, and return what ``fn`` returned
    (``:global.trans``). Each refused attempt waits for the release signal (or the holder's
    expiry) and tries again, ``retries`` times at most (None: until it gets the lock); then
    raises :class:`~leaderpool.errors.LockNotAcquired`."""
    limit = validate_retries(retries)
    lock = Lock(client, resource, ttl_s=ttl_s, prefix=prefix)
    started = time.monotonic()
    if not lock.acquire(attempts=None if limit is None else limit + 1):
        waited = time.monotonic() - started
        raise LockNotAcquired(
            timed_out_message(resource, waited, lock.attempts) + f": gave up after {limit} retries",
            resource=resource,
            waited_s=waited,
            attempts=lock.attempts,
        )
    try:
        return fn()
    finally:
        lock.release()
