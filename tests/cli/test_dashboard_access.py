"""Who may use the dashboard (issue 23): the Host check, the token, the cap on event streams;
and one key that is not leaderpool's does not break its views. A real dashboard process, real
worker processes, a real redis-server."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
from aiohttp.test_utils import make_mocked_request

from leaderpool.cli.dashboard.access import COOKIE, Access
from leaderpool.testing.redis_server import RedisServer
from tests.support.dashboard_procs import SseReader, leaders, request, start_dashboard, status_with
from tests.support.worker_procs import PATIENCE, Workers, workers_for
from tests.support.worker_procs import cli as run_cli

TOKEN = "s3cret-token-0123456789"
ACTION = {"X-Leaderpool-Action": "1"}
FOREIGN_KEY = "leaderpool:{bad pool}:members"


@pytest.fixture
def workers(redis_one: RedisServer) -> Iterator[Workers]:
    with workers_for(redis_one.url) as ws:
        yield ws


def status_of(access: Access, host: str, headers: dict[str, str] | None = None, path: str = "/api/status") -> int:
    """What ``access`` answers to a request (0: served)."""
    refused = access.refusal(make_mocked_request("GET", path, headers={"Host": host, **(headers or {})}))
    return 0 if refused is None else refused.status


class TestHost:
    def test_a_name_it_does_not_answer_to_is_refused_wherever_it_listens(self) -> None:
        """A DNS-rebinding page names its own host: refused on loopback and off it; loopback
        names, addresses and the names allowed are served."""
        on_loopback = Access("127.0.0.1")
        off_loopback = Access("0.0.0.0", TOKEN, ["dash.example.com"])
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        for access in (on_loopback, off_loopback):
            assert 421 == status_of(access, "evil.example:8765", bearer)
        assert 0 == status_of(on_loopback, "localhost:8765")
        for host in ("10.0.0.5:8765", "[fd00::5]:8765", "dash.example.com:8765", "127.0.0.1"):
            assert 0 == status_of(off_loopback, host, bearer), host


class TestToken:
    def test_off_loopback_without_a_token_it_refuses_to_start(self, redis_one: RedisServer) -> None:
        done = run_cli("--redis", redis_one.url, "dashboard", "--host", "0.0.0.0", "--port", "0", timeout=PATIENCE)
        assert 2 == done.returncode
        assert "argument --host: 0.0.0.0 is not a loopback address: the dashboard needs a token" in done.stderr
        assert 1 == len(done.stderr.strip().splitlines()), done.stderr

    def test_a_short_token_is_refused(self, redis_one: RedisServer) -> None:
        done = run_cli("--redis", redis_one.url, "dashboard", "--port", "0", "--token", "short", timeout=PATIENCE)
        assert 2 == done.returncode
        assert "argument --token: must be at least 16 characters (got 5)" in done.stderr

    def test_with_a_token_every_request_needs_it(self, workers: Workers, redis_one: RedisServer) -> None:
        """A bearer header or the cookie that ``/?token=`` sets; a wrong or missing token is 401,
        for reads, the stream and actions alike."""
        workers.start("a").elected()
        with start_dashboard(redis_one.url, "--allow-actions", env={"LEADERPOOL_DASHBOARD_TOKEN": TOKEN}) as dash:
            base = dash.base
            assert 401 == request(base, "GET", "/api/status").status
            assert 401 == request(base, "GET", "/api/events").status
            assert 401 == request(base, "GET", "/").status
            assert 401 == request(base, "GET", "/api/status", {"Authorization": "Bearer wrong-token-0123456"}).status
            assert 401 == request(base, "POST", "/api/pools/p/resign", ACTION).status
            served = request(base, "GET", "/api/status", {"Authorization": f"Bearer {TOKEN}"})
            assert ("a", 1) == leaders(served.json())["p"]
            entry = request(base, "GET", f"/?token={TOKEN}")
            assert (303, "/") == (entry.status, entry.headers["location"])
            cookie = entry.headers["set-cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            jar = {"Cookie": f"{COOKIE}={TOKEN}"}
            assert 200 == request(base, "GET", "/", jar).status
            stream = SseReader(base, headers=jar)
            try:
                stream.wait_for(status_with("p", "a"))
            finally:
                stream.close()
            assert 401 == request(base, "GET", "/?token=wrong-token-0123456").status


def open_stream(base: str) -> tuple[socket.socket, int]:
    """A raw event-stream request that never reads past the status line: (socket, status)."""
    parts = urlsplit(base)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=PATIENCE)
    sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(64)
        if not chunk:
            break
        head += chunk
    return sock, int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0


class TestStreams:
    def test_event_streams_beyond_the_cap_are_503(self, redis_one: RedisServer) -> None:
        """--max-streams 5: the sixth stream is 503, and the rest of the API is served."""
        with start_dashboard(redis_one.url, "--max-streams", "5") as dash:
            held: list[socket.socket] = []
            try:
                for _ in range(5):
                    sock, code = open_stream(dash.base)
                    held.append(sock)
                    assert 200 == code
                sock, code = open_stream(dash.base)
                held.append(sock)
                assert 503 == code
                assert 200 == request(dash.base, "GET", "/api/status").status  # the rest is served
            finally:
                for sock in held:
                    with contextlib.suppress(OSError):
                        sock.close()

    def test_connections_beyond_the_cap_are_closed(self, redis_one: RedisServer) -> None:
        """Idle connections past the cap (the default streams plus the others) are closed as they come."""
        from leaderpool.cli.dashboard.server import MAX_CONNECTIONS, MAX_STREAMS

        with start_dashboard(redis_one.url) as dash:
            parts = urlsplit(dash.base)
            held: list[socket.socket] = []
            try:
                for _ in range(MAX_CONNECTIONS + MAX_STREAMS + 20):
                    held.append(socket.create_connection((parts.hostname or "", parts.port or 0), timeout=PATIENCE))
                closed = 0
                for sock in held:
                    sock.settimeout(0.05)
                    try:
                        closed += sock.recv(1) == b""
                    except TimeoutError:
                        pass
                    except ConnectionResetError:
                        closed += 1
                assert closed >= 20, closed
            finally:
                for sock in held:
                    sock.close()


class TestForeignKeys:
    def test_a_key_that_is_not_leaderpools_is_skipped_and_reported(
        self, workers: Workers, redis_one: RedisServer
    ) -> None:
        """``leaderpool:{bad pool}:members``: status lists the pools and names the key (exit 0),
        /api/status too; the stream reports it, and goes on once it is deleted."""
        workers.start("a").elected()
        admin = redis.Redis.from_url(redis_one.url)
        try:
            with start_dashboard(redis_one.url) as dash:
                stream = SseReader(dash.base)
                try:
                    stream.wait_for(status_with("p", "a"))
                    since = stream.mark()
                    admin.hset(FOREIGN_KEY, "x", "y")
                    done = run_cli("--redis", redis_one.url, "status")
                    assert 0 == done.returncode, done.stderr
                    assert "pool p: leader a" in done.stdout
                    assert f"1 key(s) skipped, not leaderpool's: '{FOREIGN_KEY}'" in done.stdout
                    served = request(dash.base, "GET", "/api/status")
                    assert 200 == served.status, served.body
                    assert {"count": 1, "keys": [FOREIGN_KEY]} == served.json()["foreign_keys"]
                    assert ("a", 1) == leaders(served.json())["p"]
                    stream.wait_for(lambda e: e.kind == "status" and "foreign_keys" in e.data, since=since)
                    since = stream.mark()
                    admin.delete(FOREIGN_KEY)
                    stream.wait_for(lambda e: e.kind == "status" and "foreign_keys" not in e.data, since=since)
                    since = stream.mark()
                    workers.start("b").sees("a")
                    stream.wait_for(
                        lambda e: e.kind == "status" and any(m["member"] == "b" for m in e.data["pools"][0]["members"]),
                        since=since,
                    )
                finally:
                    stream.close()
        finally:
            admin.close()
