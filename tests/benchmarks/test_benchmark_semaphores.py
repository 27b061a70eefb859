"""The semaphores benchmark's quick mode runs (so it cannot rot) and measures what it says."""

from __future__ import annotations

from benchmarks import semaphores
from leaderpool.testing.redis_server import RedisServer

STATS = {"n", "p50", "p90", "p99"}


def test_the_semaphore_benchmark_measures_every_implementation(redis_one: RedisServer) -> None:
    """Acquire + release and hand-over for leaderpool and both patterns; the polling waiter sends
    commands while it waits, leaderpool's waiter does not (it blocks on its wake-up list)."""
    results = semaphores.measure(redis_one.url, 2)
    assert 3 == len(results["acquire_release_us"])
    for name in results["acquire_release_us"]:
        assert STATS <= set(results["acquire_release_us"][name]), name
        assert 2 == results["handover"][name]["ms"]["n"], name
    polling = results["handover"]["polling (counter, 50 ms)"]["commands_during_1s_wait"]
    assert polling > 5 > results["handover"]["leaderpool Semaphore"]["commands_during_1s_wait"]
    assert any(line.startswith("## Semaphores") for line in semaphores.markdown_lines(results))
