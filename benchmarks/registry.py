"""The contenders: how to start one member of each, which key holds its lease, and how a
non-leader asks who leads."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.contenders import k8s_lease, leaderpool_standin, python_redis_lock, redispy_lock, tooz_redis

WORKER_MODULE = "leaderpool.worker"
STANDIN_MODULE = "benchmarks.contenders.leaderpool_standin"


def worker_available() -> bool:
    """True once ``python -m leaderpool.worker`` exists (issue 3)."""
    return importlib.util.find_spec(WORKER_MODULE) is not None


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


def leaderpool(impl: str = "auto") -> Contender:
    """The leaderpool contender: the worker as users run it, or the stand-in until it exists."""
    use_worker = impl == "worker" or (impl == "auto" and worker_available())
    return Contender(
        name="leaderpool",
        title="leaderpool (worker)" if use_worker else "leaderpool (stand-in on AsyncElection)",
        module=WORKER_MODULE if use_worker else STANDIN_MODULE,
        leader_key=leaderpool_standin.leader_key,
        lookup="election.leader (local cache)",
        extra_args=("--log-format", "json"),
    )


ALTERNATIVES = (
    Contender("tooz", "tooz 9 (Redis driver)", "benchmarks.contenders.tooz_redis", tooz_redis.leader_key,
              "GET of the leader lock (the driver has no get_leader; the value is an opaque token)",
              whole_seconds=True),
    Contender("python-redis-lock", "python-redis-lock 4 (auto_renewal)", "benchmarks.contenders.python_redis_lock",
              python_redis_lock.leader_key, "Lock.get_owner_id() (a GET)", whole_seconds=True),
    Contender("redis-py-lock", "redis-py Lock (reacquire every ttl/3)", "benchmarks.contenders.redispy_lock",
              redispy_lock.leader_key, "GET of the lock key (the value is an opaque token)"),
    Contender("k8s-lease", "client-go-style lease (raw redis-py)", "benchmarks.contenders.k8s_lease",
              k8s_lease.leader_key, "GET of the lease key"),
)  # fmt: skip

NAMES = ("leaderpool", *(c.name for c in ALTERNATIVES))


def contenders(names: list[str], impl: str = "auto") -> list[Contender]:
    by_name = {c.name: c for c in ALTERNATIVES}
    return [leaderpool(impl) if n == "leaderpool" else by_name[n] for n in names]
