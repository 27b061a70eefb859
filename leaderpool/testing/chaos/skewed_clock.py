"""The chaos workers' clock, which a fault can make jump: ``python -m
leaderpool.testing.chaos.skewed_clock ARGS...`` is ``python -m leaderpool.worker ARGS...`` in a
process whose ``time.time()`` and ``time.monotonic()`` add offsets. On SIGUSR1 it reads new
offsets from the file named by ``$CHAOS_CLOCK_FILE`` (``{"wall_s": W, "monotonic_s": M}``).

The OS clock cannot be moved for one process, and the election reads its clock through a seam
(:class:`leaderpool.util.clock.Clock`) whose system clock binds ``time.monotonic`` when
``leaderpool.util.clock`` is imported, and which the worker's command line does not let a caller
set (the test kit's in-process clock is :mod:`leaderpool.testkit`); so the functions are replaced
before anything of leaderpool's is imported, and the core, the worker, the task's deadline
checks, redis-py and the event loop's timers all read the jumped clock, as they would a jumped
system clock. The task stamps its records with ``time.clock_gettime`` (the true clocks), so the
checker sees what really happened.
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import time
from types import FrameType

CLOCK_VAR = "CHAOS_CLOCK_FILE"
_real_time, _real_monotonic = time.time, time.monotonic
_offsets = {"wall_s": 0.0, "monotonic_s": 0.0}


def _time() -> float:
    return _real_time() + _offsets["wall_s"]


def _monotonic() -> float:
    return _real_monotonic() + _offsets["monotonic_s"]


def write(path: str | os.PathLike[str], *, wall_s: float, monotonic_s: float) -> None:
    """What the fault writes before it sends SIGUSR1."""
    with open(path, "w") as f:
        json.dump({"wall_s": wall_s, "monotonic_s": monotonic_s}, f)


def _reload(path: str) -> None:
    try:
        with open(path) as f:
            raw = json.load(f)
        _offsets.update(wall_s=float(raw["wall_s"]), monotonic_s=float(raw["monotonic_s"]))
    except (OSError, ValueError, KeyError, TypeError):  # a torn file: keep the clock as it is
        pass


def install(path: str) -> None:
    """Replace the clocks and read new offsets on SIGUSR1; before leaderpool is imported."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        _reload(path)

    _reload(path)
    time.time, time.monotonic = _time, _monotonic  # the point of this module
    signal.signal(signal.SIGUSR1, on_signal)


def true_time() -> float:
    """Unix time from the OS, whatever the offsets."""
    return time.clock_gettime(time.CLOCK_REALTIME)


def true_monotonic() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


if __name__ == "__main__":
    clock_file = os.environ.get(CLOCK_VAR)
    if clock_file:
        install(clock_file)
    sys.argv[0] = "leaderpool-worker"
    runpy.run_module("leaderpool.worker", run_name="__main__", alter_sys=True)
