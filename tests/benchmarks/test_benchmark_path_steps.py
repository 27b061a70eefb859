"""The step-by-step benchmark of the kind hand-over and the crash failover runs end to end (one
block, one round of each, this checkout against itself), so it cannot rot; it checks that every
probe on each path was seen, never the speed (the suite runs on shared machines)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from leaderpool.testing.processes import run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_one_block_times_every_step_of_both_paths(tmp_path: Path) -> None:
    """A hand-over and a crash per side, the floor, each script's time inside Redis."""
    done = run(
        [sys.executable, "-m", "benchmarks.path_steps", "--base-python", sys.executable, "--blocks", "1",
         "--handoffs", "1", "--crashes", "1", "--floor", "2", "--no-peer", "--out", str(tmp_path), "--name", "quick"],
        cwd=ROOT, timeout=230,
    )  # fmt: skip
    assert 0 == done.returncode, done.stderr[-3000:]
    summary = json.loads((tmp_path / "quick.json").read_text())["summary"]
    assert 2 == summary["floor_ms"]["n"] and 1 == summary["death_floor_block_p50_ms"]["n"]
    for side in ("branch", "base"):
        handoff, crash = summary[f"{side} handoff"], summary[f"{side} crash"]
        assert (1, 0, 1, 0) == (handoff["ms"]["n"], handoff["failed"], crash["ms"]["n"], crash["failed"])
        assert {"leader leave_script.begin", "successor accept_handoff.begin", "successor elected_line.end"} <= set(
            handoff["step_p50_ms"]
        )
        assert {"link_closed.begin", "bury_script.end", "elected_line.end"} <= set(crash["step_p50_ms"])
    assert {"leave", "bury"} <= set(summary["redis_us"])
