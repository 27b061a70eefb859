"""A small TCP proxy for the fast-failover tests, standing for a middlebox between a follower and
its leader's liveness endpoint: it forwards, or blackholes (keeps every connection open and
passes nothing on, so no close is ever seen), or resets the connections of its clients (an
injected RST) while the leader lives. In front of Redis it can also hold a dead client's
connection open a while (``linger_s``), as a loaded host's slow teardown of a killed process
does. It runs an asyncio loop on a thread of its own."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from typing import Any


class Proxy:
    """Listens on a free 127.0.0.1 port and forwards to ``target_port``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.blackholed = False
        self.linger_s = 0.0
        """How long a client's close takes to reach the target (its data passes at once)."""
        self.port = 0
        self._clients: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="liveness-proxy", daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> Proxy:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    @property
    def clients(self) -> int:
        return len(self._clients)

    def blackhole(self) -> None:
        """From now on nothing passes and nothing closes, either way: silence."""
        self.blackholed = True

    def reset_clients(self) -> None:
        """Abort every client connection with a RST, as a middlebox can; new ones are forwarded."""

        async def reset() -> None:
            for writer in list(self._clients):
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()

        self._call(reset())

    def close(self) -> None:
        """Close every connection, end every task, stop and close the loop."""

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._clients):
                writer.transport.abort()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        with contextlib.suppress(Exception):
            self._call(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            pipes = (self._pipe(reader, up_writer, upstream=True), self._pipe(up_reader, writer))
            await asyncio.gather(*pipes, return_exceptions=True)
        except OSError:
            pass
        finally:  # also when cancelled by close(): every socket is closed
            self._clients.discard(writer)
            writer.transport.abort()
            if up_writer is not None:
                up_writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool = False) -> None:
        try:
            while data := await reader.read(4096):
                if self.blackholed:
                    continue  # swallowed
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        if self.blackholed:
            await asyncio.Event().wait()  # hold everything open: no close passes through
        if upstream and self.linger_s:
            await asyncio.sleep(self.linger_s)
        with contextlib.suppress(OSError):
            writer.close()
