"""leaderpool-cli's commands answer alike (issue 24): a pool Redis holds no key of is the same one
line and exit 1 for every command that takes a pool; ``status --all`` lists every pool that still
has keys; the messages a new user met say what is wrong and what was waited for."""

from __future__ import annotations

import json
import signal

from leaderpool.testing.redis_server import RedisServer
from tests.support.worker_procs import PATIENCE, Workers, workers_for
from tests.support.worker_procs import cli as run_cli

UNKNOWN = "leaderpool-cli: error: no pool named nope (prefix leaderpool): `leaderpool-cli status` lists the pools"


class TestUnknownPool:
    def test_every_command_taking_a_pool_refuses_an_unknown_one_alike(self, redis_one: RedisServer) -> None:
        """One line, exit 1, nothing on stdout and nothing written, whatever the command."""
        with workers_for(redis_one.url) as ws:
            ws.start("a").elected()  # another pool exists: the answer is about the name, not an empty Redis
            commands = [
                ("status", "--pool", "nope"), ("history", "nope"), ("resign", "nope"), ("evict", "nope", "m"),
                ("forget", "nope"), ("schedules", "--pool", "nope"), ("jobs", "nope"), ("requeue", "nope", "--all"),
                ("drop", "nope", "--all"), ("call", "nope", "1"), ("multicall", "nope", "1"),
            ]  # fmt: skip
            for args in commands:
                done = run_cli("--redis", redis_one.url, *args)
                assert (1, "", UNKNOWN) == (done.returncode, done.stdout, done.stderr.strip()), args
            typo = run_cli("--redis", redis_one.url, "submit", "nope", "{}")
            assert (1, "", f"{UNKNOWN}; submit --create to a pool yet to start") == (
                typo.returncode, typo.stdout, typo.stderr.strip(),
            )  # fmt: skip
            listed = json.loads(run_cli("--redis", redis_one.url, "status", "--json", "--all").stdout)
            assert ["p"] == [p["pool"] for p in listed["pools"]]  # no stream was made for the typo

    def test_submit_create_makes_the_pool_its_members_will_join(self, redis_one: RedisServer) -> None:
        """--create is how a job goes to a pool with no members yet; the pool then exists for every command."""
        done = run_cli("--redis", redis_one.url, "submit", "--create", "later", '{"n": 1}')
        assert 0 == done.returncode, done.stderr
        jobs = json.loads(run_cli("--redis", redis_one.url, "jobs", "later", "--json").stdout)
        assert (1, 1) == (jobs["jobs"], jobs["waiting"])
        history = run_cli("--redis", redis_one.url, "history", "later")
        assert (0, "pool later: no leadership transitions recorded\n") == (history.returncode, history.stdout)


class TestWatch:
    def test_count_ends_a_watch_into_a_pipe_while_nothing_changes(self, redis_one: RedisServer) -> None:
        """--count counts refreshes, printed or not: two refreshes of an unchanged pool, one frame, exit 0."""
        with workers_for(redis_one.url) as ws:
            ws.start("a").elected()
            done = run_cli(
                "--redis", redis_one.url, "status", "--pool", "p", "--watch", "--json", "--count", "2",
                "--interval", "0.2", timeout=PATIENCE,
            )  # fmt: skip
        assert 0 == done.returncode, done.stderr
        assert ["a"] == [json.loads(line)["pools"][0]["leader"]["member"] for line in done.stdout.splitlines()]


class TestStatusAll:
    def test_a_pool_whose_members_all_left_cleanly_is_listed(self, redis_one: RedisServer) -> None:
        """Its members hash is gone, its term and history remain: --all lists it (and --pool shows it)."""
        ws = Workers(redis_one.url, pool="gone")
        try:
            a = ws.start("a")
            a.elected()
            a.signal(signal.SIGTERM)
            assert 0 == a.wait()
        finally:
            ws.cleanup()
        named = json.loads(run_cli("--redis", redis_one.url, "status", "--json", "--pool", "gone").stdout)
        listed = json.loads(run_cli("--redis", redis_one.url, "status", "--json", "--all").stdout)
        assert ([], None) == (named["pools"][0]["members"], named["pools"][0]["leader"])
        assert ["gone"] == [p["pool"] for p in listed["pools"]]
