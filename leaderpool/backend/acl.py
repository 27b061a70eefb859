"""The minimal Redis ACL rules a leaderpool user needs: keys and channels under its prefix, and
the commands leaderpool sends, those its Lua scripts call included (Redis checks a script's
``redis.call`` against the caller's ACL too).

``leaderpool-cli acl [--prefix P] [--user NAME]`` prints the ``ACL SETUSER`` line built here, and
the tests create their restricted users from it, so the documented rules are the tested ones.
"""

from __future__ import annotations

from leaderpool.util.constants import DEFAULT_PREFIX

CONNECTION_COMMANDS = ("ping", "select")
"""Connecting (``AUTH`` and ``HELLO`` are always allowed): ``SELECT`` for a database other than 0.
redis-py's ``CLIENT SETINFO`` on connect may be refused: it ignores the refusal (and Redis 6.2
cannot grant that subcommand alone)."""

SCRIPT_COMMANDS = ("evalsha", "eval", "script|load")
"""The scripts: EVALSHA, SCRIPT LOAD after a restart (NOSCRIPT); EVAL for the CLI and doctor."""

SCRIPTED_COMMANDS = (
    "time", "type", "get", "set", "del", "exists", "incr", "pexpire", "pttl",
    "hget", "hmget", "hgetall", "hkeys", "hset", "hdel", "hexists",
    "zadd", "zrem", "zscore", "zcount", "zrange", "zrangebyscore",
    "xadd", "xrange", "xrevrange", "xlen", "xdel", "publish", "pubsub|numsub",
)  # fmt: skip
"""Called inside the scripts and directly (``status``, ``history``, ``resign``, the demo).
``PUBSUB NUMSUB`` proves a crashed leader's connection gone inside the bury script (fast
failover); without it, deaths are confirmed with ``CLIENT LIST`` beside the script instead."""
WORK_COMMANDS = (
    "xgroup|create", "xgroup|delconsumer", "xinfo|consumers", "xreadgroup", "xack", "xclaim", "xpending", "rpush",
    "blpop",
)  # fmt: skip
"""Work for the leader (:mod:`leaderpool.jobs`): the consumer group, the leader's reads and
acknowledgements, member inboxes and replies."""
TOOL_COMMANDS = ("scan", "info", "wait", "subscribe", "unsubscribe", "config|get", "client|id", "client|list")
"""Finding pools (SCAN), the doctor (INFO, CONFIG GET), ``wait_replicas`` (WAIT), the watcher
(SUBSCRIBE). ``CONFIG GET`` lets members check ``notify-keyspace-events``; without ``CONFIG SET``
the operator sets it (members warn once and rely on lease timers when it is off). ``CLIENT ID``
and ``CLIENT LIST`` confirm a crashed leader's death (fast failover); without them a death is
confirmed by the endpoint fallback (see docs/design/fast-failover.md)."""
COMMANDS = (*CONNECTION_COMMANDS, *SCRIPT_COMMANDS, *SCRIPTED_COMMANDS, *WORK_COMMANDS, *TOOL_COMMANDS)
CLUSTER_COMMANDS = ("cluster|slots", "command")
"""On a Redis Cluster (``acl --cluster``): redis-py's cluster client and the watcher read the slot
map (CLUSTER SLOTS), and redis-py reads the command table (COMMAND) to find each command's keys."""

_GLOB_SPECIAL = "*?[]\\"


def _glob_literal(text: str) -> str:
    """``text`` matched literally by a Redis glob pattern."""
    return "".join(f"\\{c}" if c in _GLOB_SPECIAL else c for c in text)


def acl_rules(prefix: str = DEFAULT_PREFIX, *, cluster: bool = False) -> list[str]:
    """The rules, after ``ACL SETUSER NAME on >PASSWORD``: every key under ``prefix``, the pool
    events channels and the leader keys' keyspace channels (any database), and :data:`COMMANDS`
    (and :data:`CLUSTER_COMMANDS` for a user of a Redis Cluster, set on every node)."""
    p = _glob_literal(prefix)
    return [
        "resetkeys",
        f"~{p}:*",
        "resetchannels",
        f"&{p}:*",
        f"&__keyspace@*__:{p}:*",
        "-@all",
        *(f"+{c}" for c in COMMANDS),
        *(f"+{c}" for c in (CLUSTER_COMMANDS if cluster else ())),
    ]


def setuser_line(
    user: str = "leaderpool", prefix: str = DEFAULT_PREFIX, password: str = "PASSWORD", *, cluster: bool = False
) -> str:
    """The ``ACL SETUSER`` line creating ``user`` with :func:`acl_rules`, for ``redis-cli``."""
    return " ".join(["ACL", "SETUSER", user, "reset", "on", f">{password}", *acl_rules(prefix, cluster=cluster)])
