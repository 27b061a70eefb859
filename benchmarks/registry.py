"""The contenders: how to start one member of each, which key holds its lease, and how a
non-leader asks who leads."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.contenders import k8s_lease, python_redis_lock, redispy_lock, tooz_leaderpool, tooz_redis
from leaderpool.backend.keys import Keyspace


@dataclass(frozen=True)
class Contender:
    name: str
    title: str
    module: str
    leader_key: Callable[[str], str]
    """The Redis key holding the lease (its PTTL is when the lease expires)."""
    lookup: str
    """What a non-leader calls to learn who leads, as the report says it."""
    whole_seconds: bool = False
    """The library truncates the ttl to whole seconds."""
    extra_args: tuple[str, ...] = ()

    def argv(self, url: str, pool: str, member: str, ttl: float) -> list[str]:
        return [sys.executable, "-m", self.module, "--redis", url, "--pool", pool, "--member-id", member,
                "--ttl", repr(ttl), "--json-events", *self.extra_args]  # fmt: skip


def _leaderpool_key(pool: str) -> str:
    return Keyspace(pool).leader


LEADERPOOL = Contender(
    name="leaderpool",
    title="leaderpool (worker)",
    module="leaderpool.worker",
    leader_key=_leaderpool_key,
    lookup="election.leader (local cache)",
    extra_args=("--log-format", "json"),
)
"""The worker processes, as users run them: ``python -m leaderpool.worker --json-events``."""


ALTERNATIVES = (
    Contender("tooz", "tooz 9 (Redis driver)", "benchmarks.contenders.tooz_redis", tooz_redis.leader_key,
              "GET of the leader lock (the driver has no get_leader; the value is an opaque token)",
              whole_seconds=True),
    Contender("tooz-leaderpool", "tooz 9 API on leaderpool (leaderpool:// driver)",
              "benchmarks.contenders.tooz_leaderpool", tooz_leaderpool.leader_key,
              "get_leader() (a GET of the pool's leader key)"),
    Contender("python-redis-lock", "python-redis-lock 4 (auto_renewal)", "benchmarks.contenders.python_redis_lock",
              python_redis_lock.leader_key, "Lock.get_owner_id() (a GET)", whole_seconds=True),
    Contender("redis-py-lock", "redis-py Lock (reacquire every ttl/3)", "benchmarks.contenders.redispy_lock",
              redispy_lock.leader_key, "GET of the lock key (the value is an opaque token)"),
    Contender("k8s-lease", "client-go-style lease (raw redis-py)", "benchmarks.contenders.k8s_lease",
              k8s_lease.leader_key, "GET of the lease key"),
)  # fmt: skip

NAMES = ("leaderpool", *(c.name for c in ALTERNATIVES))


def contenders(names: list[str]) -> list[Contender]:
    by_name = {c.name: c for c in (LEADERPOOL, *ALTERNATIVES)}
    return [by_name[n] for n in names]
