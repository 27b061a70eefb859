"""Worker and CLI subprocesses for the end-to-end tests: started with a clean environment,
their stdout JSON lines collected by a reader thread, and always killed by pid on teardown."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PATIENCE = 20.0
"""How long to wait for anything: generous, the suite shares two cores with other work."""


def clean_env(**extra: str) -> dict[str, str]:
    """The test runner's environment without LEADERPOOL_* (so nothing leaks into a child)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADERPOOL_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


class WorkerProc:
    """``python -m leaderpool.worker --json-events`` with its events, exit code and stderr."""

    def __init__(self, args: list[str], env: dict[str, str], name: str) -> None:
        self.name = name
        self._stderr = tempfile.NamedTemporaryFile(prefix=f"worker-{name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "leaderpool.worker", *args],
            stdout=subprocess.PIPE, stderr=self._stderr, text=True, cwd=ROOT, env=env,
        )  # fmt: skip
        self.started = time.time()
        self.events: list[dict[str, Any]] = []
        self.other_stdout: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    self.other_stdout.append(line)
                self._cond.notify_all()

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if e["event"] == kind]

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float = PATIENCE) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if match(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.name}: no matching event within {timeout}s; got {self.events}")
                self._cond.wait(min(left, 0.5))

    def elected(self, timeout: float = PATIENCE) -> dict[str, Any]:
        return self.wait_for(lambda e: e["event"] == "elected", timeout)

    def sees(self, leader: str | None, timeout: float = PATIENCE) -> dict[str, Any]:
        return self.wait_for(lambda e: e["event"] == "leader" and e["member"] == leader, timeout)

    def signal(self, sig: signal.Signals) -> float:
        sent = time.time()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        return sent

    def wait(self, timeout: float = PATIENCE) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    @property
    def stderr(self) -> str:
        return Path(self._stderr.name).read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        with contextlib.suppress(OSError):
            os.unlink(self._stderr.name)


class Workers:
    """Starts workers for one Redis URL and pool; :meth:`cleanup` kills every one of them."""

    def __init__(self, url: str, pool: str = "p") -> None:
        self.url = url
        self.pool = pool
        self.started: list[WorkerProc] = []

    def start(self, member: str, *extra: str, ttl: str = "1", env: dict[str, str] | None = None) -> WorkerProc:
        args = ["--redis", self.url, "--pool", self.pool, "--member-id", member, "--ttl", ttl, "--json-events", *extra]
        worker = WorkerProc(args, clean_env(**(env or {})), member)
        self.started.append(worker)
        return worker

    def start_env(self, member: str, env: dict[str, str]) -> WorkerProc:
        """A worker configured by environment variables only (plus --json-events)."""
        worker = WorkerProc(["--json-events"], clean_env(**env), member)
        self.started.append(worker)
        return worker

    def cleanup(self) -> None:
        for worker in self.started:
            worker.kill()


@contextlib.contextmanager
def workers_for(url: str, pool: str = "p") -> Iterator[Workers]:
    ws = Workers(url, pool)
    try:
        yield ws
    finally:
        ws.cleanup()


def cli(*args: str, timeout: float = 60.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m leaderpool.cli ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "leaderpool.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=clean_env(**(env or {})),
    )  # fmt: skip


def eventually(predicate: Callable[[], Any], timeout: float = PATIENCE, interval: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy; returns it. Fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
