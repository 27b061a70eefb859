"""``leaderpool-cli doctor``: does this Redis give leaderpool what it needs?

Each check ends ``ok``, ``warn`` (works, with a caveat worth knowing) or ``fail`` (leases or
elections can go wrong). CONFIG may be refused (managed Redis): what can be read from INFO is
read there, and what cannot is reported as unknown, with a warning.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import redis.exceptions

from leaderpool.backend.acl import acl_user
from leaderpool.backend.pool_store import text
from leaderpool.backend.watcher import NEEDED_KEYSPACE_FLAGS, missing_keyspace_flags
from leaderpool.util.constants import DEFAULT_PREFIX
from leaderpool.util.printable import printable

Level = Literal["ok", "warn", "fail"]
PINGS = 5
SLOW_MS = 20.0
MIN_VERSION = (5, 0)  # streams (the history)


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    message: str


async def _config_get(client: Any, name: str) -> str | None:
    """A CONFIG GET value; None where CONFIG is refused, or not asked (an ACL user: see
    :func:`~leaderpool.backend.acl.acl_user`)."""
    if acl_user(client) is not None:
        return None
    try:
        reply = await client.config_get(name)
    except redis.exceptions.ResponseError:
        return None
    for key, value in reply.items():
        if text(key) == name:
            return text(value)
    return ""


async def check_latency(client: Any) -> Check:
    samples = []
    for _ in range(PINGS):
        start = time.perf_counter()
        await client.ping()
        samples.append((time.perf_counter() - start) * 1000)
    median = statistics.median(samples)
    if median > SLOW_MS:
        return Check(
            "latency", "warn", f"median {median:.1f} ms over {PINGS} PINGs: keep the ttl far above it (seconds)"
        )
    return Check("latency", "ok", f"median {median:.2f} ms over {PINGS} PINGs")


async def check_version(client: Any) -> Check:
    info = await client.info("server")
    version = str(info.get("redis_version", "unknown"))
    mode = str(info.get("redis_mode", "standalone"))
    try:
        parsed = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return Check("version", "warn", f"{version} ({mode}): could not parse the version")
    if parsed < MIN_VERSION:
        return Check("version", "fail", f"{version}: leaderpool needs Redis >= 5.0 (streams for the history)")
    return Check("version", "ok", f"{version} ({mode})")


async def check_scripting(client: Any) -> Check:
    try:
        await client.eval("return 1", 0)
    except redis.exceptions.ResponseError as exc:
        return Check("scripting", "fail", f"EVAL refused ({exc}): every election step is a Lua script")
    return Check("scripting", "ok", "Lua scripts run")


async def check_role(client: Any) -> Check:
    info = await client.info("replication")
    role = str(info.get("role", "unknown"))
    if role in ("slave", "replica"):
        return Check("replication", "fail", "this is a read-only replica: point leaderpool at the primary")
    replicas = int(info.get("connected_slaves", 0) or 0)
    if replicas:
        return Check(
            "replication",
            "ok",
            f"primary with {replicas} replica(s); replication is asynchronous, so a Redis failover may lose "
            "the last lease writes (terms stay safe: members remember the highest term they saw)",
        )
    return Check("replication", "ok", f"role {role}")


PROBE_EVENTS = {"set": "$", "expired": "x", "del": "g"}
"""What the doctor's probe key goes through, and the flag each keyspace event needs (with ``K``)."""
PROBE_WAIT_S = 1.0


