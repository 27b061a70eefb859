"""The worker's settings, from its flags and their ``LEADERPOOL_*`` environment variables.

Every value is validated here, before anything starts; a bad one raises
:class:`~leaderpool.console.args.UsageError` naming the flag or the variable it came from.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from leaderpool.backend.clients import DEFAULT_URL
from leaderpool.backend.keys import DEFAULT_PREFIX
from leaderpool.backend.urls import CLUSTER_NO_NAMES, CLUSTER_NO_WAIT, is_cluster
from leaderpool.config import MemberConfig, parse_host_port
from leaderpool.console import credentials
from leaderpool.console.args import (
    OneLineParser,
    Options,
    UsageError,
    VersionAction,
    choice,
    count,
    integer,
    key_values,
    names,
    positive_integer,
    seconds,
    tcp_port,
)
from leaderpool.errors import ConfigError
from leaderpool.jobs.jobs_config import DEFAULT_MAX_DEAD_LETTERS, DEFAULT_MAX_DELIVERIES, JobsConfig
from leaderpool.jobs.wire import Handler
from leaderpool.schedules.schedule import Schedule
from leaderpool.util.naming import validate_name
from leaderpool.worker import singleton_args, work_args
from leaderpool.worker.tasks import DEFAULT_TASK, IDLE_TASK, Task, is_async, load_task

PROG = "leaderpool-worker"
LOG_LEVELS = ("debug", "info", "warning", "error")


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
    http_host: str = "127.0.0.1"
    http_port: int | None = None
    """``/healthz``, ``/leader`` and ``/metrics`` on this port (0: any free one); None: off."""
    schedule: Schedule | None = None
    """``--every``/``--cron``: the task runs once per slot (:mod:`leaderpool.worker.scheduled_task`)."""
    schedule_grace_s: float = 0.0
    exec_argv: tuple[str, ...] = ()
    """``--exec -- COMMAND [ARGS...]``: the command run while leading, instead of the task."""
    pass_env: tuple[str, ...] = ()
    """``--pass-env``: the credential variables the command inherits after all."""
    handler: Handler | None = None
    """Runs jobs (on the leader), targeted calls and multicalls (on every member); see leaderpool.jobs."""
    handler_spec: str | None = None
    jobs: JobsConfig = field(default_factory=JobsConfig)
    names: tuple[str, ...] = ()
    """``--name``: unique names held for the worker's life (a standby while another holds one)."""
    singletons: tuple[str, ...] = ()
    """``--singletons``: the task (or command) runs once per singleton of these this member owns."""
    singletons_count: int = 0
    """``--singletons-count``: the singletons ``shard-0`` .. ``shard-{N-1}``, as ``singletons``."""
    singletons_weight: float = 1.0
    """``--singletons-weight``: this member's share of the singletons against the others'."""
    singletons_max_moves: int = 1
    """``--singletons-max-moves``: running singletons the placer hands over at once while we lead."""

    @property
    def runs_singletons(self) -> bool:
        return bool(self.singletons or self.singletons_count)


