"""The minimal Redis ACL rules a leaderpool user needs: keys and channels under its prefix, and
the commands leaderpool sends, those its Lua scripts call included (Redis checks a script's
``redis.call`` against the caller's ACL too).

``leaderpool-cli acl [--prefix P] [--user NAME]`` prints the ``ACL SETUSER`` line built here, and
the tests create their restricted users from it and run every command as them (Redis 6.2 and 7),
so the documented rules are the tested ones.

What the rules leave out, on purpose: ``CONFIG`` (``CONFIG GET requirepass`` and ``masterauth``
would hand leaderpool's user the administrator's secrets: members and ``doctor`` check keyspace
events by hearing them instead), ``CLIENT LIST`` (it lists every user's connections: a crashed
leader's death is proved by its connection's own channel, :data:`SCRIPTED_COMMANDS`'s ``PUBSUB
NUMSUB``, else by a refused reconnect to its endpoint), and every key outside the prefix (locks
included). A prefix holds no ``:`` nor glob character (:mod:`leaderpool.util.naming`), so one
tenant's rules never cover another's keys.
"""

from __future__ import annotations

from leaderpool.util.constants import DEFAULT_PREFIX
from leaderpool.util.naming import validate_name

CONNECTION_COMMANDS = ("ping", "select")
"""Connecting (``AUTH`` and ``HELLO`` are always allowed): ``SELECT`` for a database other than 0.
redis-py's ``CLIENT SETINFO`` on connect may be refused: it ignores the refusal (and Redis 6.2
cannot grant that subcommand alone)."""

SCRIPT_COMMANDS = ("evalsha", "eval", "script|load")
"""The scripts: EVALSHA, SCRIPT LOAD after a restart (NOSCRIPT); EVAL for the CLI and doctor."""

SCRIPTED_COMMANDS = (
    "time", "type", "get", "mget", "set", "del", "exists", "incr", "pexpire", "pexpireat", "pttl", "ttl", "expire",
    "hget", "hmget", "hgetall", "hkeys", "hset", "hdel", "hexists",
    "zadd", "zrem", "zscore", "zmscore", "zcount", "zrange", "zrangebyscore", "sadd", "srem", "sismember", "smembers",
    "xadd", "xrange", "xrevrange", "xlen", "xdel", "publish", "pubsub|numsub",
)  # fmt: skip
"""Called inside the scripts and directly (``status``, ``history``, ``resign``, the demo, the
doctor's keyspace-events probe). ``PEXPIREAT`` and ``ZMSCORE``: the heartbeat (a renewal to an
exact deadline; the ranking's head). ``TTL`` and ``EXPIRE``: python-redis-lock's renewal script (a
lock's ttl is in seconds). ``PUBSUB NUMSUB`` proves a crashed leader's connection gone inside the
bury script (fast failover), and a crashed member's inside the singletons' scripts. The set
commands: a pool's singleton names (:mod:`leaderpool.singletons`)."""
WORK_COMMANDS = (
    "xgroup|create", "xgroup|delconsumer", "xinfo|consumers", "xreadgroup", "xack", "xclaim", "xpending", "rpush",
    "lpush", "blpop",
)  # fmt: skip
"""Work for the leader (:mod:`leaderpool.jobs`): the consumer group, the leader's reads and
acknowledgements, member inboxes and replies; a lock's release signal (LPUSH) and its waiters (BLPOP)."""
TOOL_COMMANDS = ("scan", "info", "wait", "subscribe", "unsubscribe", "client|id")
"""Finding pools (SCAN), the doctor (INFO), ``wait_replicas`` (WAIT), the watcher (SUBSCRIBE).
``CLIENT ID`` (a connection's own id) registers the leader's connection for fast failover."""
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
    p = _glob_literal(validate_name("prefix", prefix))
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


def acl_user(client: object) -> str | None:
    """The ACL user ``client`` logs in as, when it is not ``default``; None for the default user.

    leaderpool never sends CONFIG as such a user (the printed rules leave it out: a refusal would
    fill the ACL log at every start): keyspace events are the operator's to set, and the doctor
    checks them by hearing them. Accepts redis-py clients and the CLI's ``Blocking`` wrapper."""
    wrapped = getattr(client, "sync", None)  # the CLI's Blocking (a redis-py client's .sync is a method)
    if wrapped is not None and hasattr(wrapped, "connection_pool"):
        client = wrapped
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None) or {}
    user = kwargs.get("username")
    return None if user in (None, "", "default") else str(user)
