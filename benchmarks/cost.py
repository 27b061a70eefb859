"""What a contender costs Redis in steady state: commands per second (INFO commandstats, which
counts the commands run inside Lua scripts too), the commands each client connection sent
(MONITOR, which marks script-internal commands as ``lua``), and Redis CPU (INFO cpu)."""

from __future__ import annotations

import re
import select
import socket
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import psutil
import redis

RUNNER_COMMANDS = {"info", "monitor", "config|get", "config|set", "config", "ping", "pttl", "client|list"}
SCRIPT_COMMANDS = {"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"}


class Snapshot:
    def __init__(self, client: redis.Redis) -> None:
        stats = client.info("commandstats")
        cpu = client.info("cpu")
        self.t = time.monotonic()
        self.calls = Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()})
        self.usec = Counter({k.removeprefix("cmdstat_"): int(v["usec"]) for k, v in stats.items()})
        self.cpu_s = float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


def between(a: Snapshot, b: Snapshot) -> dict[str, Any]:
    """Commands per second by name (runner's own excluded) and Redis CPU over ``a``..``b``."""
    wall = b.t - a.t
    calls = {k: v - a.calls.get(k, 0) for k, v in b.calls.items() if k not in RUNNER_COMMANDS}
    calls = {k: v for k, v in calls.items() if v > 0}
    scripts = sum(v for k, v in calls.items() if k in SCRIPT_COMMANDS)
    script_usec = sum(b.usec[k] - a.usec.get(k, 0) for k in calls if k in SCRIPT_COMMANDS)
    return {
        "wall_s": round(wall, 3),
        "commands_per_s": round(sum(calls.values()) / wall, 2),
        "by_command_per_s": {k: round(v / wall, 2) for k, v in sorted(calls.items())},
        "redis_cpu_pct": round(100 * (b.cpu_s - a.cpu_s) / wall, 2),
        # Redis's time inside scripts (their commands included), and all its CPU, per script call
        "script_us_per_call": round(script_usec / scripts, 2) if scripts else None,
        "redis_cpu_us_per_script_call": round(1e6 * (b.cpu_s - a.cpu_s) / scripts, 2) if scripts else None,
    }


def steady_window(client: redis.Redis, seconds: float) -> dict[str, Any]:
    before = Snapshot(client)
    time.sleep(seconds)
    return between(before, Snapshot(client))


def client_ports(pids: dict[str, int]) -> dict[int, str]:
    """Local TCP port -> process label, for the contender processes' Redis connections."""
    ports: dict[int, str] = {}
    for label, pid in pids.items():
        try:
            for conn in psutil.Process(pid).net_connections(kind="tcp"):
                if conn.laddr:
                    ports[conn.laddr.port] = label
        except psutil.Error:
            continue
    return ports


_MONITOR_LINE = re.compile(rb'^\+[0-9.]+ \[\d+ ([^\]]+)\] "([^"]*)"')


def monitor_window(url: str, seconds: float, pids: dict[str, int]) -> dict[str, Any]:
    """Watch every command for ``seconds`` (MONITOR on a bare socket, read until a deadline):
    the commands each process sent, and those run inside Lua scripts (marked ``lua``)."""
    parts = urlsplit(url)
    by_proc: dict[str, Counter[str]] = {label: Counter() for label in pids}
    lua: Counter[str] = Counter()
    other: Counter[str] = Counter()
    ports = client_ports(pids)
    buffer = b""
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=2) as sock:
        sock.sendall(b"MONITOR\r\n")
        t0 = time.monotonic()
        while (left := seconds - (time.monotonic() - t0)) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\r\n")
            for line in lines:
                match = _MONITOR_LINE.match(line)
                if match is None:
                    continue
                source, name = match.group(1).decode(), match.group(2).decode().lower()
                if source == "lua":
                    lua[name] += 1
                    continue
                port = int(source.rsplit(":", 1)[1]) if ":" in source else 0
                label = ports.get(port)
                if label is None:
                    ports.update(client_ports(pids))  # a connection opened after we looked
                    label = ports.get(port)
                (by_proc[label] if label is not None else other)[name] += 1
        wall = time.monotonic() - t0
    client_total = sum(sum(c.values()) for c in by_proc.values())
    return {
        "wall_s": round(wall, 3),
        "client_commands_per_s": round(client_total / wall, 2),
        "lua_internal_commands_per_s": round(sum(lua.values()) / wall, 2),
        "unattributed_commands_per_s": round(sum(other.values()) / wall, 2),
        "by_process_per_s": {
            label: {k: round(v / wall, 2) for k, v in sorted(c.items())} for label, c in by_proc.items()
        },
        "lua_by_command_per_s": {k: round(v / wall, 2) for k, v in sorted(lua.items())},
        "unattributed_by_command_per_s": {k: round(v / wall, 2) for k, v in sorted(other.items())},
    }
