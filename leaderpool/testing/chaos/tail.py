"""Follows the members' act logs while the run goes on: the runner waits on "some leader acted
after this instant" instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path


class ActTail:
    """Reads what each file gained since the last look; remembers the latest act time."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self._offsets = {path: 0 for path in paths}
        self._partial = {path: b"" for path in self._offsets}
        self.latest = 0.0
        """The latest ``act`` time read so far (unix seconds)."""
        self.latest_in: dict[Path, float] = {}
        """The latest act time read from each file."""

    def poll(self) -> float:
        for path, offset in self._offsets.items():
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read()
            except FileNotFoundError:
                continue
            self._offsets[path] = offset + len(data)
            lines = (self._partial[path] + data).split(b"\n")
            self._partial[path] = lines.pop()
            for line in lines:
                self.take(path, line.split())
        return self.latest

    def take(self, path: Path, fields: list[bytes]) -> None:
        """One line's fields: a leader's act moves :attr:`latest`."""
        if len(fields) == 6 and fields[0] == b"act":
            try:
                t = float(fields[5])
            except ValueError:
                return
            if t > self.latest:
                self.latest = t
            self.latest_in[path] = max(t, self.latest_in.get(path, 0.0))

    def wait_for_act_after(
        self, instant: float, timeout: float, interval: float = 0.02, path: Path | None = None
    ) -> float | None:
        """The latest act time once one after ``instant`` was seen (in ``path`` only, if given);
        None if none came within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            latest = self.poll() if path is None else (self.poll(), self.latest_in.get(path, 0.0))[1]
            if latest > instant:
                return latest
            if time.monotonic() >= deadline:
                return None
            time.sleep(interval)
