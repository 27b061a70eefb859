"""Redis Cluster: workers and the CLI reach a cluster through redis+cluster:// URLs. Pools
spread over every master elect and fail over on each; a resharding that moves a pool's slot
and a master failover (a replica promoted) do not stop a pool: its members watch the slot's new
master, turn keyspace events on there, and keep one leader with rising terms."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from leaderpool import Election, MemberConfig
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.urls import parse_cluster_url, validate_redis_url
from leaderpool.errors import ConfigError
from leaderpool.testing.cluster import ClusterSet, slot_of
from leaderpool.testing.redis_server import RedisServer
from tests.conftest import REDIS_BINARIES
from tests.support.worker_procs import PATIENCE, WorkerProc, Workers, cli, eventually, workers_for

# ---- URLs ----


def test_cluster_url_parts() -> None:
    u = parse_cluster_url("rediss+cluster://app:s%40cret@h1:7001,[::1],h3:7003")
    assert (("h1", 7001), ("::1", 6379), ("h3", 7003)) == u.nodes
    assert ("app", "s@cret", True) == (u.username, u.password, u.ssl)
    assert "rediss+cluster://h1:7001,[::1]:6379,h3:7003" == u.describe()
    assert (None, None, False) == (lambda c: (c.username, c.password, c.ssl))(parse_cluster_url("redis+cluster://h/0"))


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://h:7000/1", "only database 0"),
        ("redis+cluster://h:7000?db=0", "takes no options"),
        ("redis+cluster://h1,,h2", "empty node address"),
        ("redis+cluster://h:99999", "port"),
        ("redis+cluster://app:secret@h1:x", "invalid port"),
    ],
)
def test_bad_cluster_urls_are_one_clear_error(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_redis_url(url)
    assert says in str(caught.value) and "\n" not in str(caught.value) and "secret" not in str(caught.value)


@pytest.mark.parametrize("flag", [("--name", "billing"), ("--wait-replicas", "1")])
def test_the_worker_refuses_names_and_wait_replicas_on_a_cluster_in_one_line(flag: tuple[str, str]) -> None:
    """A name's registration touches the pool's slot and the names' slot in one script; WAIT
    would go to a node of redis-py's choosing."""
    with workers_for("redis+cluster://127.0.0.1:1") as ws:
        w = ws.start("a", *flag)
        assert 2 == w.wait()
        assert "not supported on Redis Cluster" in w.stderr and 1 == len(w.stderr.strip().splitlines())
        assert flag[0] in w.stderr


# ---- small clusters of their own: masters only ----


def test_a_worker_started_before_the_cluster_elects_once_it_is_up() -> None:
    """The worker retries an unreachable cluster (no traceback, no exit); once the cluster is up
    it joins, elects, and its watcher, which had no slot map yet, subscribes on the pool's master."""
    c = ClusterSet(replicas=0)
    try:
        with workers_for(c.url, "early") as ws:
            a = ws.start("a", ttl="2")
            eventually(lambda: "redis_unavailable" in a.stderr, timeout=PATIENCE)
            c.start()
            a.elected()
            eventually(lambda: 1 == subscribers(c.master_of("early"), "early"), timeout=PATIENCE)
            assert "Traceback" not in a.stderr
    finally:
        c.cleanup()


def test_the_acl_rules_for_a_cluster_are_enough_and_needed() -> None:
    """``leaderpool-cli acl --cluster``, set on every node, lets a worker and the CLI run as that
    user; without ``--cluster`` (no CLUSTER SLOTS, no COMMAND) the worker exits 2 in one line."""
    with ClusterSet(replicas=0) as c:
        for cluster_rules, user in ((True, "full"), (False, "bare")):
            line = cli("acl", "--user", user, *(["--cluster"] if cluster_rules else [])).stdout.split()
            for server in c.servers:
                admin = redis.Redis(port=server.port, socket_timeout=5)
                admin.execute_command(*[w.replace(">PASSWORD", ">pw") for w in line])
                admin.close()
        with workers_for(c.url.replace("//", "//bare:pw@", 1), "acl") as ws:
            refused = ws.start("a")
            assert 2 == refused.wait()
            assert "NOPERM" in refused.stderr and 1 == len(refused.stderr.strip().splitlines())
        url = c.url.replace("//", "//full:pw@", 1)
        with workers_for(url, "acl") as ws:
            assert ws.start("a", ttl="2").elected()["term"] >= 1
            assert "a" == status(url)["acl"]["leader"]["member"]


# ---- a real cluster: three masters, three replicas (one cluster for the module; the test that
# kills a master runs last) ----


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterSet]:
    with ClusterSet() as c:
        yield c


