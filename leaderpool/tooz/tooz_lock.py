"""tooz's locks on leaderpool's: :class:`LeaderpoolLock` is a tooz lock on
:class:`leaderpool.locks.blocking_lock.Lock` (``coordinator.get_lock(name)``)."""

from __future__ import annotations

import threading
import time

import redis
import tooz
from tooz import locking

from leaderpool.locks.blocking_lock import Lock
from leaderpool.tooz.translation import text, translated
from leaderpool.util.constants import DEFAULT_PREFIX

__all__ = ["LeaderpoolLock"]


class LeaderpoolLock(locking.Lock):
    """A tooz lock on :class:`leaderpool.locks.blocking_lock.Lock`: renewed in the background while held, with
    a fencing token per acquisition (:attr:`token`). Exclusive only (shared raises tooz's
    NotImplemented). One object is also exclusive between the threads that share it."""

    def __init__(self, name: bytes, client: redis.Redis, ttl_s: int, prefix: str = DEFAULT_PREFIX) -> None:
        super().__init__(name)
        self._lock = Lock(client, text(name), ttl_s=ttl_s, prefix=prefix)
        self._local = threading.Lock()

    @property
    def token(self) -> int | None:
        """The fencing token of the current acquisition (strictly increasing per name), or None."""
        return self._lock.token

    def acquire(self, blocking: bool | float = True, shared: bool = False, timeout: float | None = None) -> bool:
        if shared:
            raise tooz.NotImplemented("leaderpool locks are exclusive")
        wait, limit = _blocking(blocking, timeout)
        began = time.monotonic()
        # threading.Lock refuses a timeout on a non-blocking call
        if not (self._local.acquire(True, -1 if limit is None else limit) if wait else self._local.acquire(False)):
            return False
        left = None if limit is None else max(0.0, limit - (time.monotonic() - began))
        try:
            with translated():
                taken = self._lock.acquire(blocking=wait, timeout=left)
        except BaseException:
            self._local.release()
            raise
        if not taken:
            self._local.release()
        return taken

    def release(self) -> bool:
        if self._lock.token is None:
            return False
        try:
            with translated():
                self._lock.release()
        finally:
            self._local.release()
        return not self._lock.lost

    def break_(self) -> bool:
        with translated():
            self._lock.reset()
        return True

    def is_still_owner(self) -> bool:
        if self._lock.token is None:
            return False
        with translated():
            owner = self._lock.get_owner_id()
        return bool(owner == self._lock.id)


def _blocking(blocking: bool | float, timeout: float | None) -> tuple[bool, float | None]:
    """tooz's ``blocking`` is a bool or a number of seconds to wait."""
    if isinstance(blocking, bool):
        return blocking, timeout
    return True, float(blocking)
