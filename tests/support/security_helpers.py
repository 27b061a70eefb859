"""Shared by the security tests: a redis-server whose CONFIG a restricted user cannot call (so
keyspace events are on from the start), ACL users made from the documented rules, and a pool of
workers checked through its fail-over and hand-over."""

from __future__ import annotations

import re
import signal
from urllib.parse import quote

import redis

from leaderpool.backend.acl import acl_rules
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.constants import DEFAULT_PREFIX
from tests.support.worker_procs import Workers, eventually

PASSWORD = "s3cr3t-Pa55word-7f1c"
"""Distinctive, so a grep for it in logs and outputs cannot match anything else."""


def acl_server(binary: str) -> RedisServer:
    """A started redis-server with the keyspace events leaderpool needs already on."""
    return RedisServer(binary, extra_args=("--notify-keyspace-events", "Kg$x")).start()


def add_user(admin: redis.Redis, user: str, prefix: str = DEFAULT_PREFIX, rules: list[str] | None = None) -> None:
    """Create ``user`` (password :data:`PASSWORD`) with the documented rules, or ``rules``."""
    admin.execute_command("ACL", "SETUSER", user, "reset", "on", f">{PASSWORD}", *(rules or acl_rules(prefix)))


def user_url(server: RedisServer, user: str, password: str = PASSWORD) -> str:
    return f"redis://{user}:{quote(password, safe='')}@127.0.0.1:{server.port}/0"


def acl_denials(admin: redis.Redis) -> list[str]:
    """What Redis refused anyone since the last ``ACL LOG RESET``, as "user reason object" lines;
    without redis-py's ``CLIENT SETINFO`` on connect, which it sends to any server and ignores
    when refused (Redis 6.2 logs the refusal as ``client``, not being able to grant it alone)."""
    out = []
    for entry in admin.execute_command("ACL", "LOG"):
        fields = dict(zip(entry[::2], entry[1::2], strict=True)) if isinstance(entry, list) else entry
        get = {(k.decode() if isinstance(k, bytes) else k): v.decode() if isinstance(v, bytes) else v
               for k, v in fields.items()}  # fmt: skip
        if get["object"] not in ("client", "client|setinfo"):
            out.append(f"{get['username']} {get['reason']} {get['object']}")
    return out


def fail_over_and_hand_over(ws: Workers, admin: redis.Redis, pool: str, *extra: str) -> None:
    """a leads; b follows; SIGKILL a: b leads; a returns and follows; SIGTERM b: a is handed
    the lead in one step. a is killed once b knows its subscribed connection, so that the death
    is proved through Redis without CLIENT LIST (refused to a restricted user: a denial in the
    ACL log)."""
    a = ws.start("a", *extra)
    a.elected()
    b = ws.start("b", *extra)
    b.sees("a")
    follower_knows_the_leader_connection(admin, pool, "b", term=1)
    a.kill()
    b.elected()
    a2 = ws.start("a", *extra)
    a2.sees("b")
    mark = a2.mark()
    b.signal(signal.SIGTERM)
    assert 0 == b.wait()
    a2.wait_for(lambda e: e["event"] == "elected", since=mark)
    assert 0 == b.wait()


def follower_knows_the_leader_connection(
    admin: redis.Redis, pool: str, follower: str, term: int, prefix: str = DEFAULT_PREFIX
) -> None:
    """Wait until the leader of ``term`` has registered its subscribed connection and ``follower``
    has beaten since (its beat's reply brings the registration, which the proof by subscription
    needs). A leader killed sooner is proved dead another way (CLIENT LIST, refused to a
    restricted user, then its liveness endpoint): correct, but a denial in the ACL log."""
    keys = f"{prefix}:{{{pool}}}"

    def lease_end() -> float:  # a beat moves it to Redis's now + the ttl
        return float(admin.zscore(f"{keys}:leases", follower) or 0.0)

    def registration() -> str:
        value = admin.get(f"{keys}:leader_conn") or ""
        return value.decode() if isinstance(value, bytes) else str(value)  # either kind of admin client

    eventually(lambda: re.fullmatch(rf"{term}\|\d+\|s", registration()) is not None)
    before = lease_end()
    eventually(lambda: lease_end() > before)