def build_parser() -> OneLineParser:
    p = OneLineParser(
        prog=PROG,
        description="Run one member of one leaderpool pool: elect, lead (run the task), hand over.",
        epilog="Every flag also reads its LEADERPOOL_* environment variable; the flag wins.",
    )
    p.add_argument(
        "--redis",
        metavar="URL",
        help="redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL "
        f"[LEADERPOOL_REDIS_URL] ({DEFAULT_URL})",
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
    p.add_argument(
        "--task",
        metavar="MODULE:FUNCTION",
        help=f"the leader's work ({DEFAULT_TASK}, a demo; with --handler: none) [LEADERPOOL_TASK]",
    )
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
    p.add_argument("--version", action=VersionAction)
    http = p.add_argument_group("health and metrics")
    http.add_argument(
        "--http-port", metavar="PORT",
        help="serve /healthz, /leader and /metrics on this port (off) [LEADERPOOL_HTTP_PORT]",
    )  # fmt: skip
    http.add_argument(
        "--http-host", metavar="ADDRESS",
        help="address the HTTP endpoints bind (127.0.0.1; 0.0.0.0 for probes from outside) [LEADERPOOL_HTTP_HOST]",
    )  # fmt: skip
    p.add_argument(
        "--wait-replicas", metavar="N",
        help="act on a new lead only once N replicas hold it (Redis WAIT) (0) [LEADERPOOL_WAIT_REPLICAS]",
    )  # fmt: skip
    work_args.add_arguments(p)
    singleton_args.add_arguments(p)
    add_fast_failover_arguments(p)
    work = p.add_argument_group("work for the pool (jobs, calls, multicalls)")
    work.add_argument(
        "--handler", metavar="MODULE:FUNCTION",
        help="handler(payload, ctx) -> reply: runs jobs while leading, and targeted calls and multicalls "
        "on every member (none) [LEADERPOOL_HANDLER]",
    )  # fmt: skip
    work.add_argument(
        "--max-deliveries", metavar="N",
        help=f"a job failing this often is dead-lettered ({DEFAULT_MAX_DELIVERIES}) [LEADERPOOL_MAX_DELIVERIES]",
    )  # fmt: skip
    work.add_argument(
        "--max-dead-letters", metavar="N",
        help=f"the dead letters kept, about; the oldest go ({DEFAULT_MAX_DEAD_LETTERS}) [LEADERPOOL_MAX_DEAD_LETTERS]",
    )  # fmt: skip
    names_group = p.add_argument_group("unique names")
    names_group.add_argument(
        "--name", metavar="NAME", action="append", dest="names",
        help="hold this unique name (across every pool) for the worker's life; while another member "
        "holds it, stand by and take it when it is free (repeatable) [LEADERPOOL_NAMES=a,b]",
    )  # fmt: skip
    credentials.add_arguments(p.add_argument_group("credentials"))
    return p


# ---- fast failover (leaderpool.fast_failover.failover) ----


def add_fast_failover_arguments(p: OneLineParser) -> None:
    g = p.add_argument_group("fast failover", "replace a leader whose process died in milliseconds, not a lease")
    g.add_argument(
        "--no-fast-failover", action="store_true", default=None,
        help="wait for the lease after every crash; no liveness endpoint [LEADERPOOL_FAST_FAILOVER=0]",
    )  # fmt: skip
    g.add_argument(
        "--liveness-address", metavar="HOST:PORT",
        help="where the liveness endpoint listens (the address used to reach Redis, any free port) "
        "[LEADERPOOL_LIVENESS_ADDRESS]",
    )  # fmt: skip
    g.add_argument(
        "--liveness-advertise", metavar="HOST:PORT",
        help="the address other members connect to, behind NAT or a published port [LEADERPOOL_LIVENESS_ADVERTISE]",
    )  # fmt: skip


def _host_port(name: str, *, port_required: bool = False) -> Any:
    def convert(raw: object) -> str:
        try:
            parse_host_port(name, str(raw), port_required=port_required)
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix(f"{name} ")) from None
        return str(raw).strip()

    return convert


def fast_failover_fields(o: Options) -> dict[str, Any]:
    """MemberConfig fields from the fast-failover flags and variables (on unless turned off)."""
    enabled = not getattr(o.ns, "no_fast_failover", False)
    if enabled and "LEADERPOOL_FAST_FAILOVER" in o.env:
        enabled = o.get("fast_failover_env", "", "LEADERPOOL_FAST_FAILOVER", _switch, default=True)
    return {
        "fast_failover": enabled,
        "liveness_address": o.get(
            "liveness_address", "--liveness-address", "LEADERPOOL_LIVENESS_ADDRESS", _host_port("address"), default=None
        ),
        "liveness_advertise": o.get(
            "liveness_advertise", "--liveness-advertise", "LEADERPOOL_LIVENESS_ADVERTISE",
            _host_port("address", port_required=True), default=None,
        ),
    }  # fmt: skip


def _switch(raw: object) -> bool:
    value = str(raw).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be one of 1/true/yes/on or 0/false/no/off, got {raw!r}")


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


