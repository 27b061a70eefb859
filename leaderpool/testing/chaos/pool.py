"""The pool under test: one throw-away redis-server, and worker processes that each reach it
through a :class:`~leaderpool.testing.proxy.Proxy` of their own (and are reached by their peers'
liveness connections through a second one), so a fault can cut, slow or reset one member's
network without touching the others. It follows the workers' JSON events to know who leads."""

from __future__ import annotations

import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import redis

import leaderpool
from leaderpool.testing.chaos import skewed_clock, task
from leaderpool.testing.chaos.leader_ops import COUNTER, REGISTER, counter_key, register_key
from leaderpool.testing.chaos.timeline import Elected
from leaderpool.testing.processes import Child, ChildGroup, JsonEvent, clean_env
from leaderpool.testing.proxy import Proxy
from leaderpool.testing.redis_server import RedisServer, free_port

TASK = "leaderpool.testing.chaos.task:chaos_task"
PERSISTENCE = ("--appendonly", "yes", "--appendfsync", "always")
"""Redis keeps an append-only file, synced before each reply: a restart that keeps its directory
loses nothing (``redis_restart_aof``); one that removes it loses everything (``redis_restart``)."""
PACKAGE_ROOT = Path(leaderpool.__file__).resolve().parent.parent


@dataclass
class Member:
    name: str
    redis_proxy: Proxy
    liveness_proxy: Proxy
    liveness_port: int
    log_path: Path
    stderr_path: Path
    clock_path: Path
    """Its clock's offsets (:mod:`.skewed_clock`), read on SIGUSR1."""
    proc: Child | None = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.alive()


@dataclass
class _Leader:
    member: str | None = None
    term: int = 0
    elected: list[Elected] = field(default_factory=list)


