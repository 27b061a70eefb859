"""The test fixture's redis-server (:mod:`leaderpool.testing.redis_server`): a port it chose and
lost to another process before binding it is chosen again, a port given to it is not."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from leaderpool.errors import LeaderpoolError
from leaderpool.testing.redis_server import RedisServer, free_port


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other process holds (a listener here)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_a_chosen_port_taken_meanwhile_is_chosen_again(taken_port: int) -> None:
    ports = iter([taken_port, free_port()])
    with RedisServer(choose_port=lambda: next(ports)) as server:
        assert server.port != taken_port and server._ping()


def test_a_given_port_that_is_taken_fails_with_the_log_to_read(taken_port: int) -> None:
    server = RedisServer(port=taken_port)
    try:
        with pytest.raises(LeaderpoolError, match="exited at start"):
            server.start()
    finally:
        server.cleanup()
