"""The CLI start-up benchmark's quick mode runs end to end, so it cannot rot; it checks the shape
of what it wrote, never the speed (the suite runs on shared machines)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STATS = {"n", "p50", "p90", "p99", "max"}


@pytest.mark.timeout(180)
def test_quick_startup_run_writes_every_command(tmp_path: Path) -> None:
    """status, status --json, history and doctor each timed, beside the interpreter's own start."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.startup", "--quick", "--out", str(tmp_path), "--name", "quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert 0 == done.returncode, done.stderr[-3000:]
    assert "leaderpool-cli status" in done.stdout and "target: status and history in 100 ms" in done.stdout
    result = json.loads((tmp_path / "quick.json").read_text())
    assert {"status", "status_json", "history", "doctor"} == set(result["commands_ms"])
    for name, stats in result["commands_ms"].items():
        assert STATS <= set(stats) and 3 == stats["n"], name
    assert 3 == result["python_startup_ms"]["n"] and isinstance(result["met"], bool)
