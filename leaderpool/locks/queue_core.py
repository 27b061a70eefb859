"""What both faces of the queued recipes share: settings and their checks, one holder's calls to
the scripts of :mod:`leaderpool.locks.queue_scripts` and what their replies mean, and error
translation naming the resource. The I/O loops are the faces' own
(:mod:`leaderpool.locks.semaphore`, :mod:`leaderpool.locks.async_semaphore`).

A holder's state is :class:`QueueHolderState`: the fencing token of its permit, whether it was
lost, and the **renewal deadline** on our own monotonic clock (the lease counted from when the last
successful acquire or renewal was *sent*): past it, the permit may be someone else's, whatever the
renewal thread has had time to find out, so :attr:`QueueHolderState.holding` turns false at once
(a process resumed after a SIGSTOP sees it before its next action).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple
from uuid import uuid4

from leaderpool import probe
from leaderpool.backend.keys import QueueKeys
from leaderpool.backend.redis_errors import translate
from leaderpool.errors import ConfigError, LockNotAcquired
from leaderpool.locks.holder_liveness import Liveness
from leaderpool.locks.queue_scripts import WAKE_TTL_MS
from leaderpool.util.log import get_logger
from leaderpool.util.timeouts import block_timeout

DEFAULT_LEASE_S = 10.0
"""A holder that dies frees its permit within this long; renewal keeps a live holder's."""

WAITER_LEASE_S = 6.0
"""A waiter re-joins the queue at least this often (each wait is at most a third of it): one
that died leaves the queue within this long, so those behind it are not held up for ever."""

WAITER_BLOCK_S = WAITER_LEASE_S / 3
"""The longest single ``BLPOP`` of a waiter (it renews its waiter lease between two)."""

assert WAITER_BLOCK_S * 1000 < WAKE_TTL_MS  # a wake-up outlives the gap between two BLPOPs

log = get_logger("leaderpool")


class Mode(str, Enum):
    """How many may hold at once: up to ``permits`` (a semaphore, a fair lock), or readers
    together and writers alone (a read-write lock)."""

    SEMAPHORE = "sem"
    READ_WRITE = "rw"


class Taken(NamedTuple):
    """The acquire script's reply: ``granted`` with its fencing ``token``, or not, with how long
    at most (``wait_ms``) to block for a wake-up before trying again; ``permits_in_use`` when
    others use the semaphore with another permit count (refused)."""

    granted: bool
    token: int
    wait_ms: int
    permits_in_use: int | None = None

    @classmethod
    def parse(cls, reply: Any) -> Taken:
        status, value = int(reply[0]), int(reply[1])
        if status == 2:
            return cls(False, 0, 0, value)
        return cls(True, value, 0) if status == 1 else cls(False, 0, value)


def validate_lease(ttl_s: object) -> float:
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, (int, float)) or not ttl_s >= 0.1:
        raise ConfigError(f"a permit's ttl_s must be a number of seconds, at least 0.1, got {ttl_s!r}")
    return float(ttl_s)


def validate_permits(permits: object) -> int:
    if isinstance(permits, bool) or not isinstance(permits, int) or permits < 1:
        raise ConfigError(f"a semaphore's permits must be an integer >= 1, got {permits!r}")
    return permits


@dataclass
class QueueHolderState:
    """One holder of a queued recipe: its keys, its member id, and its permit while held."""

    keys: QueueKeys
    mode: Mode
    permits: int
    ttl_s: float
    what: str
    """What it is in messages and logs: ``semaphore``, ``read lock``, ``write lock``, ``fair lock``."""
    member_prefix: str = ""
    member: str = field(init=False)
    token: int | None = field(default=None, init=False)
    lost: bool = field(default=False, init=False)
    lost_why: str = field(default="", init=False)
    attempts: int = field(default=0, init=False)
    valid_until: float = field(default=0.0, init=False)
    """The renewal deadline: monotonic time past which the permit may no longer be ours."""
    liveness: Liveness | None = field(default=None, init=False)
    """The process's liveness connection the permit is registered with (None: none to be had)."""

    def __post_init__(self) -> None:
        self.member = self.member_prefix + uuid4().hex

    @property
    def resource(self) -> str:
        return self.keys.resource

    @property
    def holding(self) -> bool:
        """True while the permit is ours by our own clock: taken, not found lost, and its lease
        (from the last acquire or renewal sent) not yet past."""
        return self.token is not None and not self.lost and time.monotonic() < self.valid_until

    def args(self, *more: int | str) -> list[str | int]:
        return [self.keys.wake_prefix, self.mode.value, self.permits, self.member, *more]

    def acquire_args(self, waiting: bool) -> list[str | int]:
        channel = self.liveness.channel if self.liveness is not None else ""
        return self.args(int(self.ttl_s * 1000), int(WAITER_LEASE_S * 1000) if waiting else 0, channel)

    def extend_args(self) -> list[str | int]:
        return self.args(int(self.ttl_s * 1000))

    @property
    def wake_key(self) -> str:
        return self.keys.wake(self.member)

    def granted(self, token: int, sent_at: float, began: float) -> None:
        self.token, self.lost, self.lost_why = token, False, ""
        self.valid_until = sent_at + self.ttl_s
        log.debug("permit_acquired", kind=self.keys.kind, resource=self.resource, token=token, what=self.what)
        probe.lock("acquired", time.monotonic() - began)
        if self.liveness is not None and not self.liveness.watch(self):
            self.mark_lost("the process's liveness connection to Redis dropped as the permit was granted")

    def released(self) -> None:
        """The permit is given back (or was not ours to rely on): no longer watched."""
        self.token = None
        if self.liveness is not None:
            self.liveness.unwatch(self)

    def renewed(self, sent_at: float) -> None:
        self.valid_until = sent_at + self.ttl_s

    def mark_lost(self, why: str) -> None:
        if not self.lost:
            self.lost, self.lost_why = True, why
            log.warning("permit_lost", kind=self.keys.kind, resource=self.resource, token=self.token, why=why)
            probe.lock("lost")

    def check(self, taken: Taken) -> Taken:
        """``taken``, unless it says others use another permit count: ConfigError."""
        if taken.permits_in_use is not None:
            raise ConfigError(
                f"{self.what} {self.resource!r} is in use with permits={taken.permits_in_use}, not {self.permits}: "
                "every user of a resource must give the same count (it may change once nobody holds or waits)"
            )
        return taken

    def not_acquired(self, waited_s: float) -> LockNotAcquired:
        return LockNotAcquired(
            f"could not take {self.what} {self.resource!r}: no permit free for us after {waited_s:.1f}s "
            f"({self.attempts} attempt(s))",
            resource=self.resource,
            waited_s=waited_s,
            attempts=self.attempts,
        )


def block_for(taken: Taken, left_s: float | None, cap_s: float) -> float:
    """How long a refused waiter blocks on its wake-up list: until the first lease would end,
    at most ``cap_s`` (and :data:`WAITER_BLOCK_S`) and what is left of the timeout."""
    wait = min(taken.wait_ms / 1000, cap_s, WAITER_BLOCK_S)
    if left_s is not None:
        wait = min(wait, left_s)
    return block_timeout(wait) if wait > 0 else 0.0


@contextmanager
def translated(script: str) -> Iterator[None]:
    """Backend failures as leaderpool errors: Redis unreachable, credentials refused, or a key
    of the wrong type (:class:`~leaderpool.errors.BadPoolData`, nothing written)."""
    try:
        yield
    except Exception as exc:
        error = translate(exc, script=script)
        if error is None or error is exc:
            raise
        raise error from exc
