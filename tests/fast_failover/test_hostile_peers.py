"""Strangers at the liveness endpoint (issue 23): it is reachable by anyone who reaches the
process and has nothing to authenticate, so what one can cost the leader is bounded. Real worker
processes, real sockets, a real redis-server."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from leaderpool.backend.keys import Keyspace
from leaderpool.fast_failover.admission import PER_PEER
from leaderpool.fast_failover.endpoints import HELLO, split_endpoint
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.descriptors import RESERVE
from tests.fast_failover.test_fast_failover import history, record
from tests.support.worker_procs import PATIENCE, WorkerProc, Workers, clean_env, eventually, workers_for

FD_LIMIT = 256
"""The worker's open-files limit (soft and hard) in the descriptor test: low, so that it runs out fast."""


@pytest.fixture
def workers(redis_one: RedisServer) -> Iterator[Workers]:
    with workers_for(redis_one.url) as ws:
        yield ws


def endpoint_of(url: str, member: str) -> tuple[str, int]:
    found = split_endpoint(record(url, member)["liveness"])
    assert found is not None
    return found[0], found[1]


def closed_by_peer(sock: socket.socket, timeout: float = PATIENCE) -> bool:
    """Whether the other side closed ``sock`` (EOF or a reset) within ``timeout``; reads and
    drops what it says before that (its hello)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sock.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


def closed_among(socks: list[socket.socket], wanted: int, timeout: float = PATIENCE) -> int:
    """How many of ``socks`` the other side closed, waiting until ``wanted`` are or ``timeout``
    passes (their hellos are read and dropped)."""
    poller = select.poll()
    by_fd = {sock.fileno(): sock for sock in socks}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    closed = 0
    deadline = time.monotonic() + timeout
    while closed < wanted and time.monotonic() < deadline:
        for fd, _ in poller.poll(100):
            try:
                ended = not by_fd[fd].recv(4096, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:  # a reset
                ended = True
            if ended:
                closed += 1
                poller.unregister(fd)
    return closed


def stream_junk(address: tuple[str, int], until: float, sent: list[int]) -> None:
    """Connect and send junk as fast as the endpoint takes it, reconnecting whenever it closes."""
    junk = b"\xff" * 65536
    while time.monotonic() < until:
        try:
            with socket.create_connection(address, timeout=1.0) as sock:
                while time.monotonic() < until:
                    sent[0] += sock.send(junk)
        except OSError:
            time.sleep(0.001)


class TestJunk:
    def test_the_first_byte_ends_a_connection(self, workers: Workers, redis_one: RedisServer) -> None:
        """A peer that sends anything is closed at once: peers only listen."""
        workers.start("a", ttl="2").elected()
        with socket.create_connection(endpoint_of(redis_one.url, "a"), timeout=PATIENCE) as sock:
            assert sock.recv(len(HELLO)).startswith(HELLO.strip())
            sock.sendall(b"x")
            assert closed_by_peer(sock)

    def test_a_stranger_streaming_junk_does_not_unseat_the_leader(
        self, workers: Workers, redis_one: RedisServer
    ) -> None:
        """Two strangers stream junk at the leader's endpoint for 4 s (reconnecting whenever it
        closes them): the leader keeps its lead, in the same term, without a revocation."""
        a = workers.start("a", ttl="1")
        a.elected()
        address = endpoint_of(redis_one.url, "a")
        until = time.monotonic() + 4.0
        sent = [0]
        strangers = [threading.Thread(target=stream_junk, args=(address, until, sent)) for _ in range(2)]
        for t in strangers:
            t.start()
        for t in strangers:
            t.join(PATIENCE)
        assert sent[0] > 0
        assert [] == a.of("revoked"), a.of("revoked")
        assert [("elected", 1, "a", "")] == history(redis_one.url)
        assert a.alive()


class TestDescriptors:
    def test_idle_strangers_cannot_take_the_descriptors_redis_needs(
        self, workers: Workers, redis_one: RedisServer
    ) -> None:
        """Under an open-files limit of 256, strangers open more idle connections than it allows
        (more than the cap from one address, and from many): the ones over a cap or into the
        reserve are closed at once, and after its Redis connections are killed the leader
        reconnects and leads again."""
        args = ["--redis", redis_one.url, "--pool", "p", "--member-id", "a", "--ttl", "2", "--json-events"]
        launcher = ("prlimit", f"--nofile={FD_LIMIT}:{FD_LIMIT}")
        a = workers.group.add(WorkerProc(args, clean_env(), "a", launcher=launcher))
        a.elected()
        address = endpoint_of(redis_one.url, "a")
        held: list[socket.socket] = []
        try:
            for source in range(2, 10):  # 127.0.0.2 .. 127.0.0.9: many addresses, one machine
                count = PER_PEER + 16 if source == 2 else 50
                for _ in range(count):
                    sock = socket.socket()
                    sock.bind((f"127.0.0.{source}", 0))
                    sock.connect(address)
                    held.append(sock)
            closed = closed_among(held, wanted=len(held) - (FD_LIMIT - RESERVE))
            assert closed >= len(held) - (FD_LIMIT - RESERVE), (closed, len(held))
            assert len(held) >= FD_LIMIT  # more than the worker could have held at all
            admin = redis.Redis.from_url(redis_one.url)
            try:
                mine = admin.client_id()
                killed = admin.client_kill_filter(_type="normal", skipme=True)
                killed += admin.client_kill_filter(_type="pubsub", skipme=True)
                assert killed > 0
                keys = Keyspace("p")

                def leads_again() -> bool:
                    others = [c for c in admin.client_list() if int(c["id"]) != mine]
                    value = admin.get(keys.leader)
                    found = value.decode() if isinstance(value, bytes) else value
                    return bool(others) and found is not None and found.endswith("|a")

                eventually(leads_again)
            finally:
                admin.close()
            assert "Too many open files" not in a.stderr
        finally:
            for sock in held:
                with contextlib.suppress(OSError):
                    sock.close()
