"""What every contender script shares: its command line, the JSON-lines protocol, and SIGTERM.

Every contender process prints, flushed, one JSON object per line on stdout (the protocol of
``python -m leaderpool.worker --json-events``)::

    {"event": "ready",   "pool", "member", "t"}                  connected and contending
    {"event": "elected", "pool", "member", "term", "t"}          acting as leader from now
    {"event": "revoked", "pool", "member", "term", "reason", "t"} stopped acting as leader
    {"event": "leader",  "pool", "member", "term", "t"}          saw a new leader (if it can)

``t`` is ``time.time()``: every process runs on the benchmark machine, so the clock is shared.
SIGTERM raises :class:`Shutdown` in the main thread, wherever it is blocked; the script then
releases the way its library offers and exits 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any


class Shutdown(BaseException):
    """Raised in the main thread by SIGTERM (a BaseException, so library code does not swallow it)."""


def parse_args(description: str) -> argparse.Namespace:
    """The flags every contender takes: the worker's own names, so the runner builds one command line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--redis", required=True, help="redis://127.0.0.1:PORT/0")
    parser.add_argument("--pool", required=True)
    parser.add_argument("--member-id", required=True)
    parser.add_argument("--ttl", type=float, required=True, help="lease, seconds")
    parser.add_argument("--json-events", action="store_true", help="accepted for symmetry with the worker")
    parser.add_argument("--log-format", default="json", help="accepted for symmetry with the worker")
    return parser.parse_args()


class Emitter:
    """Prints protocol lines; safe to call from any thread (library renewal threads do)."""

    def __init__(self, pool: str, member: str) -> None:
        self.pool = pool
        self.member = member
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "pool": self.pool, "member": self.member, **fields, "t": time.time()})
        with self._lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def ready(self) -> None:
        self.emit("ready")

    def elected(self, term: int | str | None = None) -> None:
        self.emit("elected", term=term)

    def revoked(self, reason: str, term: int | str | None = None) -> None:
        self.emit("revoked", term=term, reason=reason)


def raise_on_sigterm() -> None:
    """From now on SIGTERM raises :class:`Shutdown` in the main thread (once)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the release
        raise Shutdown

    signal.signal(signal.SIGTERM, handler)


def sleep(seconds: float) -> None:
    """A sleep SIGTERM interrupts (it raises :class:`Shutdown`)."""
    if seconds > 0:
        time.sleep(seconds)