def probe_keyspace_events(sync: Any, prefix: str) -> set[str] | None:
    """The keyspace events heard for a key of our own under ``prefix`` (``PREFIX:doctor:RANDOM``),
    set with a 1 ms expiry, read after it expired, set again and deleted: a check that needs
    no CONFIG (the ACL's keys and keyspace channels suffice). None when it cannot run here."""
    import os

    kwargs = getattr(getattr(sync, "connection_pool", None), "connection_kwargs", None)
    if not hasattr(sync, "pubsub") or kwargs is None:
        return None
    key = f"{prefix}:doctor:{os.urandom(8).hex()}"
    listener = sync.pubsub(ignore_subscribe_messages=True)
    try:
        listener.subscribe(f"__keyspace@{int(kwargs.get('db', 0) or 0)}__:{key}")
        sync.set(key, "1", px=1)
        time.sleep(0.01)
        sync.exists(key)  # a read after the expiry fires "expired" at once
        sync.set(key, "1", px=int(PROBE_WAIT_S * 2000))
        sync.delete(key)
        heard: set[str] = set()
        deadline = time.monotonic() + PROBE_WAIT_S
        while heard != set(PROBE_EVENTS) and (left := deadline - time.monotonic()) > 0:
            message = listener.get_message(timeout=left)
            if message is not None and message.get("type") == "message":
                heard.add(text(message["data"]))
        return heard
    except redis.exceptions.ResponseError:  # refused, or (a Cluster node) the key's slot is elsewhere
        return None
    finally:
        listener.close()


async def check_keyspace_events(client: Any, prefix: str = DEFAULT_PREFIX) -> Check:
    current = await _config_get(client, "notify-keyspace-events")
    if current is None:
        heard = probe_keyspace_events(getattr(client, "sync", None), prefix)
        if heard is None:
            return Check(
                "keyspace events",
                "warn",
                f"CONFIG refused (managed Redis?): cannot check notify-keyspace-events; set it to include "
                f"{NEEDED_KEYSPACE_FLAGS} in the provider's settings, else failover relies on lease timers only",
            )
        missing = sorted({flag for event, flag in PROBE_EVENTS.items() if event not in heard})
        if len(missing) == len(PROBE_EVENTS):
            missing = ["K", *missing]
        if missing:
            return Check(
                "keyspace events",
                "warn",
                f"CONFIG refused or not asked (an ACL user), so probed with a key under {prefix}: "
                f"(heard {', '.join(sorted(heard)) or 'nothing'}): "
                f"notify-keyspace-events lacks {' '.join(missing)}; set it to include {NEEDED_KEYSPACE_FLAGS} in "
                "redis.conf or the provider's settings, else failover relies on lease timers only",
            )
        return Check(
            "keyspace events",
            "ok",
            f"heard {', '.join(PROBE_EVENTS)} for a key under {prefix}: (probed: CONFIG refused or not asked): "
            f"{NEEDED_KEYSPACE_FLAGS} are on",
        )
    missing_flags = missing_keyspace_flags(current)
    if missing_flags:
        return Check(
            "keyspace events",
            "warn",
            f"notify-keyspace-events {current!r} lacks {' '.join(missing_flags)}: members turn them on when they "
            "start (CONFIG SET is allowed here); to keep them across restarts put notify-keyspace-events "
            f"{current + missing_flags} in redis.conf",
        )
    return Check("keyspace events", "ok", f"notify-keyspace-events {current!r} has {NEEDED_KEYSPACE_FLAGS}")


async def check_eviction(client: Any) -> Check:
    info = await client.info("memory")
    policy = str(info.get("maxmemory_policy", "") or await _config_get(client, "maxmemory-policy") or "unknown")
    maxmemory = int(info.get("maxmemory", 0) or 0)
    limit = f"maxmemory {maxmemory} bytes" if maxmemory else "maxmemory not set yet"
    if policy.startswith("allkeys-"):
        return Check(
            "maxmemory-policy",
            "fail",
            f"{policy} ({limit}) can evict any key, leases and member records included: a live leader could "
            "lose its lead; use noeviction, or a dedicated Redis for leaderpool",
        )
    if policy.startswith("volatile-"):
        return Check(
            "maxmemory-policy",
            "fail",
            f"{policy} ({limit}) can evict keys with a TTL, and the leader key has one: use noeviction",
        )
    if policy == "unknown":
        return Check("maxmemory-policy", "warn", "could not read the eviction policy")
    return Check("maxmemory-policy", "ok", policy)


