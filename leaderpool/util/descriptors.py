"""The process's open-files limit: raised to its ceiling at start, and a reserve kept below it.

A listener that anyone on the network can reach (the liveness endpoint) must never take the last
descriptors: the worker needs some to reconnect to Redis, and a process that cannot reconnect
loses its lead (issue 23). :func:`raise_limit` lifts the soft limit to the hard one (the common
soft limit of 1,024 is a default, not a decision); :func:`near_limit` says whether a descriptor
just handed out is within :data:`RESERVE` of the limit.
"""

from __future__ import annotations

try:
    import resource
except ImportError:  # pragma: no cover  (not on POSIX: no limit to raise or read)
    resource = None  # type: ignore[assignment]

RESERVE = 64
"""Descriptors kept free for Redis connections, the HTTP endpoints and logs: a listener open to
strangers closes what it accepts once fewer than this many are left."""


def raise_limit() -> tuple[int, int] | None:
    """Raise the soft RLIMIT_NOFILE to the hard limit (where the hard limit is finite); returns
    (soft before, soft after), or None where the limit cannot be read."""
    if resource is None:
        return None
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return soft, hard
        return soft, soft
    except (OSError, ValueError):  # a sandbox that refuses: keep what we have
        return None


def soft_limit() -> int | None:
    """The soft RLIMIT_NOFILE (None: unlimited or unknown)."""
    if resource is None:
        return None
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY else int(soft)


def near_limit(fd: int, reserve: int = RESERVE) -> bool:
    """Whether ``fd``, a descriptor just opened, is within ``reserve`` of the soft limit. The
    kernel hands out the lowest free number, so every descriptor below ``fd`` is in use: at most
    ``limit - fd - 1`` are left. (Cheap enough to ask on every accept: one system call.)"""
    limit = soft_limit()
    return limit is not None and fd >= limit - reserve
