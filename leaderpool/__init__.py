"""leaderpool: a pool of identical services agrees through Redis on exactly one leader at a time.

Blocking::

    from leaderpool import Election, MemberConfig

    with Election(MemberConfig(pool="scheduler"), "redis://localhost:6379/0",
                  on_elected=start_work, on_revoked=stop_work) as election:
        ...  # election.is_leader, election.term, election.leader are answered locally

asyncio: the same with :class:`AsyncElection` and ``async with``.

The names below are imported on first use (PEP 562), so a command-line tool that needs only a
few of them does not pay for redis-py's asyncio client and the election core at start-up.
"""

from __future__ import annotations

import importlib  # loaded already by the interpreter's start (site)

TYPE_CHECKING = False  # not typing's: leaderpool-cli imports this package before its Ctrl-C handler is in place
if TYPE_CHECKING:
    from typing import Any

    from leaderpool.aio import AsyncElection
    from leaderpool.backend.keys import Keyspace
    from leaderpool.backend.protocol import FenceResult
    from leaderpool.blocking import Election
    from leaderpool.config import MemberConfig
    from leaderpool.errors import (
        BacklogFull,
        BadPoolData,
        CallTimeout,
        ConfigError,
        JobFailed,
        LeaderpoolError,
        LeaseLost,
        LockNotAcquired,
        LockUpgradeRefused,
        MemberIdInUse,
        NoTaker,
        NotLeader,
        PayloadError,
        RedisAuthFailed,
        RedisUnavailable,
        ScriptError,
        StaleTerm,
        StateTooLarge,
    )
    from leaderpool.events import LeaderInfo, RevokeReason, Role
    from leaderpool.fencing import afenced_set, fenced_set
    from leaderpool.jobs.jobs_config import JobsConfig
    from leaderpool.jobs.wire import JobContext, MulticallResult
    from leaderpool.locks.async_lock import AsyncLock, atrans
    from leaderpool.locks.async_semaphore import AsyncSemaphore
    from leaderpool.locks.blocking_lock import Lock, trans
    from leaderpool.locks.rwlock import AsyncReadWriteLock, ReadWriteLock
    from leaderpool.locks.semaphore import Semaphore
    from leaderpool.members import MemberInfo, Ranker, by_priority_then_age
    from leaderpool.names.registry import NameOwner
    from leaderpool.pool_client import AsyncPoolClient, PoolClient
    from leaderpool.schedules.periodic import ScheduledRun, run_schedule
    from leaderpool.schedules.schedule import CatchUp, Schedule
    from leaderpool.singletons.faces import AsyncSingletons, Singletons
    from leaderpool.singletons.singleton_store import SingletonInfo
    from leaderpool.state import LeaderState
    from leaderpool.util.gc_tuning import quiet_gc
    from leaderpool.version import __version__

_EXPORTS = {
    "__version__": "leaderpool.version",
    "AsyncElection": "leaderpool.aio",
    "BadPoolData": "leaderpool.errors",
    "CatchUp": "leaderpool.schedules.schedule",
    "AsyncPoolClient": "leaderpool.pool_client",
    "BacklogFull": "leaderpool.errors",
    "CallTimeout": "leaderpool.errors",
    "JobContext": "leaderpool.jobs.wire",
    "JobFailed": "leaderpool.errors",
    "JobsConfig": "leaderpool.jobs.jobs_config",
    "MulticallResult": "leaderpool.jobs.wire",
    "NoTaker": "leaderpool.errors",
    "PayloadError": "leaderpool.errors",
    "PoolClient": "leaderpool.pool_client",
    "ConfigError": "leaderpool.errors",
    "Election": "leaderpool.blocking",
    "FenceResult": "leaderpool.backend.protocol",
    "Keyspace": "leaderpool.backend.keys",
    "LeaderInfo": "leaderpool.events",
    "LeaderState": "leaderpool.state",
    "LeaderpoolError": "leaderpool.errors",
    "LeaseLost": "leaderpool.errors",
    "MemberIdInUse": "leaderpool.errors",
    "MemberConfig": "leaderpool.config",
    "MemberInfo": "leaderpool.members",
    "NotLeader": "leaderpool.errors",
    "Ranker": "leaderpool.members",
    "RedisAuthFailed": "leaderpool.errors",
    "RedisUnavailable": "leaderpool.errors",
    "RevokeReason": "leaderpool.events",
    "Role": "leaderpool.events",
    "Schedule": "leaderpool.schedules.schedule",
    "ScheduledRun": "leaderpool.schedules.periodic",
    "ScriptError": "leaderpool.errors",
    "StaleTerm": "leaderpool.errors",
    "StateTooLarge": "leaderpool.errors",
    "afenced_set": "leaderpool.fencing",
    "by_priority_then_age": "leaderpool.members",
    "fenced_set": "leaderpool.fencing",
    "quiet_gc": "leaderpool.util.gc_tuning",
    "run_schedule": "leaderpool.schedules.periodic",
    "AsyncLock": "leaderpool.locks.async_lock",
    "Lock": "leaderpool.locks.blocking_lock",
    "LockNotAcquired": "leaderpool.errors",
    "LockUpgradeRefused": "leaderpool.errors",
    "AsyncSemaphore": "leaderpool.locks.async_semaphore",
    "Semaphore": "leaderpool.locks.semaphore",
    "ReadWriteLock": "leaderpool.locks.rwlock",
    "AsyncReadWriteLock": "leaderpool.locks.rwlock",
    "NameOwner": "leaderpool.names.registry",
    "AsyncSingletons": "leaderpool.singletons.faces",
    "Singletons": "leaderpool.singletons.faces",
    "SingletonInfo": "leaderpool.singletons.singleton_store",
    "atrans": "leaderpool.locks.async_lock",
    "trans": "leaderpool.locks.blocking_lock",
}

__all__ = [
    "AsyncElection",
    "AsyncLock",
    "AsyncPoolClient",
    "AsyncReadWriteLock",
    "AsyncSemaphore",
    "AsyncSingletons",
    "BacklogFull",
    "BadPoolData",
    "CallTimeout",
    "CatchUp",
    "ConfigError",
    "Election",
    "FenceResult",
    "JobContext",
    "JobFailed",
    "JobsConfig",
    "Keyspace",
    "LeaderInfo",
    "LeaderState",
    "LeaderpoolError",
    "LeaseLost",
    "Lock",
    "LockNotAcquired",
    "LockUpgradeRefused",
    "MemberConfig",
    "MemberIdInUse",
    "MemberInfo",
    "MulticallResult",
    "NameOwner",
    "NoTaker",
    "NotLeader",
    "PayloadError",
    "PoolClient",
    "Ranker",
    "ReadWriteLock",
    "RedisAuthFailed",
    "RedisUnavailable",
    "RevokeReason",
    "Role",
    "Schedule",
    "ScheduledRun",
    "ScriptError",
    "Semaphore",
    "SingletonInfo",
    "Singletons",
    "StaleTerm",
    "StateTooLarge",
    "__version__",
    "afenced_set",
    "atrans",
    "by_priority_then_age",
    "fenced_set",
    "quiet_gc",
    "run_schedule",
    "trans",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'leaderpool' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute read
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
