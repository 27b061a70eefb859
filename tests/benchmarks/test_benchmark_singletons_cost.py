"""The singletons' cost benchmark's quick mode runs (so it cannot rot) and measures what it says."""

from __future__ import annotations

from benchmarks import singletons_cost
from leaderpool.testing.redis_server import RedisServer


def test_the_singletons_cost_benchmark_measures_a_steady_window(redis_one: RedisServer) -> None:
    """Every singleton placed and running, then a window: Redis CPU and commands by command, each
    member's CPU, late beats and stops counted; the report has its section."""
    r = singletons_cost.measure(redis_one.url, 60, 3, 2.0, 2.0, 0.5)
    assert 60 == r["singletons"] and {"m00", "m01", "m02"} == set(r["member_cpu_pct"])
    assert r["commands_per_s"] > 0 and "evalsha" in r["steady"]["by_command_per_s"]
    assert r["commands_per_member_beat"] > 0 and r["redis_cpu_pct"] >= 0
    assert r["late_beats"] >= 0 and r["singletons_stopped_in_window"] >= 0
    assert any(line.startswith("## Singletons: steady cost") for line in singletons_cost.markdown_lines(r))