@contextlib.contextmanager
def pools_of_workers(url: str, pools: list[str]) -> Iterator[dict[str, Workers]]:
    with contextlib.ExitStack() as stack:
        yield {pool: stack.enter_context(workers_for(url, pool)) for pool in pools}


def status(url: str) -> dict[str, dict[str, Any]]:
    done = cli("--redis", url, "status", "--json")
    assert 0 == done.returncode, done.stderr
    return {p["pool"]: p for p in json.loads(done.stdout)["pools"]}


def elections(workers: list[WorkerProc]) -> list[int]:
    """The terms every worker of one pool was elected for, in the order they were reported."""
    return [term for _, term in sorted((e["t"], e["term"]) for w in workers for e in w.of("elected"))]


def one_leader_per_term(workers: list[WorkerProc]) -> bool:
    terms = elections(workers)
    return terms == sorted(set(terms))  # each term once, rising


def subscribers(server: RedisServer, pool: str) -> int:
    """How many connections watch ``pool``'s leader key on ``server`` (keyspace events are node-local)."""
    client = redis.Redis(port=server.port, socket_timeout=5)
    try:
        channel = Keyspace(pool).leader_channel(0)
        return int(dict(client.pubsub_numsub(channel)).get(channel.encode(), 0))
    finally:
        client.close()


def keyspace_flags(server: RedisServer) -> str:
    client = redis.Redis(port=server.port, socket_timeout=5)
    try:
        return str(client.config_get("notify-keyspace-events")["notify-keyspace-events"])
    finally:
        client.close()


def test_pools_on_every_master_elect_and_fail_over(cluster: ClusterSet) -> None:
    """One pool per master: each elects, each fails over when its leader is SIGKILLed, and
    ``leaderpool-cli status`` (SCAN on every master) lists them all."""
    pools = [cluster.name_on(m, "spread") for m in cluster.masters()]
    assert 3 == len({cluster.master_of(p).port for p in pools})
    with pools_of_workers(cluster.url, pools) as by_pool:
        first = {p: ws.start("a", ttl="2") for p, ws in by_pool.items()}
        for w in first.values():
            w.elected()
        second = {p: ws.start("b", ttl="2") for p, ws in by_pool.items()}
        for w in second.values():
            w.sees("a")
        shown = status(cluster.url)
        assert {p: "a" for p in pools} == {p: shown[p]["leader"]["member"] for p in pools}

        for w in first.values():
            w.signal(signal.SIGKILL)
        for p, w in second.items():
            assert w.elected()["term"] > first[p].of("elected")[-1]["term"]
        shown = status(cluster.url)
        assert {p: "b" for p in pools} == {p: shown[p]["leader"]["member"] for p in pools}
        for p in pools:
            assert one_leader_per_term([first[p], second[p]])


def test_a_resharding_that_moves_the_pools_slot_does_not_stop_it(cluster: ClusterSet) -> None:
    """The slot moves (IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE): the members' commands follow
    MOVED, their watchers move to the new master, and a hand-over there is announced by its
    keyspace events."""
    source, target = cluster.masters()[:2]
    pool = cluster.name_on(source, "moving")
    with workers_for(cluster.url, pool) as ws:
        a = ws.start("a", ttl="2")
        a.elected()
        b = ws.start("b", ttl="2")
        b.sees("a")
        assert 2 == subscribers(source, pool)

        cluster.move_slot(slot_of(pool), target)
        assert target.port == cluster.master_of(pool).port
        eventually(lambda: 2 == subscribers(target, pool), timeout=PATIENCE)
        assert 0 == subscribers(source, pool)
        assert "cluster_channel_moved" in a.stderr and "cluster_channel_moved" in b.stderr

        term = a.of("elected")[-1]["term"]
        a.signal(signal.SIGTERM)
        assert 0 == a.wait()
        assert b.elected()["term"] > term
        assert "b" == status(cluster.url)[pool]["leader"]["member"]
        assert one_leader_per_term([a, b])


