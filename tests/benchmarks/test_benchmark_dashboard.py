"""The dashboard benchmark's quick mode runs end to end, so it cannot rot; it checks the shape of
what it wrote, never the speed (the suite runs on shared machines)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from leaderpool.testing.processes import run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STATS = {"n", "p50", "p90", "p99", "max"}


@pytest.mark.timeout(180)
def test_quick_dashboard_run_times_every_browser(tmp_path: Path) -> None:
    """3 resigns seen by 5 browsers (15 samples) beside one that never reads, and /api/status."""
    done = run(
        [sys.executable, "-m", "benchmarks.dashboard", "--quick", "--out", str(tmp_path), "--name", "quick"],
        cwd=ROOT, timeout=170,
    )  # fmt: skip
    assert 0 == done.returncode, done.stderr[-3000:]
    assert "election -> status event in every browser" in done.stdout
    result = json.loads((tmp_path / "quick.json").read_text())
    assert (5, 3) == (result["browsers"], result["rounds"])
    assert STATS <= set(result["event_after_election_ms"]) and 15 == result["event_after_election_ms"]["n"]
    assert 3 == result["spread_first_to_last_browser_ms"]["n"]
    assert 10 == result["api_status_ms"]["n"]
    assert isinstance(result["met"], bool)
