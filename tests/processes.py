"""Running member processes in tests: start, read their JSON lines, signal, and always clean up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class Proc:
    """A child process whose stdout JSON lines are collected by a reader thread."""

    def __init__(self, args: list[str], name: str) -> None:
        self.name = name
        self.popen = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr = b""

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            with self._lock:
                self.events.append(event)

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e.get("event") == kind]

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)

    def wait_event(self, kind: str, count: int = 1, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of(kind)
            if len(found) >= count:
                return found[count - 1]
            time.sleep(0.01)
        raise AssertionError(f"{self.name}: no {kind!r} #{count} within {timeout}s; events={self.events}")

    def kill(self) -> None:
        if self.popen.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGCONT)  # a stopped process cannot die until resumed
            self.popen.kill()
        self.popen.wait(10)


@contextmanager
def member_processes() -> Iterator[Callable[..., Proc]]:
    """Yield a starter; every process it started is killed (by pid) at the end."""
    started: list[Proc] = []

    def start(url: str, pool: str, member: str, **options: Any) -> Proc:
        args = [sys.executable, "-m", "tests.member_process", url, pool, member]
        for key, value in options.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                args.append(flag)
            elif value is not False:
                args += [flag, str(value)]
        proc = Proc(args, member)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.kill()


def settled_pool(start: Callable[..., Proc], url: str, pool: str, names: str = "abc", **options: Any) -> list[Proc]:
    """Start one member per name, in order (so the first is the oldest and leads), and return
    once it leads and the last one has seen it."""
    procs = []
    for name in names:
        procs.append(start(url, pool, name, **options))
        procs[-1].wait_event("started")
    procs[0].wait_event("elected")
    procs[-1].wait_event("leader")
    return procs


def overlaps(procs: list[Proc]) -> int:
    """How many times two processes were acting leaders at once (from their elected/revoked
    lines; a killed process's interval ends at its kill, which the caller records as 'killed')."""
    intervals = []
    for proc in procs:
        start = None
        for e in proc.events:
            if e["event"] == "elected":
                start = e["t"]
            elif e["event"] in ("revoked", "killed") and start is not None:
                intervals.append((start, e["t"]))
                start = None
        if start is not None:
            intervals.append((start, float("inf")))
    intervals.sort()
    count, acting_until = 0, float("-inf")
    for start, end in intervals:
        if start < acting_until:
            count += 1
        acting_until = max(acting_until, end)
    return count
