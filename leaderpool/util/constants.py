"""Every tuning constant of the library, each with the reason for its value.

Per-member settings (lease, heartbeat, renew deadline) are data in :class:`~leaderpool.config.MemberConfig`;
what is here is fixed for every pool. The worker and the CLI keep their own constants.
"""

from __future__ import annotations

# ---- connections and settings ----

DEFAULT_URL = "redis://localhost:6379/0"
"""Where a member looks for Redis when told nothing: the usual local development server."""

DEFAULT_TTL_S = 5.0
"""The default lease: failover within about 5 s, while a GC pause or a slow network of a second
or two does not cost a leader its lead."""

MIN_TTL_S = 0.05
"""The shortest lease accepted: below it, a heartbeat (a third of it) would be shorter than a
Redis round trip on a loaded machine."""

MAX_NODE_LENGTH = 255
"""A node name is a host name (at most 255 characters by DNS)."""

# ---- keys ----

DEFAULT_PREFIX = "leaderpool"
"""First part of every key: one Redis can host leaderpool next to other applications."""

MAX_NAME_LENGTH = 128
"""Pool, member and prefix names: long enough for ``host-pid-random`` ids, short enough that a
key stays readable in ``redis-cli`` listings."""

MAX_META_BYTES = 4096
"""A member's metadata, JSON-encoded, is at most this long: it is copied into every member listing
a heartbeat or a re-read returns (one reply per member per re-read), so a large blob would slow
every failover; 4 KiB holds any address, zone or version map."""

HISTORY_MAXLEN = 1000
"""Approximate length the history stream is trimmed to (``XADD MAXLEN ~``): enough for months
of ordinary transitions, bounded so a flapping pool cannot fill Redis."""

# ---- the election loop ----

FIRST_BEAT_SPREAD = (0.5, 1.0)
"""A member's first heartbeat (and a new leader's first renewal) comes after this fraction of a
heartbeat, at random: members started together would otherwise beat, and leaders elected
together renew and expire, together for ever. Renewing early is always safe."""

SPIN_LEAD_S = 0.0015
"""The next in line wakes this long before the leader's lease ends and yields until the exact
instant: event-loop timers fire up to a millisecond late (epoll counts whole milliseconds)."""

REREAD_DELAY_S = 0.02
"""How long a follower waits before confirming an announced leader with a read of the pool:
right after a transition the new leader's first steps matter more than our confirmation."""

VACANCY_GRACE_S = 0.05
"""A follower that is not next in line looks at a vacant lead this long (plus a tenth of a
heartbeat) after it freed, in case the next in line died too or notifications are off."""

MIN_CALL_TIMEOUT_S = 0.05
"""The shortest bound on one Redis call (a heartbeat shorter than this would time out calls
that a loaded machine answers in time)."""

BACKOFF_FIRST_S = 0.05
"""The first retry after a failed Redis call: a dropped connection usually reconnects at once."""

BACKOFF_JITTER = 0.5
"""Each retry waits a random share of its delay, down to this fraction: members that failed
together (a Redis pause, an overloaded process) must not retry together, in step, for ever."""

BACKOFF_DOUBLINGS = 10
"""Retries double their delay this many times at most before the cap (one heartbeat)."""

LEADER_RETRY_MIN_S = 0.01
"""A leader retries at least this often while its renew deadline runs (a quarter of what is left
otherwise): it must renew before the deadline, but must not spin."""

LOG_FAILURE_AT = (1, 10)
"""A run of failed Redis calls is logged as a warning at these counts, then every
:data:`LOG_FAILURE_EVERY`: an outage must show, but not fill the log."""

LOG_FAILURE_EVERY = 100

# ---- the watcher ----

WATCHER_RETRY_FIRST_S = 0.05
"""The watcher's first reconnect delay: pub/sub connections are usually killed, not lost."""

WATCHER_RETRY_MAX_S = 2.0
"""The watcher's reconnect delay cap: members' own timers cover the gap, so no need to hammer."""

NEEDED_KEYSPACE_FLAGS = "Kg$x"
"""``notify-keyspace-events`` flags the watcher needs: K keyspace channel; g del/expire;
$ set; x expired."""
