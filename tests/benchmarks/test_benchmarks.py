"""The benchmark's quick mode runs end to end, so the benchmark cannot rot.

It runs ``python -m benchmarks --quick`` as users do and checks the shape of what it wrote,
never the speed: the suite runs on shared machines.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.registry import NAMES
from leaderpool.testing.processes import run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STATS = {"n", "p50", "p90", "p99", "max"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("bench")
    done = run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out), "--name", "quick"], cwd=ROOT, timeout=240
    )
    return done, out


@pytest.mark.timeout(300)
def test_quick_run_exits_zero(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """The quick run finishes with exit status 0 and prints the headline table."""
    done, _ = quick_run
    assert 0 == done.returncode, done.stderr[-3000:]
    assert "| contender" in done.stdout


@pytest.mark.timeout(300)
def test_quick_run_writes_every_section(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """The JSON holds the floor, every contender with every measurement, the scale test and the targets."""
    _, out = quick_run
    results = json.loads((out / "quick.json").read_text())
    assert {"meta", "floor", "contenders", "scale", "targets"} <= set(results)
    assert set(NAMES) == set(results["contenders"])
    for name, contender in results["contenders"].items():
        assert "error" not in contender, name
        for section in ("failover", "handoff", "lookup", "cost", "safety"):
            assert section in contender, (name, section)
        assert STATS <= set(contender["failover"]["from_expiry_ms"]), name
        assert STATS <= set(contender["failover"]["from_kill_ms"]), name
        assert STATS <= set(contender["handoff"]["from_signal_ms"]), name
        assert contender["failover"]["from_kill_ms"]["n"] >= 1, name
        assert contender["handoff"]["from_signal_ms"]["n"] >= 1, name
        assert isinstance(contender["safety"]["two_leader_moments"], int), name
        assert contender["cost"]["commandstats"]["commands_per_s"] > 0, name  # it renewed in the window
    assert isinstance(results["contenders"]["leaderpool"]["lookup"]["cache"]["cached_ns_per_call"], float)
    # Every pool the killed process led is led again, none left vacant or held by it. (With the
    # quick run's 1 s lease a loaded machine can move some leads before the kill: the benchmark
    # reports those, and they are no part of the mass kill.)
    kill = results["scale"]["mass_kill"]
    assert 0 < kill["pools_led_by_killed_process"] == kill["pools_led_again"], kill
    assert (0, 0) == (kill["pools_vacant_after"], kill["pools_held_by_killed_process_after"]), kill
    for lease, runs in results["fast_failover"].items():  # crash failover with fast failover on and off
        for mode in ("on", "off"):
            assert "error" not in runs[mode] and runs[mode]["from_kill_ms"]["n"] >= 1, (lease, mode)
    assert STATS <= set(results["floor"]["ping"]["redis_py_us"])
    assert results["targets"]
    for target in results["targets"]:
        assert {"target", "value", "met"} <= set(target), target
    assert (out / "quick.md").read_text().startswith("# Benchmark results")


@pytest.mark.timeout(300)
def test_quick_run_measures_schedule_drift(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """The schedule-drift section: steady lateness and failover gaps measured, no slot run twice."""
    _, out = quick_run
    drift = json.loads((out / "quick.json").read_text())["schedule_drift"]
    assert "error" not in drift, drift
    assert STATS <= set(drift["steady_lateness_ms"]) and drift["failover_gap_s"]["n"] >= 1
    assert 0 == drift["slots_run_twice"]


def test_quick_run_measures_jobs_against_rq_and_arq(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """The jobs section has latency, calls, throughput and the crash for leaderpool, RQ and arq;
    leaderpool lost no job when its consumer was SIGKILLed."""
    _, out = quick_run
    jobs = json.loads((out / "quick.json").read_text())["jobs"]
    assert {"leaderpool", "rq", "arq"} == set(jobs)
    for name, side in jobs.items():
        assert "error" not in side, (name, side.get("error"))
        assert STATS <= set(side["latency_ms"]) and side["latency_ms"]["n"] >= 1, name
        assert STATS <= set(side["call_ms"]) and side["call_ms"]["n"] >= 1, name
        assert side["throughput"]["jobs_per_s"] > 0, name
        assert isinstance(side["crash"]["lost"], int), name
    assert 0 == jobs["leaderpool"]["crash"]["lost"]
    assert jobs["leaderpool"]["crash"]["rerun_after_kill_s"] is not None
    assert "## Jobs: leaderpool against RQ and arq" in (out / "quick.md").read_text()


def test_quick_run_measures_the_locks_and_names(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """The locks section has every library's acquire/release and hand-over, and whereis_name."""
    _, out = quick_run
    locks = json.loads((out / "quick.json").read_text())["locks"]
    for library in ("leaderpool Lock", "python-redis-lock", "redis-py Lock"):
        assert STATS <= set(locks["acquire_release_us"][library]), library
        assert locks["handover_ms"][library]["n"] >= 1, library
    assert STATS <= set(locks["acquire_release_us"]["leaderpool AsyncLock"])
    assert isinstance(locks["whereis_name"]["cached_ns_per_call"], float)


