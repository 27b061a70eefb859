"""The worker process end to end: real ``python -m leaderpool.worker`` processes against a real
redis-server, observed through their JSON events, exit codes and the pool's history."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from leaderpool.testing.redis_server import RedisServer, free_port
from tests.support.worker_procs import WorkerProc, Workers, cli, eventually, workers_for
from tests.support.worker_tasks import ACTS_FILE, CRASH_FILE

EVENT_FIELDS = {
    "elected": {"event", "pool", "member", "term", "t"},
    "revoked": {"event", "pool", "member", "term", "reason", "t"},
    "leader": {"event", "pool", "member", "term", "t"},
}


@pytest.fixture
def workers(redis_server: RedisServer) -> Iterator[Workers]:
    with workers_for(redis_server.url) as ws:
        yield ws


def history(url: str, pool: str = "p") -> list[dict[str, Any]]:
    done = cli("--redis", url, "history", pool, "--json")
    assert 0 == done.returncode, done.stderr
    transitions: list[dict[str, Any]] = json.loads(done.stdout)["transitions"]
    return transitions


class TestJsonEvents:
    def test_each_transition_is_one_json_line_with_its_fields(self, workers: Workers) -> None:
        """elected, leader and revoked carry exactly their fields; stdout holds nothing else."""
        a = workers.start("a")
        a.elected()
        a.signal(signal.SIGTERM)
        assert 0 == a.wait()
        assert [] == a.other_stdout
        assert ["leader", "elected", "revoked"] == [e["event"] for e in a.events]
        for event in a.events:
            assert EVENT_FIELDS[event["event"]] == set(event)
            assert ("p", "a", 1) == (event["pool"], event["member"], event["term"])
            assert isinstance(event["t"], float) and abs(time.time() - event["t"]) < 60
        assert "shutdown" == a.events[-1]["reason"]
        assert '"event": "elected"' not in a.stderr and "worker_started" in a.stderr  # logs go to stderr

    def test_followers_report_the_leader_and_its_absence(self, workers: Workers) -> None:
        """A follower prints a leader event for each new leader it sees (null while it sees none)."""
        a = workers.start("a")
        a.elected()
        b = workers.start("b")
        assert 1 == b.sees("a")["term"]
        a.signal(signal.SIGKILL)
        b.elected()
        leaders = [(e["member"], e["term"]) for e in b.of("leader")]
        assert ("a", 1) == leaders[0] and ("b", 2) == leaders[-1]
        assert set(leaders[1:-1]) <= {(None, None)}  # at most a vacancy seen between the two


class TestShutdownAndFailover:
    def test_sigterm_hands_over_at_once_and_exits_0(self, redis_server: RedisServer) -> None:
        """A kind shutdown releases the lead (history: released/shutdown) and the next member is
        elected by hand-over: with a 60 s lease, b is elected within the test's patience only so."""
        with workers_for(redis_server.url) as workers:
            a = workers.start("a", ttl="60")
            a.elected()
            b = workers.start("b", ttl="60")
            b.sees("a")
            a.signal(signal.SIGTERM)
            b.elected()
            assert 0 == a.wait()
            assert "shutdown" == a.of("revoked")[-1]["reason"]
            rows = [(r["event"], r["term"], r["member"], r["reason"]) for r in history(redis_server.url)]
            assert [("elected", 1, "a", ""), ("released", 1, "a", "shutdown"), ("elected", 2, "b", "handoff")] == rows

    def test_sigkill_fails_over_after_the_lease(self, workers: Workers, redis_server: RedisServer) -> None:
        """Without fast failover, the others take over once the dead leader's lease runs out;
        history infers the expiry."""
        a = workers.start("a", "--no-fast-failover")
        a.elected()
        b = workers.start("b", "--no-fast-failover")
        b.sees("a")
        a.signal(signal.SIGKILL)
        assert 2 == b.elected()["term"]
        rows = [(r["event"], r["term"], r["member"]) for r in history(redis_server.url)]
        assert [("elected", 1, "a"), ("expired", 1, "a"), ("elected", 2, "b")] == rows


