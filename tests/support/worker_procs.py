"""Worker and CLI subprocesses for the end-to-end tests, on the shared harness
(:mod:`leaderpool.testing.processes`): started with a clean environment, their stdout JSON
lines collected by a reader thread, and every one closed (by pid) on teardown."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from leaderpool.testing import processes
from leaderpool.testing.processes import Child, ChildGroup, JsonEvent

ROOT = Path(__file__).resolve().parents[2]
PATIENCE = 20.0
"""How long to wait for anything: generous, the suite shares two cores with other work."""


def clean_env(**extra: str) -> dict[str, str]:
    """The test runner's environment without LEADERPOOL_* (so nothing leaks into a child)."""
    return processes.clean_env(PYTHONPATH=str(ROOT), **extra)


class WorkerProc(Child):
    """``python -m leaderpool.worker --json-events`` with its events, exit code and stderr."""

    def __init__(self, args: list[str], env: dict[str, str], name: str, launcher: tuple[str, ...] = ()) -> None:
        """``launcher``: a command that runs the worker's (``prlimit --nofile=256:256``, say)."""
        super().__init__([*launcher, sys.executable, "-m", "leaderpool.worker", *args], name=name, env=env, cwd=ROOT)

    def wait_for(self, match: Callable[[JsonEvent], bool], timeout: float = PATIENCE, since: int = 0) -> JsonEvent:
        return super().wait_for(match, timeout, since)

    def elected(self, timeout: float = PATIENCE) -> JsonEvent:
        return self.wait_for(lambda e: e["event"] == "elected", timeout)

    def sees(self, leader: str | None, timeout: float = PATIENCE) -> JsonEvent:
        return self.wait_for(lambda e: e["event"] == "leader" and e["member"] == leader, timeout)

    def wait(self, timeout: float = PATIENCE) -> int:
        return super().wait(timeout)


class Workers:
    """Starts workers for one Redis URL and pool; :meth:`cleanup` closes every one of them."""

    def __init__(self, url: str, pool: str = "p") -> None:
        self.url = url
        self.pool = pool
        self.group = ChildGroup()

    @property
    def started(self) -> list[Child]:
        return self.group.started

    def start(self, member: str, *extra: str, ttl: str = "1", env: dict[str, str] | None = None) -> WorkerProc:
        args = ["--redis", self.url, "--pool", self.pool, "--member-id", member, "--ttl", ttl, "--json-events", *extra]
        return self.group.add(WorkerProc(args, clean_env(**(env or {})), member))

    def start_env(self, member: str, env: dict[str, str]) -> WorkerProc:
        """A worker configured by environment variables only (plus --json-events)."""
        return self.group.add(WorkerProc(["--json-events"], clean_env(**env), member))

    def cleanup(self) -> None:
        self.group.close(grace=0)


@contextlib.contextmanager
def workers_for(url: str, pool: str = "p") -> Iterator[Workers]:
    ws = Workers(url, pool)
    try:
        yield ws
    finally:
        ws.cleanup()


def cli(*args: str, timeout: float = 60.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m leaderpool.cli ARGS`` to completion (stopped, with all it started, if it
    overruns ``timeout``)."""
    argv = [sys.executable, "-m", "leaderpool.cli", *args]
    return processes.run(argv, timeout=timeout, cwd=ROOT, env=clean_env(**(env or {})))


def eventually(predicate: Callable[[], Any], timeout: float = PATIENCE, interval: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy; returns it. Fails after ``timeout``. (For what no
    event announces, such as a line in a worker's stderr; wait on events with ``wait_for``.)"""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
