"""The singletons benchmark's quick mode runs (so it cannot rot) and measures what it says."""

from __future__ import annotations

from benchmarks import singletons
from leaderpool.testing.redis_server import RedisServer


def test_the_singletons_benchmark_measures_a_move_a_join_and_a_crash(redis_one: RedisServer) -> None:
    """A move per round, a join that moves no more than the issue's bound, a SIGKILLed leader
    whose singletons all run on the others again; the report has its section."""
    results = singletons.measure(redis_one.url, quick=True, rounds=2)
    assert 2 == results["handoff"]["ms"]["n"]
    join = results["rebalance"]
    assert 0 < join["moved"] <= join["bound"]
    assert 1 == results["sigkill"]["ms"]["n"] and results["sigkill"]["held"] > 0
    assert any(line.startswith("## Singletons") for line in singletons.markdown_lines(results))
