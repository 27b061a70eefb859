"""TLS with a CA file and a client certificate (``rediss://...?ssl_ca_certs=...&ssl_certfile=...``):
the worker (its election, its watcher's own connection, its start-up check) and the CLI work
against a redis-server serving TLS only and requiring client certificates; a wrong CA is one
line and exit 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.tls_certs import TlsFiles, TlsRedisServer, make_tls_files, serves_tls
from tests.support.worker_procs import cli, workers_for


@pytest.fixture
def tls(redis_binary: str, tmp_path: Path) -> Iterator[tuple[TlsRedisServer, TlsFiles]]:
    if not serves_tls(redis_binary):
        pytest.skip(f"{redis_binary} was built without TLS (Debian's /usr/bin/redis-server has it)")
    files = make_tls_files(tmp_path)
    server = TlsRedisServer(redis_binary, files).start()
    try:
        yield server, files
    finally:
        server.cleanup()


def test_worker_failover_and_cli_over_tls(tls: tuple[TlsRedisServer, TlsFiles]) -> None:
    """Two workers elect and fail over on a TLS-only server; their watcher (its own connection)
    turned keyspace events on there; ``status`` and ``status --watch`` read the pool over TLS."""
    server, files = tls
    url = files.url(server.port)
    with redis.Redis.from_url(url) as admin:
        assert "" == admin.config_get("notify-keyspace-events")["notify-keyspace-events"]
        with workers_for(url) as ws:
            a = ws.start("a")
            a.elected()
            b = ws.start("b")
            b.sees("a")
            flags = admin.config_get("notify-keyspace-events")["notify-keyspace-events"]
            assert set("Kg$x") <= set(flags), flags  # set by the watcher, over its own TLS connection
            a.kill()
            b.elected()
            done = cli("--redis", url, "status", "--json")
            assert 0 == done.returncode, done.stderr
            assert ["b"] == [p["leader"]["member"] for p in json.loads(done.stdout)["pools"]]
            watched = cli("--redis", url, "status", "--watch", "--count", "1")
            assert 0 == watched.returncode and "leader b" in watched.stdout, watched.stderr
            assert "watcher_disconnected" not in b.stderr and "keyspace_events_unavailable" not in b.stderr


def test_a_wrong_ca_is_one_line_and_exit_2(tls: tuple[TlsRedisServer, TlsFiles]) -> None:
    """A CA that did not sign the server's certificate: the worker and the CLI say the TLS
    handshake failed, in one line, exit 2; so does a missing client certificate."""
    server, files = tls
    for url in (files.url(server.port, ca=files.other_ca), files.url(server.port, client=False)):
        with workers_for(url) as ws:
            worker = ws.start("a")
            assert 2 == worker.wait()
            lines = worker.stderr.strip().splitlines()
            assert 1 == len(lines) and "the TLS handshake failed" in lines[0], worker.stderr
        done = cli("--redis", url, "status")
        assert 2 == done.returncode, done.stderr
        assert 1 == len(done.stderr.splitlines()) and "the TLS handshake failed" in done.stderr