def parse_settings(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> WorkerSettings:
    """Flags and environment to settings; raises :class:`UsageError` naming the bad argument."""
    own, command = work_args.split_command(sys.argv[1:] if argv is None else argv)  # --exec -- COMMAND
    ns = build_parser().parse_args(own)
    o = Options(ns, environ)
    redis_url = credentials.redis_url(o, DEFAULT_URL)
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
    handler_given = bool(o.get("handler", "--handler", "LEADERPOOL_HANDLER", str, default="").strip())
    default_task = IDLE_TASK if handler_given else DEFAULT_TASK  # a handler's worker has no demo task
    task_spec = o.get("task", "--task", "LEADERPOOL_TASK", str, default=default_task).strip()
    task = _as(o, "task", "--task", "LEADERPOOL_TASK", load_task, task_spec)
    work = work_args.parse_leader_work(
        o, command, task_spec=task_spec, task_given=o.source("task", "--task", "LEADERPOOL_TASK") is not None,
        ttl_s=ttl, task_is_async=is_async(task),
    )  # fmt: skip
    singles, singles_count = singleton_args.parse_singletons(o, scheduled=work.schedule is not None)
    fields.update(fast_failover_fields(o))
    try:
        config = MemberConfig(
            pool=pool,
            priority=o.get("priority", "--priority", "LEADERPOOL_PRIORITY", integer, default=0),
            wait_replicas=o.get("wait_replicas", "--wait-replicas", "LEADERPOOL_WAIT_REPLICAS", count, default=0),
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
    handler_spec = o.get("handler", "--handler", "LEADERPOOL_HANDLER", str, default="").strip() or None
    handler = (
        None if handler_spec is None else _as(o, "handler", "--handler", "LEADERPOOL_HANDLER", load_task, handler_spec)
    )
    max_deliveries = o.get(
        "max_deliveries", "--max-deliveries", "LEADERPOOL_MAX_DELIVERIES", positive_integer,
        default=DEFAULT_MAX_DELIVERIES,
    )  # fmt: skip
    max_dead_letters = o.get(
        "max_dead_letters", "--max-dead-letters", "LEADERPOOL_MAX_DEAD_LETTERS", positive_integer,
        default=DEFAULT_MAX_DEAD_LETTERS,
    )  # fmt: skip
    held_names: list[str] = o.get("names", "--name", "LEADERPOOL_NAMES", names, default=[])
    held_names = [_as(o, "names", "--name", "LEADERPOOL_NAMES", _name("name"), n) for n in held_names]
    if is_cluster(redis_url) and held_names:
        raise UsageError(_where(o, "names", "--name", "LEADERPOOL_NAMES"), CLUSTER_NO_NAMES)
    if is_cluster(redis_url) and config.wait_replicas:
        raise UsageError(_where(o, "wait_replicas", "--wait-replicas", "LEADERPOOL_WAIT_REPLICAS"), CLUSTER_NO_WAIT)
    return WorkerSettings(
        handler=handler,
        handler_spec=handler_spec,
        jobs=JobsConfig(max_deliveries=max_deliveries, max_dead_letters=max_dead_letters),
        names=tuple(dict.fromkeys(held_names)),
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
        http_host=o.get("http_host", "--http-host", "LEADERPOOL_HTTP_HOST", _host, default="127.0.0.1"),
        http_port=o.get("http_port", "--http-port", "LEADERPOOL_HTTP_PORT", tcp_port, default=None),
        schedule=work.schedule,
        schedule_grace_s=work.schedule_grace_s,
        exec_argv=work.exec_argv,
        pass_env=work.pass_env,
        singletons=singles,
        singletons_count=singles_count,
        singletons_weight=singleton_args.parse_weight(o, bool(singles or singles_count)),
        singletons_max_moves=singleton_args.parse_max_moves(o, bool(singles or singles_count)),
    )


def _host(raw: object) -> str:
    value = str(raw).strip().strip("[]")
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"must be an address to bind, such as 127.0.0.1 or 0.0.0.0, got {raw!r}")
    return value


def _where(o: Options, dest: str, flag: str, env: str) -> str:
    found = o.source(dest, flag, env)
    return found[0] if found else flag


def _as(o: Options, dest: str, flag: str, env: str, convert: Any, value: Any) -> Any:
    try:
        return convert(value)
    except ValueError as exc:
        raise UsageError(_where(o, dest, flag, env), str(exc)) from None