class TestTasks:
    def test_a_crashed_task_hands_over_and_the_member_rejoins_as_youngest(
        self, workers: Workers, redis_server: RedisServer, tmp_path: Path
    ) -> None:
        """task_failed: the lead moves on, and the member is back in the pool, ranked last."""
        cue = tmp_path / "crash-now"
        a = workers.start("a", "--task", "tests.support.worker_tasks:crash_on_cue", env={CRASH_FILE: str(cue)})
        a.elected()
        b = workers.start("b")
        b.sees("a")  # b is in the pool before the crash: it must be the one handed the lead
        cue.touch()
        revoked = a.wait_for(lambda e: e["event"] == "revoked")
        assert ("task_failed", 1) == (revoked["reason"], revoked["term"])
        assert 2 == b.elected()["term"]
        assert "task_failed" in a.stderr and "the leader task blew up" in a.stderr
        assert None is a.proc.poll()  # the worker lives on

        def members() -> list[str] | None:
            done = cli("--redis", redis_server.url, "status", "--json")
            pool = json.loads(done.stdout)["pools"][0]
            names = [m["member"] for m in pool["members"]]
            return names if names == ["b", "a"] else None  # ranked: b now runs longest

        eventually(members)
        assert ("released", "task_failed") in [(r["event"], r["reason"]) for r in history(redis_server.url)]

    def test_a_thread_task_writes_fenced_and_stops_on_sigterm(
        self, workers: Workers, redis_server: RedisServer
    ) -> None:
        """A plain function runs in a thread with a context: fenced_set writes under the term."""
        a = workers.start("a", "--task", "tests.support.worker_tasks:fenced_writer")
        term = a.elected()["term"]
        client = redis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            assert f"a:{term}" == eventually(lambda: client.get("lp-test:{p}:owner"))
        finally:
            client.close()
        a.signal(signal.SIGTERM)
        assert 0 == a.wait()
        assert "task_stopped" in a.stderr


class TestFrozenLeader:
    @pytest.mark.parametrize("task", ["act_often", "act_often_in_a_thread"])
    def test_a_woken_task_does_not_act_after_its_renew_deadline(
        self, workers: Workers, tmp_path: Path, task: str
    ) -> None:
        """SIGSTOP of a leader whose task acts every few ms, past its lease (b takes over and acts),
        then SIGCONT: the task's own timer fires first on waking, and it must see the lead over by
        its renew deadline then, before the worker has heard it was revoked."""
        acts = {m: tmp_path / f"acts-{m}.jsonl" for m in "ab"}

        def start(member: str) -> WorkerProc:
            return workers.start(
                member, "--task", f"tests.support.worker_tasks:{task}", env={ACTS_FILE: str(acts[member])}
            )

        def recorded(member: str) -> list[dict[str, Any]]:
            path = acts[member]
            lines = path.read_text().split("\n")[:-1] if path.exists() else []  # whole lines only
            return [json.loads(line) for line in lines]

        a = start("a")
        a.elected()
        b = start("b")
        b.sees("a")
        eventually(lambda: len(recorded("a")) >= 3)  # a's task is acting
        a.signal(signal.SIGSTOP)
        try:
            assert 2 == b.elected()["term"]
            eventually(lambda: recorded("b"))  # the new leader acts while a is frozen
        finally:
            a.signal(signal.SIGCONT)
        assert 1 == a.wait_for(lambda e: e["event"] == "revoked")["term"]
        a.signal(signal.SIGTERM)
        assert 0 == a.wait()  # every act a's task made is in the file now
        rows = recorded("a")
        assert rows and {1} == {r["term"] for r in rows}
        assert [] == [r for r in rows if r["t"] >= r["deadline"]]  # no act once its lead had ended


