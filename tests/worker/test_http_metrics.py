"""The worker's HTTP endpoints (``--http-port``) on real workers: health, the leader-only
readiness answer and Prometheus metrics, across a failover; the exposition parsed by
prometheus_client's own parser; a taken port refused at start."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from leaderpool import Lock, PoolClient
from leaderpool.metrics import disable_metrics, enable_metrics
from leaderpool.testing.redis_server import RedisServer, free_port
from tests.support.worker_procs import PATIENCE, WorkerProc, Workers, eventually, workers_for

SLOT_TASK = "tests.support.schedule_tasks:record_slot"


@pytest.fixture
def workers(redis_server: RedisServer) -> Iterator[Workers]:
    with workers_for(redis_server.url) as ws:
        yield ws


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, parsed by prometheus_client's parser, by name and labels."""
    status, text = get(port, "/metrics")
    assert 200 == status
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(port: int, name: str, **labels: str) -> float | None:
    return samples(port).get((name, tuple(sorted(labels.items()))))


def start(workers: Workers, member: str) -> tuple[WorkerProc, int]:
    port = free_port()
    return workers.start(member, "--http-port", str(port)), port


def test_endpoints_follow_a_failover(workers: Workers) -> None:
    a, port_a = start(workers, "a")
    a.elected()
    b, port_b = start(workers, "b")
    b.sees("a")
    eventually(lambda: get(port_b, "/healthz")[0] == 200)

    status, body = get(port_a, "/leader")
    assert (200, {"pool": "p", "member": "a", "leader": "a", "term": 1}) == (status, json.loads(body))
    status, body = get(port_b, "/leader")
    assert (503, "a") == (status, json.loads(body)["leader"])
    health = json.loads(get(port_b, "/healthz")[1])
    assert ("ok", "follower") == (health["status"], health["role"])
    assert 1 == value(port_a, "leaderpool_is_leader", pool="p", member="a")
    assert 1 == value(port_a, "leaderpool_elections_won_total", pool="p", member="a")
    assert 0 == (value(port_b, "leaderpool_is_leader", pool="p", member="b") or 0)
    assert 1 == value(port_b, "leaderpool_term", pool="p", member="b")  # the leader's term, as b sees it
    eventually(lambda: value(port_a, "leaderpool_renew_latency_seconds_count", pool="p", member="a"))

    a.signal(signal.SIGKILL)
    b.elected()
    eventually(lambda: get(port_b, "/leader")[0] == 200)
    assert 1 == value(port_b, "leaderpool_is_leader", pool="p", member="b")
    assert 2 == value(port_b, "leaderpool_term", pool="p", member="b")
    assert 1 == value(port_b, "leaderpool_elections_won_total", pool="p", member="b")
    assert 1 == value(port_b, "leaderpool_failover_seconds_count", pool="p")
    assert value(port_b, "leaderpool_live_members", pool="p", member="b") in (1, 2)

    # a kind hand-over back: the successor counts it as a hand-over, the leaver its revocation
    c, port_c = start(workers, "c")
    c.sees("b")
    b.signal(signal.SIGTERM)
    c.elected()
    assert 0 == b.wait()
    assert 1 == value(port_c, "leaderpool_handover_seconds_count", pool="p")
    assert value(port_c, "leaderpool_notification_lag_seconds_count", pool="p") in (0, 1)
    assert 3 == value(port_c, "leaderpool_term", pool="p", member="c")


def test_task_crash_is_counted_and_health_stays_ok(workers: Workers) -> None:
    port = free_port()
    a = workers.start("a", "--http-port", str(port), "--task", "tests.support.worker_tasks:crash_soon")
    a.wait_for(lambda e: e["event"] == "revoked" and e["reason"] == "task_failed")
    eventually(lambda: value(port, "leaderpool_task_crashes_total", pool="p", member="a"))
    assert 1 <= (value(port, "leaderpool_revocations_total", pool="p", member="a", reason="task_failed") or 0)
    assert 200 == get(port, "/healthz")[0]


def healthz(port: int) -> int | None:
    """/healthz's status; None when the connection was closed without an answer (the server full)."""
    try:
        return get(port, "/healthz")[0]
    except OSError:
        return None


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_half_sent_requests_do_not_pile_up_threads(workers: Workers) -> None:
    """300 connections that send half a request and wait: the worker's threads stay a fixed
    pool, the extra connections are closed, and /healthz answers once they time out."""
    a, port = start(workers, "a")
    a.elected()
    eventually(lambda: get(port, "/healthz")[0] == 200)
    before = threads(a.pid)
    stalled = []
    try:
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
            with contextlib.suppress(OSError):  # the worker may have closed it already
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            stalled.append(sock)
        time.sleep(1.0)  # let a thread-per-connection server start its threads (none are to come)
        assert threads(a.pid) <= before + 4, (before, threads(a.pid))
        eventually(lambda: healthz(port) == 200)  # the stalled ones time out and make way
    finally:
        for sock in stalled:
            sock.close()


def test_a_taken_port_is_one_line_and_exit_2(workers: Workers) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        a = workers.start("a", "--http-port", str(port))
        assert 2 == a.wait()
    assert f"leaderpool-worker: error: --http-port: cannot listen on 127.0.0.1:{port}" in a.stderr
    assert 1 == len(a.stderr.strip().splitlines()) and "Traceback" not in a.stderr


def test_jobs_and_schedules_are_counted(workers: Workers, tmp_path: Path, redis_server: RedisServer) -> None:
    """A worker with a handler counts the jobs it settles; one with a schedule counts its slots."""
    port = free_port()
    env = {"JOBS_RECORD_DIR": str(tmp_path), "LEADERPOOL_TEST_RUNS_FILE": str(tmp_path / "runs.jsonl")}
    a = workers.start("a", "--http-port", str(port), "--handler", "tests.support.jobs_handlers:record", env=env)
    a.elected()
    with PoolClient("p", redis_server.url) as pool:
        for n in range(3):
            pool.submit({"n": n})
    eventually(lambda: value(port, "leaderpool_jobs_total", pool="p", outcome="done") == 3)

    sched_port = free_port()
    sched = Workers(redis_server.url, "s")
    try:
        s = sched.start(
            "s1",
            "--http-port",
            str(sched_port),
            "--task",
            "tests.support.schedule_tasks:record_slot",
            "--every",
            "0.2",
            env=env,
        )
        s.elected()
        eventually(lambda: (value(sched_port, "leaderpool_schedule_slots_total", pool="s", schedule=SLOT_TASK,
                                  outcome="ok") or 0) >= 2)  # fmt: skip
    finally:
        sched.cleanup()


def test_locks_are_counted_in_an_applications_registry(redis_server: RedisServer) -> None:
    """The library's collectors in an application's own registry: a lock taken is counted, with
    its wait."""
    registry = CollectorRegistry()
    enable_metrics(registry)
    try:
        client = redis.Redis.from_url(redis_server.url)
        with Lock(client, "metrics-test", ttl_s=5):
            pass
        client.close()
        assert 1 == registry.get_sample_value("leaderpool_locks_total", {"outcome": "acquired"})
        assert 1 == registry.get_sample_value("leaderpool_lock_wait_seconds_count")
    finally:
        disable_metrics(registry)
