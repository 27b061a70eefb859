"""The chaos workers' clock: a process started through it reads jumped clocks once told to
(SIGUSR1), everything imported after it included, while the true clocks stay the OS's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from leaderpool.testing.chaos import skewed_clock

PROBE = """
import os, signal, sys, time
from leaderpool.testing.chaos import skewed_clock as s
s.install(sys.argv[1])
before = time.monotonic() - s.true_monotonic()
s.write(sys.argv[1], wall_s=-3600.0, monotonic_s=5.0)
os.kill(os.getpid(), signal.SIGUSR1)
import leaderpool.election.core as core  # imported after the jump: its default clock is the jumped one
r = lambda x: round(x, 1) + 0.0  # no "-0.0"
print(r(before), r(time.monotonic() - s.true_monotonic()), round(time.time() - s.true_time()),
      r(core.ElectionCore.__init__.__kwdefaults__["clock"].now() - s.true_monotonic()))
"""


def test_a_jump_moves_the_clocks_the_core_reads(tmp_path: Path) -> None:
    offsets = tmp_path / "clock"
    skewed_clock.write(offsets, wall_s=0.0, monotonic_s=0.0)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(offsets)], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert ["0.0", "5.0", "-3600", "5.0"] == out


def test_a_torn_offsets_file_leaves_the_clock_as_it_was(tmp_path: Path) -> None:
    offsets = tmp_path / "clock"
    offsets.write_text('{"wall_s": 1')
    probe = PROBE.replace("s.write(sys.argv[1], wall_s=-3600.0, monotonic_s=5.0)", "")
    out = subprocess.run(
        [sys.executable, "-c", probe, str(offsets)], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert ["0.0", "0.0", "0", "0.0"] == out