class ChaosPool:
    """``size`` members of pool ``pool`` (m1..mN) with a ``ttl_s`` lease, files under ``workdir``;
    each runs ``task`` with ``worker_args`` added (the singletons' run: ``--singletons-count N``)."""

    def __init__(
        self,
        workdir: Path,
        *,
        size: int = 5,
        ttl_s: float = 1.0,
        pool: str = "chaos",
        redis_binary: str | None = None,
        task: str = TASK,
        worker_args: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.task, self.worker_args = task, worker_args
        self.size = size
        self.ttl_s = ttl_s
        self.pool = pool
        self.redis = RedisServer(redis_binary, extra_args=PERSISTENCE)
        self.members: dict[str, Member] = {}
        self.group = ChildGroup()
        self._leader = _Leader()
        self._cond = threading.Condition()

    # ---- life ----

    def start(self) -> ChaosPool:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.redis.start()
        for i in range(1, self.size + 1):
            name = f"m{i}"
            port = free_port()
            self.members[name] = Member(
                name,
                Proxy(self.redis.port).start(),
                Proxy(port).start(),
                port,
                self.workdir / f"{name}.acts",
                self.workdir / f"{name}.stderr",
                self.workdir / f"{name}.clock",
            )
        for name in self.members:
            self.start_worker(name)
        return self

    def finals(self) -> dict[str, int | None]:
        """Stop every worker (SIGKILL) and cut every proxy, then read what the leader's register
        and counter hold: nothing that was in flight can land after this read."""
        self.group.close(grace=0)
        for member in self.members.values():
            member.redis_proxy.close()
            member.liveness_proxy.close()
        client = redis.Redis(port=self.redis.port, socket_timeout=5)
        try:
            raw = {k: client.get(f(self.pool)) for k, f in ((REGISTER, register_key), (COUNTER, counter_key))}
        finally:
            client.close()
        return {k: None if v is None else int(v) for k, v in raw.items()}

    def close(self) -> None:
        self.group.close(grace=0)
        for member in self.members.values():
            member.redis_proxy.close()
            member.liveness_proxy.close()
        self.redis.cleanup()

    def __enter__(self) -> ChaosPool:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def proc(self, name: str) -> Child:
        """Member ``name``'s current worker process (every member has one once started)."""
        proc = self.members[name].proc
        assert proc is not None, f"{name} was never started"
        return proc

    def start_worker(self, name: str) -> Child:
        """Start (or start again) member ``name``'s worker process, same id, same ports."""
        m = self.members[name]
        m.proc = self._spawn(name, m.liveness_port, m.liveness_proxy.port, m.stderr_path)
        return m.proc

    def start_twin(self, name: str) -> Child:
        """A second process under member ``name``'s id while its own may still run (a copied unit, a
        shared env file, a supervisor restarting a frozen process): its acts go to the member's
        log under its own pid, so the checker sees them; it is not the member's :attr:`Member.proc`.
        Its liveness endpoint is a port of its own, reached directly."""
        port = free_port()
        return self._spawn(name, port, port, self.workdir / f"{name}.twin-{time.time():.3f}.stderr")

    def adopt(self, name: str, proc: Child) -> None:
        """``proc`` (a twin that outlived the member's process) is member ``name``'s process now."""
        self.members[name].proc = proc

    def _spawn(self, name: str, liveness_port: int, advertised_port: int, stderr: Path) -> Child:
        m = self.members[name]
        url = f"redis://127.0.0.1:{m.redis_proxy.port}/0"
        argv = [
            sys.executable, "-m", "leaderpool.testing.chaos.skewed_clock",  # the worker, on a clock that can jump
            "--redis", url, "--pool", self.pool, "--member-id", name,
            "--ttl", f"{self.ttl_s:g}", "--json-events", "--task", self.task, *self.worker_args,
            "--liveness-address", f"127.0.0.1:{liveness_port}",
            "--liveness-advertise", f"127.0.0.1:{advertised_port}",
        ]  # fmt: skip
        env = clean_env(
            PYTHONPATH=str(PACKAGE_ROOT),
            **{task.LOG_VAR: str(m.log_path), task.URL_VAR: url, skewed_clock.CLOCK_VAR: str(m.clock_path)},
        )
        pid: list[int] = []  # this process's own pid: its late events must not be credited to its successor

        def seen(child: str, event: JsonEvent) -> None:
            self._seen(child, pid[0] if pid else 0, event)

        proc = self.group.start(argv, name=name, env=env, cwd=PACKAGE_ROOT, stderr=stderr, on_event=seen)
        pid.append(proc.pid)
        return proc

    # ---- who leads, from the workers' events ----

    def _seen(self, name: str, pid: int, event: JsonEvent) -> None:
        kind, term = event.get("event"), event.get("term")
        with self._cond:
            if kind == "elected" and isinstance(term, int):
                self._leader.elected.append(Elected(float(event.get("t", time.time())), name, pid, term))
                self._leader.member, self._leader.term = name, term  # the latest, even if lower
            elif kind == "revoked" and self._leader.member == name and term == self._leader.term:
                self._leader.member = None
            self._cond.notify_all()

    def leader(self) -> tuple[str | None, int]:
        """The member that last announced a lead not yet revoked (or None), and its term."""
        with self._cond:
            member = self._leader.member
            if member is not None and not self.members[member].running():
                member = None
            return member, self._leader.term

    @property
    def elected(self) -> list[Elected]:
        with self._cond:
            return list(self._leader.elected)

    def wait_until_informed(self, name: str, timeout: float) -> bool:
        """Wait until member ``name``'s process has read who leads (its first ``leader`` event
        naming one): from then on it remembers the pool's term, as every member at rest does."""
        proc = self.members[name].proc
        if proc is None:
            return False
        try:
            proc.wait_for(lambda e: e.get("event") == "leader" and e.get("term") is not None, timeout)
        except TimeoutError:
            return False
        return True

    def pick(self, rng: random.Random, leader_share: float) -> str:
        """The leader with probability ``leader_share`` (when there is one), else another running member."""
        leader, _ = self.leader()
        if leader is not None and rng.random() < leader_share:
            return leader
        others = sorted(n for n, m in self.members.items() if m.running() and n != leader)
        return rng.choice(others) if others else (leader or rng.choice(sorted(self.members)))
