"""Contender processes: started with a command line, their stdout read on a thread into a
:class:`~benchmarks.timeline.Timeline`, signalled by pid, and always reaped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO

from benchmarks.timeline import Event, Timeline, parse_line

LineSink = Callable[[str, str], None]


class MemberProcess:
    """One contender process; ``label`` names it in the timeline."""

    def __init__(self, label: str, argv: Sequence[str], timeline: Timeline | None, log: IO[str],
                 on_line: LineSink | None = None) -> None:  # fmt: skip
        self.label = label
        self.timeline = timeline
        self._on_line = on_line
        self.proc = subprocess.Popen(
            list(argv), stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True, bufsize=1
        )
        self.started = time.time()
        self._reader = threading.Thread(target=self._read, name=f"read-{label}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if self._on_line is not None:
                self._on_line(self.label, line)
            if self.timeline is not None:
                event: Event | None = parse_line(self.label, line)
                if event is not None:
                    self.timeline.add(event)
        self.proc.wait()
        if self.timeline is not None:
            self.timeline.mark_ended(self.label, time.time())

    def kill(self) -> float:
        """SIGKILL; returns the instant it was sent (the process can act no more after it)."""
        t = time.time()
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        if self.timeline is not None:
            self.timeline.mark_ended(self.label, t)
        self.wait(10)
        return t

    def terminate(self) -> float:
        """SIGTERM (a kind shutdown); returns the instant it was sent."""
        t = time.time()
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
        return t

    def wait(self, timeout: float) -> bool:
        """True once exited (and its output read) within ``timeout``."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        self._reader.join(timeout)
        return True

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds: for cleaning up."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            if not self.wait(grace):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.wait(10)
        if self.proc.stdout is not None:
            with contextlib.suppress(OSError):
                self.proc.stdout.close()


class ProcessSet:
    """Every process a scenario started; :meth:`close` stops those still running."""

    def __init__(self) -> None:
        self.members: list[MemberProcess] = []

    def add(self, member: MemberProcess) -> MemberProcess:
        self.members.append(member)
        return member

    def running(self) -> list[MemberProcess]:
        return [m for m in self.members if m.alive()]

    def close(self) -> None:
        for member in self.members:
            if member.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(member.pid, signal.SIGTERM)
        for member in self.members:
            member.stop(grace=5.0)
