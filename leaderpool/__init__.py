"""leaderpool: a pool of identical services agrees through Redis on exactly one leader at a time.

Blocking::

    from leaderpool import Election, MemberConfig

    with Election(MemberConfig(pool="scheduler"), "redis://localhost:6379/0",
                  on_elected=start_work, on_revoked=stop_work) as election:
        ...  # election.is_leader, election.term, election.leader are answered locally

asyncio: the same with :class:`AsyncElection` and ``async with``.
"""

from leaderpool.aio import AsyncElection
from leaderpool.blocking import Election
from leaderpool.config import MemberConfig
from leaderpool.errors import (
    ConfigError,
    LeaderpoolError,
    LeaseLost,
    NotLeader,
    RedisUnavailable,
    StaleTerm,
)
from leaderpool.events import LeaderInfo, RevokeReason, Role
from leaderpool.keys import Keyspace
from leaderpool.members import MemberInfo, Ranker, by_priority_then_age
from leaderpool.store import FenceResult, fenced_set

__version__ = "0.1.0"

__all__ = [
    "AsyncElection",
    "ConfigError",
    "Election",
    "FenceResult",
    "Keyspace",
    "LeaderInfo",
    "LeaderpoolError",
    "LeaseLost",
    "MemberConfig",
    "MemberInfo",
    "NotLeader",
    "Ranker",
    "RedisUnavailable",
    "RevokeReason",
    "Role",
    "StaleTerm",
    "__version__",
    "by_priority_then_age",
    "fenced_set",
]
