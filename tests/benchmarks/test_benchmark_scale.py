"""The big-pool and many-pools benchmarks' quick modes run end to end, so they cannot rot; they
check the shape of what they wrote, never the speed (the suite runs on shared machines)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def quick_run(module: str, tmp_path: Path) -> dict[str, Any]:
    """``python -m benchmarks.MODULE --quick``: exit 0, and the result it wrote."""
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", "--quick", "--out", str(tmp_path), "--name", "quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert 0 == done.returncode, done.stderr[-3000:]
    result: dict[str, Any] = json.loads((tmp_path / "quick.json").read_text())
    return result


@pytest.mark.timeout(180)
def test_quick_bigpool_run_measures_every_step(tmp_path: Path) -> None:
    """The crowd in one process, the big pool's steady state, join, leave, rolling restart and
    crash failovers each measured and written."""
    result = quick_run("bigpool", tmp_path)
    assert 20 == result["crowd"]["members"] and result["crowd"]["heartbeat_late_in_window"] >= 0
    big = result["big_pool"]
    for step in ("join", "leave", "rolling_restart"):
        assert {"action_wall_ms", "redis_cpu_ms", "commands", "records_read"} <= set(big[step]), step
    assert 1 == big["crash_failover"]["from_lease_expiry_ms"]["n"]


@pytest.mark.timeout(180)
def test_quick_manypools_run_writes_the_mass_kill(tmp_path: Path) -> None:
    result = quick_run("manypools", tmp_path)
    assert 20 == result["pools"] and result["mass_kill"]["all_led_again"]
    assert result["worker_rss_mb_per_1000_members"] > 0


@pytest.mark.timeout(180)
def test_quick_overload_run_drops_the_load_and_sees_every_pool_led(tmp_path: Path) -> None:
    """A smoke run (no real overload): processes start together, some are stopped, and every
    pool is led again, by one of the processes kept, for a whole lease."""
    result = quick_run("overload", tmp_path)
    assert result["recovered"] and 30 == result["pools_led_after"]
    assert 0 == result["leaders_in_stopped_processes_after"]
    assert result["overloaded"] and result["recovering"]


def test_beatload_drives_every_members_beat_and_projects_to_the_real_rate() -> None:
    """``python -m benchmarks.beatload`` (a short run, so it cannot rot): no faster than the real
    rate, and the projection is Redis's CPU per beat times that rate."""
    from benchmarks.beatload import measure

    r = measure(pools=4, seconds=0.5, batch=10)
    assert 20 == r["members"] and 12 == r["real_rate_per_s"] and 0 < r["beats"] <= 20
    assert r["redis_cpu_us_per_beat"] > 0 and r["script_us_per_call"] > 0


def test_beatcost_counts_a_beats_commands_and_client_cpu() -> None:
    """``python -m benchmarks.beatcost`` (a short run, so it cannot rot): every beat is one script
    call with one MGET and one ZADD inside, a pool of three averages under five commands inside the
    script per beat (followers three, the leader six, an eighth of the beats two more), and the
    process's CPU per beat is counted."""
    from benchmarks.beatcost import measure

    r = measure(pools=2, members=3, ttl=0.6, warmup=0.5, window=1.5)
    per = r["by_command_per_beat"]
    assert "6/6" == r["led_pools_of_members"] and r["beats"] >= 20, r
    assert 1.0 == per["evalsha"] and 0.9 <= per["mget"] <= 1.0 and 0.9 <= per["zadd"] <= 1.0, r
    assert r["commands_inside_scripts_per_beat"] < 5 and r["client_cpu_us_per_beat"] > 0, r
