"""The dashboard's server in this process, on a real redis-server and real sockets: idle streams
get keep-alive comments and a browser that vanished is let go; and the host checks that guard
against DNS rebinding."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest
import redis
from aiohttp import web

from leaderpool.backend.clients import async_client
from leaderpool.cli.dashboard import server
from leaderpool.cli.dashboard.access import host_name, is_loopback
from leaderpool.cli.dashboard.server import Dashboard
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.timeouts import within
from tests.support.worker_procs import PATIENCE


async def _until(predicate: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + PATIENCE
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} within {PATIENCE}s")
        await asyncio.sleep(0.02)


def test_idle_streams_get_keep_alives_and_a_vanished_browser_is_let_go(
    redis_one: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle stream carries a ``: keep-alive`` comment every KEEPALIVE_S; a browser that went
    away without a word is noticed at the next one and unsubscribed."""
    monkeypatch.setattr(server, "KEEPALIVE_S", 0.2)

    async def scenario() -> None:
        client = async_client(redis_one.url)
        blocking = redis.Redis.from_url(redis_one.url)
        dash = Dashboard(
            client, blocking, "leaderpool", host="127.0.0.1", allow_actions=False, redis_shown=redis_one.url
        )
        runner = web.AppRunner(dash.app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            port = runner.addresses[0][1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            received = b""
            while received.count(b": keep-alive\n") < 2:
                received += await within(reader.read(4096), PATIENCE)
            assert b"event: redis\n" in received
            assert 1 == dash.hub.subscribers
            writer.transport.abort()  # gone, no FIN handshake, as a browser on a dead network
            await _until(lambda: dash.hub.subscribers == 0, "the vanished browser was not let go")
        finally:
            await runner.cleanup()
            await client.aclose()
            blocking.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("127.0.0.1:8765", "127.0.0.1"),
        ("localhost", "localhost"),
        ("[::1]:8765", "::1"),
        ("Evil.Example:80", "evil.example"),
    ],
)
def test_host_name_drops_the_port(host: str, name: str) -> None:
    assert name == host_name(host)


@pytest.mark.parametrize(
    ("bound", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.0.2.1", False),
    ],
)
def test_loopback_binds_are_told_apart(bound: str, loopback: bool) -> None:
    """Bound to loopback, the dashboard may run without a token; elsewhere it needs one."""
    assert loopback == is_loopback(bound)


def test_the_hub_survives_an_unexpected_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that fails with something no one expected (not a Redis error) is logged, and the
    hub reads again and goes on sending statuses."""
    from collections.abc import AsyncIterator

    from leaderpool.cli.dashboard import event_hub
    from leaderpool.cli.watch import Frame

    reads = 0

    async def frames(*_args: object, **_kwargs: object) -> AsyncIterator[Frame]:
        nonlocal reads
        reads += 1
        if reads == 1:
            raise ValueError("pool 'bad pool' must be printable ASCII without spaces or braces")
        yield Frame([], 0, True)
        await asyncio.sleep(PATIENCE)

    monkeypatch.setattr(event_hub, "status_frames", frames)
    monkeypatch.setattr(event_hub, "RETRY_S", 0.01)

    async def scenario() -> None:
        hub = event_hub.Hub(None, "leaderpool")
        sub = hub.subscribe()
        task = asyncio.get_running_loop().create_task(hub.run())
        try:
            assert b"event: redis" in (await within(sub.next(), PATIENCE) or b"")
            assert b"event: status" in (await within(sub.next(), PATIENCE) or b"")
        finally:
            hub.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(scenario())
