"""A TCP proxy that stands for the network between a process and what it talks to, under the
control of a test: it forwards, adds latency, blackholes (holds every connection open and passes
nothing either way, not even a close: silence, as a partition is) and heals, or resets its
clients' connections (an injected RST), or holds a dead client's close back a while before
passing it on (``linger_s``: a loaded host's slow teardown of a killed process). Used by the
fast-failover tests (a middlebox before a leader's liveness endpoint, or before Redis) and by
the chaos runner (each worker reaches Redis, and is reached by its peers, through one of these).

A blackhole stops *reading*: bytes wait in the kernel's buffers and flow, in order, once healed,
as TCP delivers what it retransmitted after a partition heals; a connection accepted while
blackholed is held, unconnected, until then. Latency delays each chunk by the delay in force
when it was read, keeping order. It runs an asyncio loop on a thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
CHUNK = 65536


class Proxy:
    """Listens on a free 127.0.0.1 port (:attr:`port`) and forwards to ``target_port``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.delay_s = 0.0
        """Added to each chunk, both ways (so a round trip gains twice this)."""
        self.linger_s = 0.0
        """How long a client's close takes to reach the target (its data passes as usual)."""
        self._flowing: asyncio.Event | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._upstreams: set[asyncio.StreamWriter] = set()
        self._serving: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy", daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> Proxy:
        self._thread.start()

        async def listen() -> asyncio.Server:
            self._flowing = asyncio.Event()
            self._flowing.set()
            return await asyncio.start_server(self._serve, "127.0.0.1", 0)

        self._server = self._call(listen())
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    @property
    def clients(self) -> int:
        return len(self._clients)

    @property
    def blackholed(self) -> bool:
        return self._flowing is not None and not self._flowing.is_set()

    def blackhole(self) -> None:
        """From now on nothing passes and nothing closes, either way: silence, until :meth:`heal`."""
        self._loop.call_soon_threadsafe(self._flowing_event().clear)

    def heal(self) -> None:
        """Forward again, delivering what waited meanwhile, in order."""
        self._loop.call_soon_threadsafe(self._flowing_event().set)

    def set_delay(self, seconds: float) -> None:
        """Add ``seconds`` to every chunk read from now on, each way (0 for none)."""
        self.delay_s = max(0.0, seconds)

    def _flowing_event(self) -> asyncio.Event:
        if self._flowing is None:
            raise RuntimeError("the proxy is not started")
        return self._flowing

    def reset_clients(self) -> None:
        """Abort every client connection with a RST (and its upstream connection, so the server
        sees it close too), as a middlebox can; new connections are forwarded."""

        async def reset() -> None:
            for writer in list(self._clients):
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            for writer in list(self._upstreams):
                writer.transport.abort()

        self._call(reset())

    def close(self) -> None:
        """Close every connection, end every task, stop and close the loop."""

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for writer in [*self._clients, *self._upstreams]:
                writer.transport.abort()
            serving = list(self._serving)  # cancelled from the top: each cancels its own pipes
            for task in serving:
                task.cancel()
            await asyncio.gather(*serving, return_exceptions=True)

        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._call(stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        current = asyncio.current_task()
        if current is not None:
            self._serving.add(current)
            current.add_done_callback(self._serving.discard)
        self._clients.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            await self._flowing_event().wait()  # accepted while blackholed: held, unconnected
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            self._upstreams.add(up_writer)
            pipes = (self._pipe(reader, up_writer, upstream=True), self._pipe(up_reader, writer))
            await asyncio.gather(*pipes, return_exceptions=True)
        except (OSError, asyncio.CancelledError):  # cancelled by close(): end quietly (a
            pass  # connection task that ends cancelled is reported as an error by Python 3.11)
        finally:  # also when cancelled by close(): every socket is closed
            self._clients.discard(writer)
            writer.transport.abort()
            if up_writer is not None:
                self._upstreams.discard(up_writer)
                up_writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool = False) -> None:
        """Copy one direction: each chunk is due ``delay_s`` after it was read; a blackhole
        holds both the reading and the writing, an EOF included."""
        flowing = self._flowing_event()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                await flowing.wait()
                if not data:
                    break
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(send())
        try:
            while True:
                await flowing.wait()
                data = await reader.read(CHUNK)
                await flowing.wait()  # read just before a blackhole: held, not passed on
                queue.put_nowait((time.monotonic() + self.delay_s, data))
                if not data:
                    break
            await sender
        except OSError:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await sender
        if upstream and self.linger_s:
            await asyncio.sleep(self.linger_s)
        with contextlib.suppress(OSError):
            writer.close()