async def check_persistence(client: Any) -> Check:
    info = await client.info("persistence")
    aof = bool(int(info.get("aof_enabled", 0) or 0))
    save = await _config_get(client, "save")
    if aof:
        return Check("persistence", "ok", "AOF on")
    if save is None:
        return Check(
            "persistence",
            "warn",
            "AOF off and CONFIG refused (or not asked, as an ACL user), so RDB snapshots are unknown",
        )
    if save.strip():
        return Check("persistence", "ok", f"RDB snapshots (save {save})")
    return Check(
        "persistence",
        "warn",
        "RDB and AOF are off: a Redis restart loses the pool state; members re-register at their next "
        "heartbeat and elect again, and terms stay safe because every member remembers the highest term it saw",
    )


async def check_fast_failover(client: Any) -> Check:
    """Fast failover proves a crashed leader's death through Redis: the leader registers its
    connection (CLIENT ID, its own id) and the next in line's bury script finds that connection's
    channel without a subscriber (PUBSUB NUMSUB). ``CLIENT LIST`` (it lists every user's
    connections: the printed ACL leaves it out) only helps when Redis has not read a slow
    teardown yet; without it that case falls back to a refused reconnect to the endpoint."""
    try:
        await client.client_id()
        await client.execute_command("PUBSUB", "NUMSUB", "leaderpool-doctor")
    except redis.exceptions.ResponseError as exc:
        return Check(
            "fast failover",
            "warn",
            f"CLIENT ID / PUBSUB NUMSUB refused ({exc}): a crashed leader's death is confirmed by a refused "
            "reconnect to its liveness endpoint instead, which a rejecting firewall can fake; allow "
            "+client|id +pubsub|numsub for leaderpool's user (`leaderpool-cli acl` prints them)",
        )
    return Check(
        "fast failover",
        "ok",
        "CLIENT ID and PUBSUB NUMSUB allowed: deaths are proved through Redis (the leader connection's own channel)",
    )


CHECKS: tuple[Callable[[Any], Awaitable[Check]], ...] = (
    check_version,
    check_latency,
    check_scripting,
    check_role,
    check_keyspace_events,
    check_eviction,
    check_persistence,
    check_fast_failover,
)


async def run_checks(client: Any, prefix: str = DEFAULT_PREFIX) -> list[Check]:
    """Every check in order; connection failures propagate (the caller reports them). On a Redis
    Cluster (the CLI's blocking client) every master is checked: each serves its own pools' slots,
    with its own configuration and keyspace events."""
    from leaderpool.backend.connect import is_cluster_client

    if not is_cluster_client(client):
        return [await _run(check, client, prefix) for check in CHECKS]
    from leaderpool.console.oneshot import Blocking

    found = []
    per_node = [k for k in CHECKS if k is not check_fast_failover]
    for node in sorted(client.sync.get_primaries(), key=lambda n: n.name):
        master = Blocking(node.redis_connection or client.sync.get_redis_connection(node))
        found += [
            Check(f"{c.name} ({node.name})", c.level, c.message)
            for c in [await _run(k, master, prefix) for k in per_node]
        ]
    found.append(CLUSTER_FAST_FAILOVER)
    return found


async def _run(check: Callable[[Any], Awaitable[Check]], client: Any, prefix: str) -> Check:
    """One check; the keyspace events' probe writes a key under the prefix (the ACL's keys)."""
    return await (check_keyspace_events(client, prefix) if check is check_keyspace_events else check(client))


CLUSTER_FAST_FAILOVER = Check(
    "fast failover",
    "warn",
    "on a Redis Cluster a crashed leader's death is confirmed by a refused reconnect to its liveness endpoint, "
    "not by CLIENT LIST (a client id is per node), which a rejecting firewall can fake",
)


def render(where: str, checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"leaderpool doctor: {where}"]
    lines += [f"  {c.level.upper():<4}  {c.name:<{width}}  {c.message}" for c in checks]
    fails = sum(c.level == "fail" for c in checks)
    warns = sum(c.level == "warn" for c in checks)
    verdict = "OK" if not fails else "PROBLEMS"
    lines.append(f"{verdict}: {fails} problem(s), {warns} warning(s)")
    return "\n".join(printable(line) for line in lines)  # messages quote keys and values found in Redis
