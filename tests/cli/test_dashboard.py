"""leaderpool-cli dashboard end to end: its API across a real failover (SIGKILL of the leader),
the guarded actions, a lost Redis, a port that is taken, and a slow browser next to a fast one;
against a real redis-server with real worker processes.

The dashboard reads Redis only through the status, history and watch code the CLI is tested
with on every redis-server version; these tests run on the first one found, to keep the suite
short.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from leaderpool.backend.keys import Keyspace
from leaderpool.backend.pool_store import PoolStore
from leaderpool.console.oneshot import Blocking, run
from leaderpool.members import MemberInfo
from leaderpool.testing.redis_server import RedisServer, free_port
from tests.support.dashboard_procs import Event, SseReader, leaders, request, start_dashboard, status_with
from tests.support.worker_procs import PATIENCE, ROOT, Workers, clean_env, workers_for
from tests.support.worker_procs import cli as run_cli

TTL_S = 1.0
ACTION = {"X-Leaderpool-Action": "1"}


@pytest.fixture
def workers(redis_one: RedisServer) -> Iterator[Workers]:
    with workers_for(redis_one.url) as ws:
        yield ws


def three_workers(workers: Workers) -> None:
    """a, b and c (lease 1 s) with a leading; b is next in line (the older follower)."""
    workers.start("a", "--meta", "zone=eu-1").elected()
    workers.start("b").sees("a")
    workers.start("c").sees("a")


def without_leases(doc: Any) -> Any:
    """A status document without what counts down (lease_ms), to compare two reads."""
    if isinstance(doc, dict):
        return {k: without_leases(v) for k, v in doc.items() if k != "lease_ms"}
    if isinstance(doc, list):
        return [without_leases(v) for v in doc]
    return doc


class TestApiAcrossAFailover:
    def test_status_events_and_history_follow_a_sigkill(self, workers: Workers, redis_one: RedisServer) -> None:
        """/api/status is status --json; after SIGKILL of the leader an SSE event and /api/status
        show the new leader within the lease plus a second; /api/pools/P/history is history --json."""
        three_workers(workers)
        dash = start_dashboard(redis_one.url)
        with dash:
            base = dash.base
            page = request(base, "GET", "/")
            assert (200, "text/html; charset=utf-8") == (page.status, page.headers["content-type"])
            assert b'src="/static/app.js"' in page.body
            for name in ("app.js", "style.css"):
                assert 200 == request(base, "GET", f"/static/{name}").status

            api = request(base, "GET", "/api/status")
            assert 200 == api.status
            cli_status = json.loads(run_cli("--redis", redis_one.url, "status", "--json").stdout)
            assert without_leases(cli_status) == without_leases(api.json())
            assert {"p": ("a", 1)} == leaders(api.json())

            stream = SseReader(base)
            try:
                assert stream.content_type.startswith("text/event-stream")
                stream.wait_for(lambda e: e.kind == "redis" and e.data == {"state": "ok"})
                stream.wait_for(status_with("p", "a"))
                since = stream.mark()
                killed_at = workers.started[0].kill()
                seen = stream.wait_for(status_with("p", "b"), since=since)
                assert seen.at - killed_at <= TTL_S + 1.0, f"SSE showed b {seen.at - killed_at:.2f}s after the kill"
                after = request(base, "GET", "/api/status")
                assert time.time() - killed_at <= TTL_S + 1.0
                assert ("b", 2) == leaders(after.json())["p"]
                assert ["b", "c"] == [m["member"] for m in after.json()["pools"][0]["members"]]
            finally:
                stream.close()

            history = request(base, "GET", "/api/pools/p/history")
            cli_history = json.loads(run_cli("--redis", redis_one.url, "history", "p", "--json").stdout)
            assert cli_history == history.json()
            transitions = history.json()["transitions"]
            # fast failover (on by default): a's death is confirmed and its lead removed, not left to expire
            assert [("elected", "a"), ("released", "a"), ("elected", "b")] == [
                (t["event"], t["member"]) for t in transitions
            ]
            assert "process_died" == transitions[1]["reason"]
            assert 400 == request(base, "GET", "/api/pools/p/history?count=0").status
            assert 400 == request(base, "GET", "/api/pools/b%20ad/history").status

            refused = request(base, "POST", "/api/pools/p/resign", ACTION)
            assert 403 == refused.status
            assert "--allow-actions" in refused.json()["error"]
            assert 403 == request(base, "POST", "/api/pools/p/members/b/evict", ACTION).status
            assert ("b", 2) == leaders(request(base, "GET", "/api/status").json())["p"]


class TestActions:
    def test_actions_need_the_header_and_their_own_origin_and_resign_hands_over(
        self, workers: Workers, redis_one: RedisServer
    ) -> None:
        """Without X-Leaderpool-Action, or with a foreign Origin: 403; with both right, resign hands
        over and evict removes a member; no CORS is ever granted; a foreign Host is refused."""
        three_workers(workers)
        with start_dashboard(redis_one.url, "--allow-actions") as dash:
            base = dash.base
            own = base  # http://127.0.0.1:PORT, as a browser on the page sends it
            assert 403 == request(base, "POST", "/api/pools/p/resign").status
            assert 403 == request(base, "POST", "/api/pools/p/resign", {"X-Leaderpool-Action": "yes"}).status
            foreign = request(base, "POST", "/api/pools/p/resign", {**ACTION, "Origin": "http://evil.example"})
            assert 403 == foreign.status
            assert "cross-site" in foreign.json()["error"]
            assert 403 == request(base, "POST", "/api/pools/p/resign", {**ACTION, "Origin": "null"}).status
            preflight = request(
                base,
                "OPTIONS",
                "/api/pools/p/resign",
                {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
            )
            assert preflight.status >= 400
            assert not [h for h in preflight.headers if h.startswith("access-control-")]
            rebound = request(base, "GET", "/api/status", {"Host": "evil.example:80"})
            assert 421 == rebound.status
            assert ("a", 1) == leaders(request(base, "GET", "/api/status").json())["p"]

            done = request(base, "POST", "/api/pools/p/resign", {**ACTION, "Origin": own})
            assert 200 == done.status, done.body
            assert done.json()["ok"] is True
            assert "pool p: a (term 1) handed over to b (term 2)" in done.json()["message"]
            assert ("b", 2) == leaders(request(base, "GET", "/api/status").json())["p"]

            evicted = request(base, "POST", "/api/pools/p/members/c/evict", ACTION)
            assert 200 == evicted.status, evicted.body
            assert evicted.json()["message"].startswith("evicted c from pool p")
            missing = request(base, "POST", "/api/pools/p/members/zz/evict", ACTION)
            assert (409, "zz is not a member of pool p") == (missing.status, missing.json()["error"])
            assert 409 == request(base, "POST", "/api/pools/nopool/resign", ACTION).status
            assert 400 == request(base, "POST", "/api/pools/p/members/b%20x/evict", ACTION).status
            assert "dashboard_action_done" in dash.stderr


class TestRedisState:
    def test_a_lost_redis_is_an_event_and_so_is_its_return(self, workers: Workers, redis_one: RedisServer) -> None:
        """The stream says when the server lost Redis, and when it is back (with a fresh status);
        /api/status answers 503 meanwhile."""
        workers.start("a").elected()
        with start_dashboard(redis_one.url) as dash:
            stream = SseReader(dash.base)
            try:
                stream.wait_for(status_with("p", "a"))
                since = stream.mark()
                redis_one.stop()
                lost = stream.wait_for(lambda e: e.kind == "redis" and e.data["state"] == "lost", since=since)
                assert lost.data["error"]
                assert 503 == request(dash.base, "GET", "/api/status").status
                since = stream.mark()
                redis_one.start()
                stream.wait_for(lambda e: e.kind == "redis" and e.data == {"state": "ok"}, since=since)
                stream.wait_for(lambda e: e.kind == "status", since=since)
                stream.wait_for(status_with("p", "a"), since=since)  # the worker registered again
            finally:
                stream.close()
            assert "dashboard_redis_lost" in dash.stderr


class TestCommandLine:
    def test_a_taken_port_is_one_line_and_exit_2(self, redis_one: RedisServer) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            done = run_cli("--redis", redis_one.url, "dashboard", "--port", str(port))
        assert 2 == done.returncode
        assert f"leaderpool-cli: error: argument --port: 127.0.0.1:{port} is already in use" in done.stderr
        assert 1 == len(done.stderr.strip().splitlines()), done.stderr

    @pytest.mark.parametrize(
        ("args", "line"),
        [
            (["--port", "70000"], "argument --port: must be a port from 0 to 65535, got '70000'"),
            (["--port", "x"], "argument --port: must be an integer, got 'x'"),
            (
                ["--host", "192.0.2.1", "--port", "0", "--token", "t" * 16],
                "argument --host: cannot listen on 192.0.2.1:0",
            ),
        ],
    )
    def test_bad_flags_are_one_line_and_exit_2(self, redis_one: RedisServer, args: list[str], line: str) -> None:
        done = run_cli("--redis", redis_one.url, "dashboard", *args)
        assert 2 == done.returncode
        assert line in done.stderr
        assert 1 == len(done.stderr.strip().splitlines()), done.stderr

    def test_an_unreachable_redis_at_start_is_one_line_and_exit_1(self) -> None:
        url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
        done = run_cli("--redis", url, "dashboard", "--port", "0")
        assert 1 == done.returncode
        assert f"leaderpool-cli: error: cannot reach Redis at {url}" in done.stderr
        assert 1 == len(done.stderr.strip().splitlines()), done.stderr

    def test_without_aiohttp_it_says_what_to_install(self, redis_one: RedisServer) -> None:
        code = "import sys; sys.modules['aiohttp'] = None; from leaderpool.cli.main import main; sys.exit(main())"
        done = subprocess.run(
            [sys.executable, "-c", code, "--redis", redis_one.url, "dashboard"],
            capture_output=True, text=True, timeout=60, cwd=ROOT, env=clean_env(),
        )  # fmt: skip
        assert 2 == done.returncode
        assert "pip install 'leaderpool[dashboard]'" in done.stderr
        assert 1 == len(done.stderr.strip().splitlines()), done.stderr

    def test_sigterm_stops_it_with_exit_0(self, redis_one: RedisServer) -> None:
        dash = start_dashboard(redis_one.url)
        with dash:
            stream = SseReader(dash.base)
            try:
                stream.wait_for(lambda e: e.kind == "redis")
                dash.terminate()
                assert 0 == dash.wait(PATIENCE)
                assert stream.ended.wait(PATIENCE)  # an open stream does not hold the shutdown up
            finally:
                stream.close()


BIG_META = {"notes": "x" * 3500}
"""Makes each status event large, so that a browser that does not read falls behind fast."""


class TestSlowBrowser:
    def test_a_slow_browser_is_dropped_and_never_stalls_another(self, workers: Workers, redis_one: RedisServer) -> None:
        """A client that never reads its stream is dropped once its queue is full; meanwhile a
        reading client sees every change, and then a failover, in time."""
        workers.start("a").elected()
        workers.start("b").sees("a")
        dash = start_dashboard(redis_one.url)
        sync = redis.Redis.from_url(redis_one.url)
        store = PoolStore(Blocking(sync), Keyspace("p"))
        with dash:
            base = dash.base
            slow = socket.socket()
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # before connect: a small window
            slow.connect(("127.0.0.1", int(base.rsplit(":", 1)[1])))
            slow.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
            fast = SseReader(base)
            try:
                fast.wait_for(status_with("p", "a"))
                for i in range(8):  # members with big records: every event is ~30 KB
                    run(store.register(fake_member(f"big{i}"), ttl_ms=120_000))
                changes = 0
                while "dashboard_client_dropped" not in dash.stderr:
                    assert changes < 400, "the slow client was never dropped"
                    since = fast.mark()
                    name = f"churn{changes}"
                    run(store.register(fake_member(name), ttl_ms=120_000))
                    fast.wait_for(shows_member(name), since=since)
                    run(store.leave(name, "left"))
                    changes += 1
                since = fast.mark()
                killed_at = workers.started[0].kill()
                seen = fast.wait_for(status_with("p", "b"), since=since)
                assert seen.at - killed_at <= TTL_S + 1.0
                assert not fast.ended.is_set()
                assert 200 == request(base, "GET", "/api/status").status
            finally:
                fast.close()
                slow.close()
                sync.close()


def fake_member(name: str) -> MemberInfo:
    """A member record with a big metadata field (written by the store's own register script)."""
    return MemberInfo(name, node="vm", host="vm", pid=1, priority=-1, started_at_ms=0, meta=BIG_META)


def shows_member(name: str) -> Callable[[Event], bool]:
    return lambda e: e.kind == "status" and any(m["member"] == name for p in e.data["pools"] for m in p["members"])


class TestSameBytesAsTheCli:
    def test_api_status_and_history_are_the_cli_json_byte_for_byte(self, redis_one: RedisServer) -> None:
        """Documented as exactly ``status --json`` and ``history POOL --json``: the same bytes,
        whitespace and last newline included (on pools with nothing counting down)."""
        ws = Workers(redis_one.url, pool="left")
        try:
            a = ws.start("a")
            a.elected()
            a.signal(signal.SIGTERM)
            assert 0 == a.wait()  # left cleanly: its term and history remain, nothing counts down
        finally:
            ws.cleanup()
        assert 0 == run_cli("--redis", redis_one.url, "submit", "--create", "queued", '{"n": 1}').returncode
        dash = start_dashboard(redis_one.url)
        with dash:
            for path, argv in (
                ("/api/status", ["status", "--json"]),
                ("/api/status?all=1", ["status", "--json", "--all"]),
                ("/api/pools/left/history", ["history", "left", "--json"]),
            ):
                api = request(dash.base, "GET", path)
                cli = run_cli("--redis", redis_one.url, *argv)
                assert (200, 0) == (api.status, cli.returncode), cli.stderr
                assert cli.stdout.encode() == api.body, path
