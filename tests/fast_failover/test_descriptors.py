"""Low descriptor slots (:mod:`leaderpool.fast_failover.descriptor_slots`): a process SIGKILLed with a connection
moved low releases its later sockets (its Redis connections) before that one, so a peer that
reads the low connection's close can count on the others being closed already."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from leaderpool.fast_failover import descriptor_slots

_CHILD = r"""
import socket, sys
from leaderpool.fast_failover import descriptor_slots
descriptor_slots.reserve()
redis_like = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
others = [socket.socketpair() for _ in range(100)]  # releases between the two, as a real process has
link = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
moved = descriptor_slots.move_low(link)
assert moved is not link and moved.fileno() < redis_like.fileno(), (moved.fileno(), redis_like.fileno())
moved.sendall(b"x")
import time; time.sleep(60)
"""


@pytest.fixture
def listeners() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.socket() as a, socket.socket() as b:
        for s in (a, b):
            s.bind(("127.0.0.1", 0))
            s.listen()
        yield a, b


def killed_child_order(redis_side: socket.socket, link_side: socket.socket) -> bool:
    """SIGKILL a child holding a Redis-like connection and a liveness connection moved low: is the
    Redis-like one closed by the time the liveness one reads its close?"""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(redis_side.getsockname()[1]), str(link_side.getsockname()[1])]
    )
    try:
        r, _ = redis_side.accept()
        link, _ = link_side.accept()
        with r, link:
            assert b"x" == link.recv(1)
            child.send_signal(signal.SIGKILL)
            assert b"" == link.recv(1)
            r.setblocking(False)
            try:
                return b"" == r.recv(1)
            except BlockingIOError:
                return False
    finally:
        child.kill()
        child.wait()


def test_a_killed_process_closes_its_low_connection_after_the_others(
    listeners: tuple[socket.socket, socket.socket],
) -> None:
    """Five kills: each time the liveness connection's close comes after the Redis one's (with
    the connection left high, the order is the other way round most of the time)."""
    assert [True] * 5 == [killed_child_order(*listeners) for _ in range(5)]


def test_move_low_then_close_frees_the_slot_and_closes_the_connection() -> None:
    descriptor_slots.reserve()
    free = descriptor_slots.free_slots()
    assert free > 0
    ours, peer = socket.socketpair()
    try:
        moved = descriptor_slots.move_low(ours)
        assert moved is not ours and ours.fileno() == -1  # the old descriptor is closed
        assert os.readlink(f"/proc/self/fd/{moved.fileno()}").startswith("socket:")
        assert free - 1 == descriptor_slots.free_slots()
        moved.sendall(b"ping")
        assert b"ping" == peer.recv(4)
        slot = moved.fileno()
        descriptor_slots.close(moved)
        assert b"" == peer.recv(1)  # closed for the peer
        assert os.devnull == os.readlink(f"/proc/self/fd/{slot}")  # the slot holds the placeholder again
        assert free == descriptor_slots.free_slots()
    finally:
        peer.close()


def test_without_a_free_slot_a_connection_stays_where_it_is() -> None:
    descriptor_slots.reserve()
    pairs = [socket.socketpair() for _ in range(descriptor_slots.free_slots() + 1)]
    moved = [descriptor_slots.move_low(a) for a, _ in pairs]
    try:
        assert 0 == descriptor_slots.free_slots()
        assert moved[-1] is pairs[-1][0]  # none left: unchanged
        assert all(m is not a for m, (a, _) in zip(moved[:-1], pairs[:-1], strict=True))
    finally:
        for m in moved:
            descriptor_slots.close(m)
        for _, b in pairs:
            b.close()
    assert len(pairs) - 1 == descriptor_slots.free_slots()
