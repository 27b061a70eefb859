"""Settings for a pool's work (jobs, calls, multicalls): data, frozen and validated, units in names."""

from __future__ import annotations

import math
from dataclasses import dataclass

from leaderpool.errors import ConfigError

DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024
"""A payload (or a reply) above this, encoded as JSON, is refused: jobs are messages, not blobs;
put large data elsewhere and send its key."""

DEFAULT_MAX_BACKLOG = 100_000
"""The cap of the job stream: unfinished jobs (not yet read, or read and not yet acknowledged).
At the cap ``submit`` raises :class:`~leaderpool.errors.BacklogFull`; no job is ever dropped."""

DEFAULT_MAX_DELIVERIES = 5
"""A job delivered this many times without succeeding moves to the dead-letter stream."""

DEFAULT_MAX_DEAD_LETTERS = 10_000
"""The dead-letter stream keeps about this many entries (``XADD MAXLEN ~``: Redis trims whole
nodes of about 100 entries, so a few more may stay); beyond it the oldest dead letters go, so a
handler that fails everything cannot fill Redis (at the 64 KiB payload limit, about 650 MB at most)."""

GROUP = "leader"
"""The consumer group the leader reads the job stream in (one per pool; the consumer is the member)."""


def _positive(name: str, value: object, *, integer: bool) -> None:
    kind = "integer" if integer else "number"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ConfigError(f"{name} must be a positive {kind}, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive {kind}, got {value!r}")


@dataclass(frozen=True)
class JobsConfig:
    """How a pool's jobs are submitted, consumed and answered.

    ``batch`` jobs at most are read (and acknowledged) in one round trip; acknowledgements of a
    batch are sent at the latest ``flush_s`` after the first of them finished, so one slow job
    does not hold the replies of the others. The leader looks for jobs held by others (a leader
    that lost its lead while reading) every ``reclaim_s``, and claims them all at once when it
    is elected.
    """

    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    max_backlog: int = DEFAULT_MAX_BACKLOG
    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    max_dead_letters: int = DEFAULT_MAX_DEAD_LETTERS
    batch: int = 200
    flush_s: float = 0.005
    reclaim_s: float = 1.0
    retry_delay_s: float = 0.1
    """A failed job runs again after this delay, doubling with each delivery up to ``retry_delay_max_s``."""
    retry_delay_max_s: float = 5.0
    reply_grace_s: float = 60.0
    """An uncollected reply expires this long after the caller's own timeout."""
    inbox_ttl_s: float = 60.0
    """A member's inbox (targeted calls, multicalls) expires this long after its last request."""

    def __post_init__(self) -> None:
        for name in ("max_payload_bytes", "max_backlog", "max_deliveries", "max_dead_letters", "batch"):
            _positive(name, getattr(self, name), integer=True)
        for name in ("flush_s", "reclaim_s", "retry_delay_s", "retry_delay_max_s", "reply_grace_s", "inbox_ttl_s"):
            _positive(name, getattr(self, name), integer=False)

    def retry_delay(self, delivery: int) -> float:
        """How long to wait before delivery number ``delivery`` (2 or more) of a failed job."""
        return float(min(self.retry_delay_s * 2.0 ** max(delivery - 2, 0), self.retry_delay_max_s))
