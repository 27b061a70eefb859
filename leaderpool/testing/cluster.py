"""A Redis Cluster on free 127.0.0.1 ports, for tests and experiments: three masters with one
replica each (``--cluster-enabled yes``), the 16384 slots split in three, and a short node
timeout, so a replica takes over a SIGKILLed master in about a second.

Built by hand (CLUSTER ADDSLOTS, MEET, REPLICATE), not with ``redis-cli --cluster create``, so
that it works with any redis-server binary, 6.2's included. Every process is stopped by its pid.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from types import TracebackType

from leaderpool.errors import LeaderpoolError
from leaderpool.testing.redis_server import RedisServer, free_port, redis_server_binary
from leaderpool.testing.sentinel import _command

SLOTS = 16384
NODE_TIMEOUT_MS = 1000
"""The cluster's failure detector (as the Sentinel set-up's): short enough for quick failovers in
tests, long enough that a loaded 2-core box does not fail a live master over."""
BUS_OFFSET = 10000  # a node's cluster bus listens on its port + 10000


def _reply_text(port: int, *args: str) -> str:
    return _command(port, *args).decode(errors="replace")


def slot_of(key: str) -> int:
    """The hash slot of ``key`` (CRC16 of its hash tag, as Redis computes it)."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    crc = 0
    for byte in key.encode():
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc % SLOTS


