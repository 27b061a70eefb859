"""A Redis Sentinel set-up on free 127.0.0.1 ports, for tests and experiments: a master, a
replica and one Sentinel (quorum 1) watching them with short timeouts, so a failover after the
master is killed takes about a second."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from types import TracebackType

from leaderpool.errors import LeaderpoolError
from leaderpool.testing.redis_server import RedisServer, free_port, redis_server_binary

MASTER_NAME = "leaderpool-test"
DOWN_AFTER_MS = 1000
"""The Sentinel's failure detector: a master silent this long is down. 500 ms marked a live master
down for a moment on a loaded 2-core box (two test processes, each with its workers), and a
Sentinel that names no master is a CLI that cannot reach Redis."""
FAILOVER_TIMEOUT_MS = 2000


def _command(port: int, *args: str, timeout: float = 2.0) -> bytes:
    """One inline command, its raw reply (enough for the set-up's own checks)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(" ".join(args).encode() + b"\r\n")
        s.settimeout(timeout)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            chunks.append(chunk)
            if not chunk or len(chunk) < 65536:
                break
        return b"".join(chunks)


class SentinelSet:
    """``with SentinelSet() as s: s.url`` -> ``redis+sentinel://127.0.0.1:PORT/leaderpool-test/0``."""

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or redis_server_binary()
        self.master = RedisServer(self.binary)
        self.replica: RedisServer | None = None
        self.sentinel_port = free_port()
        self.sentinel: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.mkdtemp(prefix="leaderpool-sentinel-")

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{MASTER_NAME}/0"

    def start(self, timeout: float = 20.0) -> SentinelSet:
        deadline = time.monotonic() + timeout
        self.master.start()
        self.replica = RedisServer(self.binary, extra_args=("--replicaof", "127.0.0.1", str(self.master.port)))
        self.replica.start()
        self._until(deadline, lambda: b"connected_slaves:1" in _command(self.master.port, "INFO", "replication"))
        conf = os.path.join(self._dir, "sentinel.conf")
        with open(conf, "w") as f:  # Sentinel rewrites its config file: it must be its own, writable
            f.write(
                f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self._dir}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} 1\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
            )
        log = os.path.join(self._dir, "sentinel.log")
        self.sentinel = subprocess.Popen(
            [self.binary, conf, "--sentinel", "--logfile", log], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # a failover needs the Sentinel to know the replica (from the master's INFO) first
        self._until(deadline, lambda: f"{self.replica_port}".encode() in self._ask("SENTINEL", "REPLICAS", MASTER_NAME))
        return self

    @property
    def replica_port(self) -> int:
        assert self.replica is not None
        return self.replica.port

    def master_port(self) -> int:
        """The master's port, as the Sentinel says now."""
        reply = self._ask("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME).split(b"\r\n")
        return int(reply[4])

    def set_option(self, option: str, value: int) -> None:
        """``SENTINEL SET`` on the watched master (``down-after-milliseconds``, ``failover-timeout``...)."""
        reply = self._ask("SENTINEL", "SET", MASTER_NAME, option, str(value))
        if not reply.startswith(b"+OK"):
            raise LeaderpoolError(f"the Sentinel refused {option} {value}: {reply!r}")

    def wait_for_failover(self, away_from: int, timeout: float = 30.0) -> int:
        """Wait until the Sentinel names a master other than ``away_from``; its port."""
        deadline = time.monotonic() + timeout
        self._until(deadline, lambda: self.master_port() != away_from)
        return self.master_port()

    def server(self, port: int) -> RedisServer:
        found = [s for s in (self.master, self.replica) if s is not None and s.port == port]
        if not found:
            raise LeaderpoolError(f"no server of this set on port {port}")
        return found[0]

    def _ask(self, *args: str) -> bytes:
        try:
            return _command(self.sentinel_port, *args)
        except OSError:
            return b""

    def _until(self, deadline: float, done: object) -> None:
        while time.monotonic() < deadline:
            try:
                if done():  # type: ignore[operator]
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise LeaderpoolError(f"the Sentinel set-up did not get ready; see {self._dir}")

    def cleanup(self) -> None:
        proc, self.sentinel = self.sentinel, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for server in (self.master, self.replica):
            if server is not None:
                server.cleanup()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> SentinelSet:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()