def test_quick_run_measures_the_semaphores(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """The semaphores section: each implementation's acquire/release and hand-over."""
    _, out = quick_run
    section = json.loads((out / "quick.json").read_text())["semaphores"]
    assert 3 == len(section["acquire_release_us"]) == len(section["handover"])
    for name, handover in section["handover"].items():
        assert STATS <= set(section["acquire_release_us"][name]), name
        assert handover["ms"]["n"] >= 1, name


def test_quick_run_measures_the_read_write_and_fair_locks(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """The queued-locks section: acquire and hand-over of each read-write and fair lock, waiters
    woken per release and reader throughput; leaderpool's release wakes one waiter, the
    Redisson-style read-write lock's broadcast wakes more (every waiting writer tries again)."""
    _, out = quick_run
    section = json.loads((out / "quick.json").read_text())["queued_locks"]
    rw, fair = section["rwlock"], section["fair_lock"]
    assert {"leaderpool ReadWriteLock", "Redisson-style RReadWriteLock"} == set(rw)
    assert {"leaderpool Lock(fair=True)", "Redisson-style RFairLock", "python-redis-lock (not fair)"} == set(fair)
    for name, r in rw.items():
        for key in ("acquire_read_us", "acquire_write_us", "handover_write_to_read_ms", "handover_read_to_write_ms"):
            assert STATS <= set(r[key]) and r[key]["n"] >= 1, (name, key)
        assert r["reader_holds_per_s"] > 0, name
    for name, f in fair.items():
        assert f["handover_ms"]["n"] >= 1 and STATS <= set(f["acquire_us"]), name
    assert 1 == rw["leaderpool ReadWriteLock"]["writers_woken_per_release"]["max"]
    assert 1 == fair["leaderpool Lock(fair=True)"]["woken_per_release"]["max"]
    assert rw["Redisson-style RReadWriteLock"]["writers_woken_per_release"]["max"] > 1
    assert "## Read-write locks and fair locks" in (out / "quick.md").read_text()


def test_quick_run_measures_the_exec_tree(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """The exec-tree section: the old tree's last act, its end, the new command's first act, and
    no round where the old tree acted after the new leader's command."""
    _, out = quick_run
    tree = json.loads((out / "quick.json").read_text())["exec_tree"]
    assert "error" not in tree, tree
    for key in ("last_act_after_kill_ms", "gone_after_kill_ms", "first_act_after_kill_ms", "gap_ms"):
        assert STATS <= set(tree[key]) and tree[key]["n"] >= 1, key
    assert 0 == tree["order_violations"]
    assert "## Leader work stops entirely" in (out / "quick.md").read_text()
