"""A local cluster: worker processes of one pool started on this machine, and every JSON event
they print (``--json-events``), in arrival order. The demo drives one; every process started is
remembered so that :meth:`Cluster.stop_all` leaves none behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]


@dataclass
class WorkerProcess:
    name: str
    proc: subprocess.Popen[str]
    started: float
    log_path: str
    reader: threading.Thread | None = None


@dataclass
class Cluster:
    """Worker processes of one pool, and every JSON event they printed, in arrival order."""

    url: str
    pool: str
    prefix: str
    ttl: float
    logdir: str
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    """The latest process of each name."""
    started: list[WorkerProcess] = field(default_factory=list)
    """Every process ever started, so none is left behind."""
    events: list[tuple[str, Event]] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def start(self, name: str, *extra: str) -> WorkerProcess:
        args = [
            sys.executable, "-m", "leaderpool.worker", "--redis", self.url, "--pool", self.pool,
            "--member-id", name, "--node", f"node-{name}", "--ttl", f"{self.ttl:g}", "--takeover",
            "--prefix", self.prefix, "--json-events", "--log-format", "json", *extra,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEADERPOOL_")}
        log_path = os.path.join(self.logdir, f"{name}-{sum(w.name == name for w in self.started) + 1}.log")
        with open(log_path, "a") as log_file:
            proc = subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=log_file, text=True, env=env, start_new_session=True
            )
        worker = WorkerProcess(name, proc, time.time(), log_path)
        worker.reader = threading.Thread(target=self._read, args=(name, proc), daemon=True)
        worker.reader.start()
        self.workers[name] = worker
        self.started.append(worker)
        return worker

    def _read(self, name: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                with self._cond:
                    self.events.append((name, event))
                    self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.events)

    def wait(self, match: Callable[[str, Event], bool], since: int, timeout: float) -> tuple[str, Event] | None:
        """The first event at or after index ``since`` that matches, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for name, event in self.events[since:]:
                    if match(name, event):
                        return name, event
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def since(self, index: int, kind: str) -> list[tuple[str, Event]]:
        with self._cond:
            return [(n, e) for n, e in self.events[index:] if e.get("event") == kind]

    def signal(self, name: str, sig: signal.Signals) -> float:
        worker = self.workers[name]
        sent = time.time()
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.proc.pid, sig)
        return sent

    def stop_all(self, grace: float = 5.0) -> None:
        """SIGTERM every worker still running, then SIGKILL what is left after ``grace``."""
        running = [w for w in self.started if w.proc.poll() is None]
        for w in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(w.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for w in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.proc.wait(max(deadline - time.monotonic(), 0.01))
            if w.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.proc.pid, signal.SIGKILL)
                w.proc.wait(5)
        for w in self.started:
            if w.proc.stdout is not None:
                with contextlib.suppress(Exception):
                    w.proc.stdout.close()