class ClusterSet:
    """``with ClusterSet() as c: c.url`` -> ``redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...``."""

    def __init__(self, binary: str | None = None, masters: int = 3, replicas: int = 1) -> None:
        self.binary = binary or redis_server_binary()
        args = ("--cluster-enabled", "yes", "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-require-full-coverage", "no")  # a dead master's pools stop, not everyone's  # fmt: skip
        count = masters * (1 + replicas)
        self.servers = [
            RedisServer(self.binary, extra_args=args, choose_port=_free_port_with_bus) for _ in range(count)
        ]
        self.master_count = masters
        self._masters_before: list[RedisServer] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in self.servers[: self.master_count])

    def start(self, timeout: float = 30.0) -> ClusterSet:
        deadline = time.monotonic() + timeout
        for server in self.servers:
            server.start()
        masters, rest = self.servers[: self.master_count], self.servers[self.master_count :]
        per = SLOTS // len(masters)
        for i, master in enumerate(masters):
            last = SLOTS - 1 if i == len(masters) - 1 else (i + 1) * per - 1
            for first in range(i * per, last + 1, 1000):  # ADDSLOTS in batches: 6.2 has no ADDSLOTSRANGE
                slots = " ".join(str(s) for s in range(first, min(first + 1000, last + 1)))
                self._expect_ok(master.port, "CLUSTER", "ADDSLOTS", slots)
        for server in self.servers[1:]:
            self._expect_ok(server.port, "CLUSTER", "MEET", "127.0.0.1", str(self.servers[0].port))
        for i, replica in enumerate(rest):
            master_id = self.node_id(masters[i % len(masters)].port)
            # the replica must know the master first (MEET spreads by gossip)
            self._until(deadline, lambda: master_id in _reply_text(replica.port, "CLUSTER", "NODES"))  # noqa: B023
            self._expect_ok(replica.port, "CLUSTER", "REPLICATE", master_id)
        self.wait_ok(deadline - time.monotonic())
        for replica in rest:
            self._until(deadline, lambda: "master_link_status:up" in _reply_text(replica.port, "INFO", "replication"))  # noqa: B023
        return self

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says ``cluster_state:ok`` and agrees on who serves every slot."""
        deadline = time.monotonic() + timeout

        def agreed() -> bool:
            live = [s for s in self.servers if s.process is not None]
            if not all("cluster_state:ok" in _reply_text(s.port, "CLUSTER", "INFO") for s in live):
                return False
            views = {self._slot_owners(s.port) for s in live}
            return len(views) == 1

        self._until(deadline, agreed)

    def node_id(self, port: int) -> str:
        return _reply_text(port, "CLUSTER", "MYID").split("\r\n")[1]

    def _slot_owners(self, port: int) -> tuple[tuple[str, str], ...]:
        """``(node line's address, slots)`` of every master that serves slots, as ``port`` sees it."""
        owners = []
        for line in _reply_text(port, "CLUSTER", "NODES").splitlines():
            parts = line.split()
            if len(parts) > 8 and "master" in parts[2] and "fail" not in parts[2]:
                owners.append((parts[1].split("@")[0], " ".join(parts[8:])))
        return tuple(sorted(owners))

    def master_of_slot(self, slot: int) -> RedisServer:
        """The live server that serves ``slot`` as a master now."""
        for server in self.servers:
            if server.process is None:
                continue
            for line in _reply_text(server.port, "CLUSTER", "NODES").splitlines():
                parts = line.split()
                if len(parts) > 8 and "myself" in parts[2] and "master" in parts[2] and _serves(parts[8:], slot):
                    return server
        raise LeaderpoolError(f"no live master serves slot {slot}")

    def master_of(self, key: str) -> RedisServer:
        return self.master_of_slot(slot_of(key))

    def name_on(self, master: RedisServer, stem: str) -> str:
        """A pool name (``stem`` and a number) whose hash slot ``master`` serves now."""
        ranges = _myself(master.port)[8:]
        for i in range(100_000):
            name = f"{stem}{i}"
            if _serves(ranges, slot_of(name)):
                return name
        raise LeaderpoolError(f"no name for the master on port {master.port}")

    def masters(self) -> list[RedisServer]:
        """The live servers that are masters serving slots now."""
        found = []
        for server in self.servers:
            if server.process is None:
                continue
            mine = _myself(server.port)
            if len(mine) > 8 and "master" in mine[2]:
                found.append(server)
        return found

    def replica_of(self, master: RedisServer) -> RedisServer:
        master_id = self.node_id(master.port)
        for server in self.servers:
            if server.process is not None and server is not master and _myself(server.port)[3] == master_id:
                return server
        raise LeaderpoolError(f"the master on port {master.port} has no replica")

    def wait_for_failover(self, dead: RedisServer, timeout: float = 30.0) -> RedisServer:
        """After ``dead`` was killed: until its replica serves its slots and the cluster is ok
        again; the promoted server."""
        deadline = time.monotonic() + timeout
        port = dead.port
        promoted: list[RedisServer] = []

        def took_over() -> bool:
            for server in self.servers:
                if server.process is None or server.port == port:
                    continue
                mine = _myself(server.port)
                role = _reply_text(server.port, "ROLE")
                if "master" in mine[2] and len(mine) > 8 and "master" in role and server not in self._masters_before:
                    promoted.append(server)
                    return True
            return False

        self._until(deadline, took_over)
        self.wait_ok(deadline - time.monotonic())
        return promoted[0]

    def kill(self, server: RedisServer) -> None:
        """SIGKILL ``server`` (a master: its replica takes over after the node timeout)."""
        self._masters_before = self.masters()
        server.stop()
        server.process = None

    def move_slot(self, slot: int, to: RedisServer, keys_per_batch: int = 100) -> None:
        """Reshard ``slot`` to ``to`` the way ``redis-cli --cluster reshard`` does: IMPORTING on
        the target, MIGRATING on the source, MIGRATE every key, then SETSLOT NODE everywhere."""
        source = self.master_of_slot(slot)
        if source is to:
            return
        src_id, dst_id = self.node_id(source.port), self.node_id(to.port)
        self._expect_ok(to.port, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", src_id)
        self._expect_ok(source.port, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", dst_id)
        for _ in range(10_000):  # bounded: a pool has a handful of keys
            keys = _array(_command(source.port, "CLUSTER", "GETKEYSINSLOT", str(slot), str(keys_per_batch)))
            if not keys:
                break
            reply = _reply_text(
                source.port, "MIGRATE", "127.0.0.1", str(to.port), '""', "0", "5000", "REPLACE", "KEYS", *keys
            )
            if not reply.startswith(("+OK", "+NOKEY")):
                raise LeaderpoolError(f"MIGRATE of slot {slot} failed: {reply.strip()}")
        for server in (to, source, *(s for s in self.masters() if s not in (to, source))):
            self._expect_ok(server.port, "CLUSTER", "SETSLOT", str(slot), "NODE", dst_id)
        self.wait_ok()

    def _expect_ok(self, port: int, *args: str) -> None:
        reply = _reply_text(port, *args)
        if not reply.startswith("+OK"):
            raise LeaderpoolError(f"redis on port {port}: {' '.join(args[:3])} answered {reply.strip()!r}")

    def _until(self, deadline: float, done: Callable[[], bool]) -> None:
        while time.monotonic() < deadline:
            try:
                if done():
                    return
            except (OSError, StopIteration, IndexError):
                pass
            time.sleep(0.05)
        raise LeaderpoolError("the Redis Cluster did not get ready in time")

    def cleanup(self) -> None:
        for server in self.servers:
            server.cleanup()

    def __enter__(self) -> ClusterSet:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()


def _myself(port: int) -> list[str]:
    """The fields of the node's own line in its CLUSTER NODES ([] if it has none)."""
    lines = _reply_text(port, "CLUSTER", "NODES").splitlines()
    return next((line.split() for line in lines if "myself" in line), [])


def _free_port_with_bus() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(1000):
        port = free_port()
        if port + BUS_OFFSET < 65536:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind(("127.0.0.1", port + BUS_OFFSET))
                return port
            except OSError:
                pass
    raise LeaderpoolError("no free port pair (port, port + 10000) for a cluster node")


def _serves(ranges: list[str], slot: int) -> bool:
    for r in ranges:
        if r.startswith("["):  # a slot being migrated or imported
            continue
        first, _, last = r.partition("-")
        if int(first) <= slot <= int(last or first):
            return True
    return False


def _array(reply: bytes) -> list[str]:
    """The bulk strings of a RESP array reply."""
    lines = reply.split(b"\r\n")
    return [lines[i + 1].decode() for i, line in enumerate(lines) if line.startswith(b"$") and line != b"$-1"]