class TestConfiguration:
    def test_flags_and_variables_reach_the_pool_record(self, workers: Workers, redis_server: RedisServer) -> None:
        """--node, --priority, --meta (and their variables) show in status; priority decides the leader."""
        a = workers.start("a", "--node", "n1", "--priority", "1", "--meta", "zone=eu", "--meta", "role=x", "--takeover")
        a.elected()
        b = workers.start_env(
            "b",
            {
                "LEADERPOOL_REDIS_URL": redis_server.url, "LEADERPOOL_POOL": "p", "LEADERPOOL_MEMBER_ID": "b",
                "LEADERPOOL_NODE": "n2", "LEADERPOOL_PRIORITY": "5", "LEADERPOOL_TTL": "1",
                "LEADERPOOL_TAKEOVER": "1", "LEADERPOOL_META": "zone=us",
            },
        )  # fmt: skip
        b.elected()  # b ranks higher (priority 5) and the leader a has --takeover
        assert "takeover" == a.wait_for(lambda e: e["event"] == "revoked")["reason"]
        done = cli("--redis", redis_server.url, "status", "--json")
        members = {m["member"]: m for m in json.loads(done.stdout)["pools"][0]["members"]}
        assert ("n1", 1, {"zone": "eu", "role": "x"}) == (
            members["a"]["node"], members["a"]["priority"], members["a"]["meta"],
        )  # fmt: skip
        assert ("n2", 5, {"zone": "us"}, True) == (
            members["b"]["node"], members["b"]["priority"], members["b"]["meta"], members["b"]["leader"],
        )  # fmt: skip


class TestRedisOutages:
    def test_redis_down_at_start_then_up(self, redis_binary: str) -> None:
        """The worker waits, logging why (retrying: its 10th failure is logged too), and joins and
        leads once Redis answers."""
        server = RedisServer(redis_binary, port=free_port())
        try:
            with workers_for(server.url) as workers:
                a = workers.start("a")
                b = workers.start("b")
                eventually(lambda: "redis_unavailable" in a.stderr and "failures=10" in a.stderr)
                eventually(lambda: "redis_unavailable" in b.stderr)  # b runs: its signals are handled
                assert None is a.proc.poll()
                assert [] == a.events
                b.signal(signal.SIGTERM)  # a kind stop works without Redis too
                assert 0 == b.wait()
                server.start()
                assert 1 == a.elected()["term"]
                a.signal(signal.SIGTERM)
                assert 0 == a.wait()
        finally:
            server.cleanup()

    def test_a_leader_cut_off_from_redis_steps_down_and_comes_back(
        self, workers: Workers, redis_server: RedisServer
    ) -> None:
        """Redis frozen: the leader revokes itself (lease_lost) and keeps running; once Redis
        answers again the pool elects a leader with a newer term."""
        a = workers.start("a")
        assert 1 == a.elected()["term"]
        redis_server.pause()
        try:
            assert "lease_lost" == a.wait_for(lambda e: e["event"] == "revoked")["reason"]
            assert None is a.proc.poll()
        finally:
            redis_server.resume()
        a.wait_for(lambda e: e["event"] == "elected" and e["term"] >= 2)


class TestAntiAffinity:
    def test_avoid_pool_moves_the_lead_off_the_busy_node(self, redis_server: RedisServer) -> None:
        """--avoid-pool db ranks down the node already leading pool db, even its oldest member:
        with --takeover the lead moves to the member on the other node once it joins."""
        with workers_for(redis_server.url, pool="db") as db, workers_for(redis_server.url) as ws:
            db.start("db1", "--node", "n1").elected()
            p1 = ws.start("p1", "--node", "n1", "--avoid-pool", "db", "--takeover")
            p1.elected()  # alone in the pool: a single node still elects
            p2 = ws.start("p2", "--node", "n2", "--avoid-pool", "db", "--takeover")
            assert 2 == p2.elected()["term"]
            assert "takeover" == p1.wait_for(lambda e: e["event"] == "revoked")["reason"]