def test_doctor_lock_and_status_watch_work_over_a_cluster(cluster: ClusterSet) -> None:
    """Each master has its own configuration: doctor checks each (keyspace events included);
    ``lock`` takes python-redis-lock's keys, which share the resource's slot (and ``lock -n`` a
    semaphore's, likewise); ``status --watch``
    runs on the cluster watcher."""
    done = cli("--redis", cluster.url, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    masters = {f"127.0.0.1:{m.port}" for m in cluster.masters()}
    assert masters == {name[len("keyspace events (") : -1] for name in checks if name.startswith("keyspace events (")}
    assert "fast failover" in checks and "pool data" in checks

    locked = cli("--redis", cluster.url, "lock", "nightly", "--", sys.executable, "-c", "print('held')")
    assert (0, "held") == (locked.returncode, locked.stdout.strip()), locked.stderr
    # a semaphore's wake-up lists are named in its scripts from the resource: the same slot
    permit = cli("--redis", cluster.url, "lock", "nightly", "-n", "2", "--", sys.executable, "-c", "print('held')")
    assert (0, "held") == (permit.returncode, permit.stdout.strip()), permit.stderr

    pool = cluster.name_on(cluster.masters()[1], "watched")
    with workers_for(cluster.url, pool) as ws:
        ws.start("a", ttl="2").elected()
        watched = cli("--redis", cluster.url, "status", "--watch", "--for", "1", "--pool", pool)  # the cluster watcher
        assert 0 == watched.returncode and f"pool {pool}: leader a" in watched.stdout, watched.stderr


def test_the_library_takes_a_cluster_url_and_refuses_names_there(cluster: ClusterSet) -> None:
    """``Election`` on a redis+cluster:// URL leads, writes fenced on its pool's slot, and
    refuses a unique name with a ConfigError (the registry is on another slot)."""
    pool = cluster.name_on(cluster.masters()[2], "library")
    with Election(MemberConfig(pool=pool, ttl_s=2.0), cluster.url) as election:
        term = election.wait_until_leader(timeout=PATIENCE)
        assert term >= 1 and election.current_leader(fresh=True) is not None
        assert (True, term) == tuple(election.fenced_set(f"{{{pool}}}:report", "done"))
        with pytest.raises(ConfigError, match="not supported on Redis Cluster"):
            election.register_name("billing")
    with pytest.raises(ConfigError, match="not supported on Redis Cluster"):
        Election(MemberConfig(pool=pool, wait_replicas=1), cluster.url).start()


@pytest.mark.parametrize("binary", [b for b, _ in REDIS_BINARIES[1:]], ids=[f"redis{v}" for _, v in REDIS_BINARIES[1:]])
def test_older_redis_versions_elect_and_follow_a_resharding(binary: str) -> None:
    """The other redis-server versions on the machine (6.2 has no ADDSLOTSRANGE; CLUSTER SLOTS
    is read the same way): a pool elects, and its watcher follows its slot to another master.
    Masters only, to stay quick: the failover tests run on the first version."""
    with ClusterSet(binary, replicas=0) as c:
        source, target = c.masters()[:2]
        pool = c.name_on(source, "older")
        with workers_for(c.url, pool) as ws:
            a = ws.start("a", ttl="2")
            a.elected()
            c.move_slot(slot_of(pool), target)
            eventually(lambda: 1 == subscribers(target, pool), timeout=PATIENCE)
            assert "a" == status(c.url)[pool]["leader"]["member"]


def test_a_master_failover_keeps_each_pool_one_leader_with_rising_terms(cluster: ClusterSet) -> None:
    """SIGKILL the master of one pool's slot: its replica is promoted; the members turn keyspace
    events on there (a replica does not inherit CONFIG SET), watch there, and carry on. A pool
    on another master is not disturbed."""
    doomed, other = cluster.masters()[:2]
    pool, calm = cluster.name_on(doomed, "failing"), cluster.name_on(other, "calm")
    with pools_of_workers(cluster.url, [pool, calm]) as by_pool:
        workers = {p: [ws.start("a", ttl="2")] for p, ws in by_pool.items()}
        for p, ws in by_pool.items():
            workers[p][0].elected()
            workers[p] += [ws.start(m, ttl="2") for m in "bc"]
            for w in workers[p][1:]:
                w.sees("a")
        calm_term = workers[calm][0].of("elected")[-1]["term"]

        cluster.kill(doomed)
        promoted = cluster.wait_for_failover(doomed)
        assert promoted.port == cluster.master_of(pool).port
        eventually(lambda: set("Kg$x") <= set(keyspace_flags(promoted)), timeout=PATIENCE)
        eventually(lambda: 2 == subscribers(promoted, pool), timeout=PATIENCE)  # the leader and its next in line

        def settled() -> dict[str, Any] | None:
            found = status(cluster.url).get(pool)
            return found if found and found["leader"] and 3 == len(found["members"]) else None

        leader = eventually(settled, timeout=PATIENCE)["leader"]
        # keyspace events work on the promoted master: a kind hand-over lands at once
        lead = next(w for w in workers[pool] if w.name == leader["member"])
        lead.signal(signal.SIGTERM)
        assert 0 == lead.wait()
        rest = [w for w in workers[pool] if w is not lead]
        eventually(lambda: any(w.of("elected") and w.of("elected")[-1]["term"] > leader["term"] for w in rest))
        assert one_leader_per_term(workers[pool])

        assert [calm_term] == elections(workers[calm])  # the other master's pool kept its leader
        assert "a" == status(cluster.url)[calm]["leader"]["member"]
