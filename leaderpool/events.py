"""What an election tells the application: roles, revocation reasons, the leader as seen
locally, and the three events (elected, revoked, leader changed) the faces deliver."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from leaderpool.members import MemberInfo


class Role(str, Enum):
    FOLLOWER = "follower"
    LEADER = "leader"
    STOPPED = "stopped"


class RevokeReason(str, Enum):
    """Why a member stopped leading."""

    RELEASED = "released"
    """The lead was removed from outside (``leaderpool-cli evict``, or the key deleted)."""
    LEASE_LOST = "lease_lost"
    """Renewal failed until the renew deadline, or the key expired or went to someone else."""
    TAKEOVER = "takeover"
    """A better-ranked member is alive and the pool has takeover on."""
    RESIGNED = "resigned"
    """On request (``resign()`` or ``leaderpool-cli resign``): handed over to the next member."""
    SHUTDOWN = "shutdown"
    """The member stopped (``stop()``, SIGTERM) and left the pool."""
    TASK_FAILED = "task_failed"
    """The leader's work crashed; the member rejoined as the youngest."""


@dataclass(frozen=True)
class LeaderInfo:
    """The current leader as this process last saw it."""

    member: str
    term: int
    info: MemberInfo | None = field(default=None, compare=False)
    """The leader's member record (node, host, pid, priority, start time, metadata), whose
    ``lease_ms`` is the *lead's* lease left as of the read that cached it (a full lease when
    the lead was just granted); not part of equality: two reads of the same leadership compare
    equal."""

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.info.meta) if self.info else {}

    @property
    def node(self) -> str | None:
        return self.info.node if self.info else None


@dataclass(frozen=True)
class Elected:
    term: int


@dataclass(frozen=True)
class Revoked:
    term: int
    reason: RevokeReason


@dataclass(frozen=True)
class LeaderChanged:
    leader: LeaderInfo | None


Event = Elected | Revoked | LeaderChanged


def leader_identity(leader: LeaderInfo | None) -> tuple[str, int] | None:
    return None if leader is None else (leader.member, leader.term)


Sink = Callable[[Event], "Awaitable[None] | None"]
"""Receives every event in order; may return an awaitable that completes once the
application has handled it (the core waits for that, bounded, before a graceful release)."""
