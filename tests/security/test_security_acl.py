"""The documented ACL rules (``leaderpool.backend.acl``, ``leaderpool-cli acl``) are enough for the worker,
every CLI command and the demo, and Redis refuses nothing they send; a user without them gets
one line and exit 2; two tenants with their own prefix and user cannot reach each other's pools."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from leaderpool.backend.acl import COMMANDS, acl_rules, setuser_line
from leaderpool.testing.redis_server import RedisServer
from tests.support.security_helpers import (
    PASSWORD,
    acl_denials,
    acl_server,
    add_user,
    fail_over_and_hand_over,
    user_url,
)
from tests.support.worker_procs import cli, workers_for


@pytest.fixture
def server(redis_binary: str) -> Iterator[RedisServer]:
    s = acl_server(redis_binary)
    try:
        yield s
    finally:
        s.cleanup()


@pytest.fixture
def admin(server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=server.port)
    yield client
    client.close()


class TestTheRules:
    def test_the_cli_prints_the_documented_setuser_line(self) -> None:
        """``leaderpool-cli acl`` prints exactly the rules the library builds, for the prefix given."""
        done = cli("acl", "--prefix", "team-a", "--user", "lp-a")
        assert 0 == done.returncode, done.stderr
        assert setuser_line("lp-a", "team-a") + "\n" == done.stdout
        assert "~team-a:*" in done.stdout and "&__keyspace@*__:team-a:*" in done.stdout

    def test_the_security_page_shows_the_rules(self) -> None:
        """The documentation's Security page carries the same line."""
        from tests.support.worker_procs import ROOT

        assert setuser_line() in (ROOT / "docs" / "operations" / "security.md").read_text()

    def test_no_prefix_opens_more_than_its_own_keys(self) -> None:
        """A prefix with a glob character or ``:`` is refused; no rule reads the server's secrets
        (CONFIG) or other users' connections (CLIENT LIST)."""
        for prefix in ("a*b", "a:b"):
            with pytest.raises(ValueError, match="nest"):
                acl_rules(prefix)
        assert not {"config|set", "config|get", "config", "client|list", "client", "flushall"} & set(COMMANDS)


class TestRestrictedUser:
    def test_worker_cli_and_demo_run_as_the_restricted_user(self, server: RedisServer, admin: redis.Redis) -> None:
        """Election, fail-over, hand-over, status, history, resign, evict, schedules, doctor,
        forget and the demo all work, and the ACL log shows Redis refused nothing."""
        add_user(admin, "lp")
        admin.execute_command("ACL", "LOG", "RESET")
        url = user_url(server, "lp")
        with workers_for(url, pool="acl") as ws:
            fail_over_and_hand_over(ws, admin, "acl")
            status = cli("--redis", url, "status", "--json")
            assert 0 == status.returncode, status.stderr
            [pool] = json.loads(status.stdout)["pools"]
            assert "a" == pool["leader"]["member"]
            history = cli("--redis", url, "history", "acl", "--json")
            assert 0 == history.returncode, history.stderr
            reasons = [t["reason"] for t in json.loads(history.stdout)["transitions"] if t["event"] == "elected"]
            assert "handoff" == reasons[-1]
            ws.start("c").sees("a")
            resign = cli("--redis", url, "resign", "acl")
            assert 0 == resign.returncode, resign.stderr
            assert "c" in resign.stdout
            evict = cli("--redis", url, "evict", "acl", "a")
            assert 0 == evict.returncode, evict.stderr
            assert 0 == cli("--redis", url, "status", "--watch", "--count", "1").returncode
            doctor = cli("--redis", url, "doctor", "--json")
            checks = {c["name"]: c["level"] for c in json.loads(doctor.stdout)["checks"]}
            assert {"ok"} == {checks["scripting"], checks["keyspace events"], checks["version"]}, doctor.stdout
            assert "ok" == checks["pool data"], doctor.stdout
            schedules = cli("--redis", url, "schedules")
            assert 0 == schedules.returncode, schedules.stderr
            forget = cli("--redis", url, "forget", "acl", "--force")
            assert 0 == forget.returncode, forget.stderr
        demo = cli("demo", "--redis", url, "--ttl", "0.5", timeout=120)
        assert 0 == demo.returncode, demo.stdout + demo.stderr
        assert [] == acl_denials(admin)

    def test_a_user_without_the_rules_gets_one_line_and_exit_2(self, server: RedisServer, admin: redis.Redis) -> None:
        """A user that may only PING, only touch other keys, or not subscribe: the worker stops at
        once with one line naming the refusal and pointing at ``leaderpool-cli acl``; so does the
        CLI (its ``history`` reads a key; it subscribes to nothing)."""
        add_user(admin, "pingonly", rules=["resetkeys", "~*", "resetchannels", "&*", "-@all", "+ping"])
        add_user(admin, "elsewhere", prefix="other")
        add_user(admin, "nochannels", rules=[r for r in acl_rules() if not r.startswith("&")])
        for user in ("pingonly", "elsewhere", "nochannels"):
            url = user_url(server, user)
            with workers_for(url) as ws:
                worker = ws.start("a")
                assert 2 == worker.wait()
                lines = worker.stderr.strip().splitlines()
                assert 1 == len(lines), worker.stderr
                assert "refused a command (NOPERM" in lines[0] and "leaderpool-cli acl" in lines[0]
                assert PASSWORD not in worker.stderr
            if user == "nochannels":
                continue
            done = cli("--redis", url, "history", "p")
            assert 2 == done.returncode and 1 == len(done.stderr.splitlines()), done.stderr
            assert "NOPERM" in done.stderr and PASSWORD not in done.stderr


class TestTenants:
    def test_two_tenants_cannot_see_or_touch_each_others_pools(
        self, server: RedisServer, admin: redis.Redis, redis_binary: str
    ) -> None:
        """Tenant users restricted to their prefix each run a pool; neither lists, reads, evicts
        nor forgets the other's, and the other tenant's commands are refused (exit 2)."""
        add_user(admin, "ta", prefix="tenant-a")
        add_user(admin, "tb", prefix="tenant-b")
        url_a, url_b = user_url(server, "ta"), user_url(server, "tb")
        with workers_for(url_a, pool="jobs") as wa, workers_for(url_b, pool="jobs") as wb:
            a = wa.start("a", "--prefix", "tenant-a")
            b = wb.start("b", "--prefix", "tenant-b")
            a.elected()
            b.elected()
            own = cli("--redis", url_a, "--prefix", "tenant-a", "status", "--json")
            assert ["a"] == [p["leader"]["member"] for p in json.loads(own.stdout)["pools"]]
            for command in (["status", "--json"], ["history", "jobs"], ["evict", "jobs", "b"], ["forget", "jobs"]):
                done = cli("--redis", url_a, "--prefix", "tenant-b", *command)
                assert 2 == done.returncode and "NOPERM" in done.stderr, (command, done.stdout, done.stderr)
            # a's own prefix holds nothing of b's: SCAN under it finds a's pool alone
            listed = cli("--redis", url_a, "--prefix", "tenant-a", "status", "--json")
            assert [("jobs", "a")] == [(p["pool"], p["leader"]["member"]) for p in json.loads(listed.stdout)["pools"]]
            assert b.alive() and a.alive()
            theirs = cli("--redis", url_b, "--prefix", "tenant-b", "status", "--json")
            assert ["b"] == [p["leader"]["member"] for p in json.loads(theirs.stdout)["pools"]]
