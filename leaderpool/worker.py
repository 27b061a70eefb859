"""``python -m leaderpool.worker`` (``leaderpool-worker``): one member of one pool per process.

It joins the pool, runs the leader task (:mod:`leaderpool.tasks`) while it leads, and prints one
JSON line per transition on stdout with ``--json-events``; logs go to stderr. SIGTERM/SIGINT hand
over kindly and exit 0; a crashed task makes the member step down and rejoin as the youngest.
Redis being unreachable never ends the process: the election core retries with capped backoff.

Only :func:`main` installs signal handlers; :class:`Worker` can run inside any event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import structlog

from leaderpool.aio import AsyncElection
from leaderpool.argparsing import (
    OneLineParser,
    Options,
    UsageError,
    choice,
    fail,
    integer,
    key_values,
    names,
    seconds,
)
from leaderpool.clients import DEFAULT_URL, describe, validate_redis_url
from leaderpool.config import MemberConfig
from leaderpool.election import LeaderInfo, RevokeReason, Role
from leaderpool.errors import ConfigError
from leaderpool.keys import DEFAULT_PREFIX, validate_name
from leaderpool.logs import configure_logging
from leaderpool.tasks import DEFAULT_TASK, Task, TaskRunner, checked_fenced_set, load_task

PROG = "leaderpool-worker"
LOG_LEVELS = ("debug", "info", "warning", "error")
ELECTION_CHECK_S = 0.5
"""How often the worker checks that the election loop is still running (it only ends on a bug)."""

log = structlog.get_logger("leaderpool.worker")


@dataclass(frozen=True)
class WorkerSettings:
    """Everything the worker was told, validated."""

    config: MemberConfig
    redis_url: str
    task: Task
    task_spec: str
    task_grace_s: float
    json_events: bool
    log_format: str
    log_level: str


# ---- arguments ----


def build_parser() -> OneLineParser:
    p = OneLineParser(
        prog=PROG,
        description="Run one member of one leaderpool pool: elect, lead (run the task), hand over.",
        epilog="Every flag also reads its LEADERPOOL_* environment variable; the flag wins.",
    )
    p.add_argument(
        "--redis", metavar="URL", help=f"redis://, rediss:// or unix:// URL [LEADERPOOL_REDIS_URL] ({DEFAULT_URL})"
    )
    p.add_argument("--pool", metavar="NAME", help="the pool to join (required) [LEADERPOOL_POOL]")
    p.add_argument("--member-id", metavar="ID", help="unique member id (host-pid-random) [LEADERPOOL_MEMBER_ID]")
    p.add_argument("--node", metavar="NAME", help="node name, for anti-affinity (hostname) [LEADERPOOL_NODE]")
    p.add_argument("--priority", metavar="INT", help="higher leads first (0) [LEADERPOOL_PRIORITY]")
    p.add_argument("--ttl", metavar="SECONDS", help="lease: a silent member is gone after it (5) [LEADERPOOL_TTL]")
    p.add_argument("--heartbeat", metavar="SECONDS", help="lease refresh interval (ttl/3) [LEADERPOOL_HEARTBEAT]")
    p.add_argument(
        "--takeover", action="store_true", default=None,
        help="a better-ranked member that joins takes the lead over [LEADERPOOL_TAKEOVER]",
    )  # fmt: skip
    p.add_argument(
        "--meta", metavar="KEY=VALUE", action="append",
        help="metadata shown in status (repeatable) [LEADERPOOL_META=k=v,k2=v2]",
    )  # fmt: skip
    p.add_argument(
        "--avoid-pool", metavar="NAME", action="append",
        help="rank down on nodes that lead this pool (repeatable) [LEADERPOOL_AVOID_POOLS=a,b]",
    )  # fmt: skip
    p.add_argument("--prefix", metavar="PREFIX", help="key prefix (leaderpool) [LEADERPOOL_PREFIX]")
    p.add_argument("--task", metavar="MODULE:FUNCTION", help=f"the leader's work ({DEFAULT_TASK}) [LEADERPOOL_TASK]")
    p.add_argument(
        "--task-grace", metavar="SECONDS",
        help="how long a stopping task may take before it is cancelled (ttl/2) [LEADERPOOL_TASK_GRACE]",
    )  # fmt: skip
    p.add_argument(
        "--json-events", action="store_true", default=None,
        help="print one JSON line per transition on stdout [LEADERPOOL_JSON_EVENTS]",
    )  # fmt: skip
    p.add_argument("--log-format", metavar="json|console", help="stderr log format (console) [LEADERPOOL_LOG_FORMAT]")
    p.add_argument("--log-level", metavar="LEVEL", help="debug, info, warning, error (info) [LEADERPOOL_LOG_LEVEL]")
    return p


def _name(kind: str) -> Any:
    def convert(raw: object) -> str:
        try:
            return validate_name(kind, str(raw).strip())
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix(f"{kind} ")) from None

    return convert


def _node(raw: object) -> str:
    value = str(raw).strip()
    if not value or len(value) > 255:
        raise ValueError(f"must be a non-empty name of at most 255 characters, got {raw!r}")
    return value


def _url(raw: object) -> str:
    try:
        return validate_redis_url(str(raw).strip())
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def parse_settings(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> WorkerSettings:
    """Flags and environment to settings; raises :class:`UsageError` naming the bad argument."""
    ns = build_parser().parse_args(argv)
    o = Options(ns, environ)
    redis_url = o.get("redis", "--redis", "LEADERPOOL_REDIS_URL", _url, default=DEFAULT_URL)
    if o.source("pool", "--pool", "LEADERPOOL_POOL") is None:
        raise UsageError("--pool", "is required (or set LEADERPOOL_POOL)")
    pool = o.get("pool", "--pool", "LEADERPOOL_POOL", _name("pool"), default="")
    fields: dict[str, Any] = {}
    member_id = o.get("member_id", "--member-id", "LEADERPOOL_MEMBER_ID", _name("member id"), default=None)
    if member_id is not None:
        fields["member_id"] = member_id
    node = o.get("node", "--node", "LEADERPOOL_NODE", _node, default=None)
    if node is not None:
        fields["node"] = node
    ttl = o.get("ttl", "--ttl", "LEADERPOOL_TTL", seconds, default=5.0)
    if ttl < 0.05:
        raise UsageError(_where(o, "ttl", "--ttl", "LEADERPOOL_TTL"), f"must be at least 0.05 seconds, got {ttl:g}")
    heartbeat = o.get("heartbeat", "--heartbeat", "LEADERPOOL_HEARTBEAT", seconds, default=None)
    if heartbeat is not None and heartbeat >= ttl:
        raise UsageError(
            _where(o, "heartbeat", "--heartbeat", "LEADERPOOL_HEARTBEAT"),
            f"must be shorter than the ttl ({ttl:g}s), got {heartbeat:g}",
        )
    grace = o.get("task_grace", "--task-grace", "LEADERPOOL_TASK_GRACE", seconds, default=ttl / 2)
    if grace >= ttl:
        raise UsageError(
            _where(o, "task_grace", "--task-grace", "LEADERPOOL_TASK_GRACE"),
            f"must be shorter than the ttl ({ttl:g}s), got {grace:g}",
        )
    avoid: list[str] = o.get("avoid_pool", "--avoid-pool", "LEADERPOOL_AVOID_POOLS", names, default=[])
    avoid = [_as(o, "avoid_pool", "--avoid-pool", "LEADERPOOL_AVOID_POOLS", _name("pool"), a) for a in avoid]
    task_spec = o.get("task", "--task", "LEADERPOOL_TASK", str, default=DEFAULT_TASK).strip()
    task = _as(o, "task", "--task", "LEADERPOOL_TASK", load_task, task_spec)
    try:
        config = MemberConfig(
            pool=pool,
            priority=o.get("priority", "--priority", "LEADERPOOL_PRIORITY", integer, default=0),
            ttl_s=ttl,
            heartbeat_s=heartbeat,
            takeover=o.flag("takeover", "--takeover", "LEADERPOOL_TAKEOVER"),
            meta=o.get("meta", "--meta", "LEADERPOOL_META", key_values, default={}),
            avoid_pools=tuple(avoid),
            prefix=o.get("prefix", "--prefix", "LEADERPOOL_PREFIX", _name("prefix"), default=DEFAULT_PREFIX),
            **fields,
        )
    except ConfigError as exc:  # a backstop: the checks above name the argument first
        raise UsageError(None, str(exc)) from None
    return WorkerSettings(
        config=config,
        redis_url=redis_url,
        task=task,
        task_spec=task_spec,
        task_grace_s=grace,
        json_events=o.flag("json_events", "--json-events", "LEADERPOOL_JSON_EVENTS"),
        log_format=o.get(
            "log_format", "--log-format", "LEADERPOOL_LOG_FORMAT", choice("json", "console"), default="console"
        ),
        log_level=o.get("log_level", "--log-level", "LEADERPOOL_LOG_LEVEL", choice(*LOG_LEVELS), default="info"),
    )


def _where(o: Options, dest: str, flag: str, env: str) -> str:
    found = o.source(dest, flag, env)
    return found[0] if found else flag


def _as(o: Options, dest: str, flag: str, env: str, convert: Any, value: Any) -> Any:
    try:
        return convert(value)
    except ValueError as exc:
        raise UsageError(_where(o, dest, flag, env), str(exc)) from None


# ---- JSON events ----


class EventWriter:
    """One JSON object per line, flushed, for each transition (``--json-events``)."""

    def __init__(self, pool: str, member: str, stream: TextIO | None = None) -> None:
        self.pool = pool
        self.member = member
        self.stream = stream or sys.stdout

    def write(self, event: str, **fields: Any) -> None:
        record = {"event": event, "pool": self.pool, **fields, "t": time.time()}
        self.stream.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.stream.flush()

    def elected(self, term: int) -> None:
        self.write("elected", member=self.member, term=term)

    def revoked(self, term: int | None, reason: RevokeReason) -> None:
        self.write("revoked", member=self.member, term=term, reason=reason.value)

    def leader(self, leader: LeaderInfo | None) -> None:
        self.write("leader", member=leader.member if leader else None, term=leader.term if leader else None)


# ---- the worker ----


class Worker:
    """Drives one :class:`AsyncElection` and the leader task; :meth:`run` until ``stop`` is set."""

    def __init__(self, settings: WorkerSettings, events: EventWriter | None = None) -> None:
        self.settings = settings
        self.config = settings.config
        self.events = events
        self.election = AsyncElection(
            self.config,
            settings.redis_url,
            on_elected=self._on_elected,
            on_revoked=self._on_revoked,
            on_leader_changed=self._on_leader_changed,
        )
        self.runner = TaskRunner(
            settings.task,
            pool=self.config.pool,
            member=self.config.member_id,
            fenced_set=checked_fenced_set(self.election),
            grace_s=settings.task_grace_s,
            on_crash=self._on_task_crash,
        )
        self._term: int | None = None
        self._log = log.bind(pool=self.config.pool, member=self.config.member_id)

    async def run(self, stop: asyncio.Event) -> int:
        """Take part until ``stop`` is set; 0 after a clean stop, 1 if the election itself failed."""
        self._log.info(
            "worker_started",
            redis=describe(self.settings.redis_url),
            node=self.config.node,
            priority=self.config.priority,
            ttl_s=self.config.ttl_s,
            heartbeat_s=self.config.heartbeat,
            takeover=self.config.takeover,
            task=self.settings.task_spec,
        )
        code = 0
        await self.election.start()
        try:
            while not stop.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), ELECTION_CHECK_S)
                if self.election.role is Role.STOPPED:  # the election loop ended on its own: a bug
                    self._log.error("election_stopped_unexpectedly")
                    code = 1
                    break
            else:
                self._log.info("worker_stopping")
        finally:
            try:
                await self.election.stop()  # revoked(shutdown) -> task stopped -> release + leave
            except Exception:
                self._log.exception("election_failed")
                code = 1
            await self.runner.stop()
            self._log.info("worker_stopped", exit_code=code)
        return code

    async def _on_elected(self, term: int) -> None:
        self._term = term
        if self.events:
            self.events.elected(term)
        self.runner.start(term)

    async def _on_revoked(self, reason: RevokeReason) -> None:
        term, self._term = self._term, None
        if self.events:
            self.events.revoked(term, reason)
        await self.runner.stop()

    def _on_leader_changed(self, leader: LeaderInfo | None) -> None:
        if self.events:
            self.events.leader(leader)

    def _on_task_crash(self, term: int, error: BaseException) -> None:
        if self.election.term != term:
            return  # that leadership is already over
        self._log.warning("stepping_down", reason=RevokeReason.TASK_FAILED.value, error=type(error).__name__)
        self.election.step_down(RevokeReason.TASK_FAILED, rejoin=True)


async def serve(settings: WorkerSettings) -> int:
    """Run a worker until SIGTERM or SIGINT; a second signal stops waiting for the hand-over."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main_task = asyncio.current_task()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        log.info("signal_received", signal=signal.Signals(signum).name)
        if signals == 1:
            stop.set()
        elif main_task is not None:
            main_task.cancel()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    events = EventWriter(settings.config.pool, settings.config.member_id) if settings.json_events else None
    try:
        return await Worker(settings, events).run(stop)
    except asyncio.CancelledError:
        log.warning("worker_forced_exit")
        return 1
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = parse_settings(argv)
    except UsageError as exc:
        fail(PROG, str(exc))
    configure_logging(settings.log_format, settings.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve(settings))
    return 1


if __name__ == "__main__":
    sys.exit(main())
