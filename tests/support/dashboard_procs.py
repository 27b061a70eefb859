"""``leaderpool-cli dashboard`` as a child process, an HTTP helper, a Server-Sent Events reader
on a thread, and Debian's Chromium under Playwright: shared by tests/cli/test_dashboard.py,
tests/cli/test_dashboard_browser.py and tests/support/dashboard_screenshots.py."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from leaderpool.testing.processes import Child
from tests.support.worker_procs import PATIENCE, ROOT, clean_env, eventually

CHROMIUM = os.environ.get("LEADERPOOL_TEST_CHROMIUM", "/usr/bin/chromium")
"""Debian's Chromium (apt-get install chromium); Playwright drives it, never a browser of its own."""

_ANNOUNCED = re.compile(r"leaderpool dashboard on (http://\S+)/ ")


class DashboardProc(Child):
    """``python -m leaderpool.cli --redis URL dashboard [ARGS]``; :attr:`base` once it listens."""

    def __init__(self, url: str, *args: str, name: str = "dashboard", env: dict[str, str] | None = None) -> None:
        argv = [sys.executable, "-m", "leaderpool.cli", "--redis", url, "dashboard", *args]
        super().__init__(argv, name=name, env=clean_env(**(env or {})), cwd=ROOT)

    def __enter__(self) -> DashboardProc:
        return self

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT``, waiting for the line that announces it."""

        def announced() -> str | None:
            for line in self.other_stdout:
                found = _ANNOUNCED.search(line)
                if found:
                    return found.group(1)
            if not self.alive():
                raise AssertionError(f"the dashboard exited {self.proc.returncode}: {self.stderr}")
            return None

        return str(eventually(announced))


def start_dashboard(url: str, *args: str, env: dict[str, str] | None = None) -> DashboardProc:
    return DashboardProc(url, "--port", "0", *args, env=env)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(base: str, method: str, path: str, headers: dict[str, str] | None = None) -> Reply:
    """One HTTP request to the dashboard (no proxy, whatever the environment says)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=PATIENCE)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def leaders(status: dict[str, Any]) -> dict[str, tuple[str, int] | None]:
    """pool -> (leader, term) of a ``status --json`` document."""
    return {p["pool"]: (p["leader"]["member"], p["leader"]["term"]) if p["leader"] else None for p in status["pools"]}


@dataclass
class Event:
    kind: str
    data: Any
    at: float
    """time.time() when it arrived."""


@dataclass
class SseReader:
    """Reads ``/api/events`` on a thread; :meth:`wait_for` waits for a matching event."""

    base: str
    headers: dict[str, str] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    comments: list[float] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        parts = urlsplit(self.base)
        self._conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=PATIENCE * 3)
        self._conn.request("GET", "/api/events", headers={"Accept": "text/event-stream", **self.headers})
        self._sock = self._conn.sock
        self._response = self._conn.getresponse()
        assert 200 == self._response.status
        self.content_type = self._response.getheader("Content-Type", "")
        self._cond = threading.Condition()
        threading.Thread(target=self._read, name="sse-reader", daemon=True).start()

    def _read(self) -> None:
        kind, data = "message", ""
        try:
            for raw in self._response:
                line = raw.decode().rstrip("\r\n")
                if line.startswith(":"):
                    self.comments.append(time.time())
                elif line.startswith("event: "):
                    kind = line[len("event: ") :]
                elif line.startswith("data: "):
                    data += line[len("data: ") :]
                elif not line and data:
                    with self._cond:
                        self.events.append(Event(kind, json.loads(data), time.time()))
                        self._cond.notify_all()
                    kind, data = "message", ""
        except (OSError, http.client.HTTPException, ValueError):
            pass
        finally:
            self.ended.set()
            with self._cond:
                self._cond.notify_all()

    def wait_for(self, match: Callable[[Event], bool], since: int = 0, timeout: float = PATIENCE) -> Event:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events[since:]:
                    if match(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or self.ended.is_set():
                    raise AssertionError(f"no matching event within {timeout}s; got {[e.kind for e in self.events]}")
                self._cond.wait(left)

    def mark(self) -> int:
        with self._cond:
            return len(self.events)

    def close(self) -> None:
        """Hang up (the reader thread sees the end of the stream), then close."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
        self.ended.wait(PATIENCE)
        self._conn.close()


def status_with(pool: str, leader: str) -> Callable[[Event], bool]:
    return lambda e: e.kind == "status" and (leaders(e.data).get(pool) or ("", 0))[0] == leader


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM}: apt-get install chromium (CI's .ci/run installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed: pip install -e '.[dev]'"
    return None
