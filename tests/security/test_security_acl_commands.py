"""The printed ACL is minimal and sufficient: a user holding exactly the rules ``leaderpool-cli
acl`` prints runs every command (worker with a handler, a name and a schedule, status, history,
resign, lock with its renewal, names, jobs, schedules, dashboard, doctor) and Redis refuses it
nothing; that user cannot read the server's secrets (CONFIG), other users' connections (CLIENT
LIST) or any key outside its prefix; a prefix that could nest inside another is refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from leaderpool.backend.acl import acl_rules
from leaderpool.testing.redis_server import RedisServer
from tests.support.dashboard_procs import request, start_dashboard
from tests.support.security_helpers import (
    PASSWORD,
    acl_denials,
    acl_server,
    follower_knows_the_leader_connection,
    user_url,
)
from tests.support.worker_procs import cli, eventually, workers_for

PREFIX = "lp"


@pytest.fixture
def server(redis_binary: str) -> Iterator[RedisServer]:
    s = acl_server(redis_binary)
    try:
        yield s
    finally:
        s.cleanup()


@pytest.fixture
def admin(server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=server.port, decode_responses=True)
    yield client
    client.close()


def _printed_user(admin: redis.Redis, user: str, prefix: str = PREFIX) -> None:
    """Create ``user`` from the very line ``leaderpool-cli acl`` prints (its password replaced)."""
    done = cli("acl", "--prefix", prefix, "--user", user)
    assert 0 == done.returncode, done.stderr
    words = done.stdout.split()
    assert ["ACL", "SETUSER", user] == words[:3]
    admin.execute_command(*[f">{PASSWORD}" if w == ">PASSWORD" else w for w in words])


def _ok(*args: str, code: int = 0) -> str:
    done = cli(*args)
    assert code == done.returncode, (args, done.stdout, done.stderr)
    return done.stdout


def test_every_command_runs_as_the_printed_user(server: RedisServer, admin: redis.Redis, tmp_path: Path) -> None:
    """Worker (election, handler, name, schedule), status, history, names, whereis, jobs and
    the dead letters, call, schedules, lock (renewed while its command runs past its ttl),
    dashboard, doctor, resign, a SIGKILL fail-over proved through Redis, forget: all succeed, and
    the ACL log is empty."""
    _printed_user(admin, "lp")
    admin.execute_command("ACL", "LOG", "RESET")
    url = user_url(server, "lp")
    base = ["--redis", url, "--prefix", PREFIX]
    env = {"JOBS_RECORD_DIR": str(tmp_path), "LEADERPOOL_TEST_RUNS_FILE": str(tmp_path / "runs.jsonl")}
    with workers_for(url, pool="acl") as ws:
        a = ws.start(
            "a", "--prefix", PREFIX, "--handler", "tests.support.jobs_handlers:record", "--name", "svc",
            "--task", "tests.support.schedule_tasks:record_slot", "--every", "1", env=env,
        )  # fmt: skip
        a.elected()
        b = ws.start("b", "--prefix", PREFIX, "--handler", "tests.support.jobs_handlers:record", env=env)
        b.sees("a")
        assert ["a"] == [p["leader"]["member"] for p in json.loads(_ok(*base, "status", "--json"))["pools"]]
        _ok(*base, "status")
        _ok(*base, "status", "--watch", "--count", "1")
        _ok(*base, "history", "acl")
        assert "svc" in _ok(*base, "names") and "svc" in _ok(*base, "whereis", "svc")
        assert '"member": "a"' in _ok(*base, "call", "acl", '{"x": 1}').replace('":"', '": "')
        _ok(*base, "submit", "acl", "{}")
        _ok(*base, "jobs", "acl")
        _ok(*base, "requeue", "acl", "--all")
        _ok(*base, "drop", "acl", "--all")
        deadline = time.monotonic() + 30
        while "record_slot" not in (listed := cli(*base, "schedules")).stdout and time.monotonic() < deadline:
            time.sleep(0.2)
        assert 0 == listed.returncode, listed.stderr
        # a lock whose command outlives its ttl three times: renewed (TTL, EXPIRE) or lost
        lock = cli(*base, "lock", "job", "--ttl", "1", "--", "sleep", "3")
        assert (0, "") == (lock.returncode, lock.stderr), lock.stderr
        with start_dashboard(url, "--prefix", PREFIX) as dash:
            reply = request(dash.base, "GET", "/api/status")
            assert 200 == reply.status and ["acl"] == [p["pool"] for p in reply.json()["pools"]]
        doctor = json.loads(_ok(*base, "doctor", "--json"))
        checks = {c["name"]: c for c in doctor["checks"]}
        assert {"ok"} == {checks[n]["level"] for n in ("keyspace events", "fast failover", "pool data")}, checks
        assert "probed" in checks["keyspace events"]["message"]
        assert "b" in _ok(*base, "resign", "acl")
        b.elected()
        follower_knows_the_leader_connection(admin, "acl", "a", term=2, prefix=PREFIX)
        # a crash: proved through Redis by the leader connection's own channel, no CLIENT LIST
        b.kill()
        a.wait_for(lambda e: e["event"] == "elected" and e["term"] == 3)
        eventually(lambda: "leader_process_died" in a.stderr)
        assert "confirmed_by=subscription" in a.stderr, a.stderr
        a.terminate()
        assert 0 == a.wait()
        _ok(*base, "forget", "acl", "--force")
    assert [] == acl_denials(admin)


def test_the_user_reads_no_secret_no_connection_and_no_other_key(server: RedisServer, admin: redis.Redis) -> None:
    """CONFIG GET requirepass / masterauth, CLIENT LIST and a key outside the prefix are refused;
    its own connection's id is not."""
    admin.config_set("masterauth", "admin-secret")
    admin.set("lock:{orders}", "someone else's")
    _printed_user(admin, "lp")
    user = redis.Redis(port=server.port, username="lp", password=PASSWORD)
    try:
        for command in (("CONFIG", "GET", "requirepass"), ("CONFIG", "GET", "masterauth"), ("CLIENT", "LIST")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                user.execute_command(*command)
        with pytest.raises(redis.exceptions.NoPermissionError):
            user.get("lock:{orders}")
        assert int(user.client_id()) > 0
    finally:
        user.close()


class TestPrefixes:
    @pytest.mark.parametrize("prefix", ["a:b", "a*", "team?", "t[1]", "x\\y"])
    def test_a_prefix_that_could_nest_is_refused_with_one_line(self, prefix: str) -> None:
        """The CLI, its ``acl`` command and the worker: exit 2, one line naming the prefix."""
        for done in (
            cli("--prefix", prefix, "status"),
            cli("acl", "--prefix", prefix),
        ):
            assert 2 == done.returncode and 1 == len(done.stderr.splitlines()), done.stderr
            assert "nest" in done.stderr
        with pytest.raises(ValueError, match="nest"):
            acl_rules(prefix)

    def test_the_worker_refuses_it_too(self, redis_one: RedisServer) -> None:
        with workers_for(redis_one.url) as ws:
            worker = ws.start("a", "--prefix", "a:b")
            assert 2 == worker.wait()
            assert 1 == len(worker.stderr.strip().splitlines()) and "nest" in worker.stderr

    def test_tenant_a_cannot_touch_what_was_tenant_a_b(self, server: RedisServer, admin: redis.Redis) -> None:
        """The overlap the rule closes: under ``~a:*``, keys named like another prefix's
        (``a:b:...``) would be reachable; now no prefix can be ``a:b``, and ``a``'s user reaches
        nothing outside ``a:``."""
        _printed_user(admin, "ta", prefix="a")
        admin.set("ab:{p}:leader", "1|x")
        user = redis.Redis(port=server.port, username="ta", password=PASSWORD)
        try:
            with pytest.raises(redis.exceptions.NoPermissionError):
                user.get("ab:{p}:leader")
        finally:
            user.close()


def test_the_doctor_hears_keyspace_events_missing_without_config(redis_one: RedisServer) -> None:
    """As an ACL user (no CONFIG), on a server whose keyspace events are off, the doctor's probe
    hears nothing and says which flags to set; as the default user it reads CONFIG as before."""
    admin = redis.Redis(port=redis_one.port, decode_responses=True)
    try:
        admin.config_set("notify-keyspace-events", "")
        _printed_user(admin, "lp")
        admin.execute_command("ACL", "LOG", "RESET")
        done = cli("--redis", user_url(redis_one, "lp"), "--prefix", PREFIX, "doctor", "--json")
        check = next(c for c in json.loads(done.stdout)["checks"] if c["name"] == "keyspace events")
        assert "warn" == check["level"] and "heard nothing" in check["message"] and "K" in check["message"], check
        assert [] == acl_denials(admin)
        default = cli("--redis", redis_one.url, "doctor", "--json")
        check = next(c for c in json.loads(default.stdout)["checks"] if c["name"] == "keyspace events")
        assert "notify-keyspace-events ''" in check["message"]
    finally:
        admin.close()


def test_a_renewal_refused_by_the_acl_says_so(server: RedisServer, admin: redis.Redis) -> None:
    """Under the older rules (no TTL), ``lock``'s renewal is refused: the lock is marked lost at
    once and the warning names the refusal, not a pause."""
    rules = [r for r in acl_rules(PREFIX) if r != "+ttl"]
    admin.execute_command("ACL", "SETUSER", "old", "reset", "on", f">{PASSWORD}", *rules)
    # ttl 3: the first renewal is due after 1 s; a loaded machine may delay it up to 2 s more
    # before the lock expires (then the renewal finds it gone, a different warning)
    done = cli("--redis", user_url(server, "old"), "--prefix", PREFIX, "lock", "job", "--ttl", "3", "--", "sleep", "3")
    assert 0 == done.returncode, done.stderr
    warning = [line for line in done.stderr.splitlines() if "leaderpool-cli: warning" in line]
    assert 1 == len(warning) and "refused the renewal" in warning[0] and "leaderpool-cli acl" in warning[0], done.stderr
