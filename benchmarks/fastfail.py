"""Crash failover with fast failover on and off (:mod:`leaderpool.fast_failover.failover`), with a short and a
long lease: three leaderpool workers per pool, the leader SIGKILLed at a random phase of its
renewals, timed from the kill (not from the lease's expiry) to the new leader acting (its
``elected`` event), on the same redis-server as the other contenders."""

from __future__ import annotations

import dataclasses
import signal
import socket
import subprocess
import sys
import time
from typing import IO, Any

from benchmarks.registry import LEADERPOOL, Contender
from benchmarks.scenarios import BenchError, PoolRun, progress
from benchmarks.stats import summary

LEADERPOOL_LEASE_ONLY = dataclasses.replace(
    LEADERPOOL,
    name="leaderpool-lease",
    title="leaderpool (worker, --no-fast-failover)",
    extra_args=(*LEADERPOOL.extra_args, "--no-fast-failover"),
)
"""The worker with fast failover off: every crash waits for the lease."""

TARGET_P50_MS, TARGET_P99_MS = 5.0, 20.0
"""With fast failover on, from SIGKILL to the new leader acting, whatever the lease."""


def crash_rounds(contender: Contender, url: str, ttl: float, rounds: int, log: IO[str]) -> dict[str, Any]:
    """``rounds`` crash rounds on a fresh pool of three; the timings, and the safety check."""
    pool = f"bench-ff-{contender.name}-{ttl:g}s".replace(".", "_")
    run = PoolRun(contender, url, pool, ttl, 3, log)
    out: dict[str, Any] = {"ttl_s": ttl, "rounds": rounds}
    samples: list[dict[str, Any]] = []
    try:
        run.start()
        for i in range(rounds):
            samples.append(run.crash_round())
            r = samples[-1]
            progress(f"{contender.name} ttl {ttl:g}s: crash {i + 1}/{rounds}: "
                     + (f"{r['from_kill_s'] * 1000:.1f} ms after the kill" if r["ok"] else str(r)))  # fmt: skip
        run.wait_stable()
    except BenchError as exc:
        out["error"] = str(exc)
        progress(f"{contender.name} ttl {ttl:g}s: FAILED: {exc}")
    finally:
        out["safety"] = run.safety()
        run.close()
    ok = [r for r in samples if r["ok"]]
    out["failed_rounds"] = len(samples) - len(ok)
    out["from_kill_ms"] = summary([r["from_kill_s"] for r in ok], scale=1e3)
    out["from_expiry_ms"] = summary([r["from_expiry_s"] for r in ok if r["from_expiry_s"] is not None], scale=1e3)
    out["samples"] = samples
    return out


_HOLDER = (
    "import socket, sys, time; import leaderpool.worker.worker_service, leaderpool.fast_failover.failover; "
    "s = socket.create_connection(('127.0.0.1', int(sys.argv[1]))); s.sendall(b'x'); time.sleep(60)"
)


def death_floor(samples: int, idle_s: float = 0.1) -> dict[str, Any]:
    """The floor under any fast failover: from SIGKILL of a Python process holding a TCP
    connection (with the worker's modules imported, as a leader has), idle for ``idle_s``, until
    its peer reads the close. Its kernel tears the process down (memory first) before it closes
    the sockets; on a VM, processes idle for seconds (a long lease's heartbeat) are slower to."""
    took = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        for _ in range(samples):
            holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(port)])
            try:
                conn, _ = server.accept()
                with conn:
                    conn.recv(1)
                    time.sleep(idle_s)
                    killed = time.time()
                    holder.send_signal(signal.SIGKILL)
                    conn.recv(1)  # b"": the close
                    took.append(time.time() - killed)
            finally:
                holder.kill()
                holder.wait()
    key = "kill_to_peer_eof_ms" if idle_s < 1 else f"kill_to_peer_eof_after_{idle_s:g}s_idle_ms"
    return {key: summary(took, scale=1e3)}


def run_fast_failover(
    url: str, ttls: list[float], rounds_on: int, rounds_off: int, log: IO[str]
) -> dict[str, dict[str, Any]]:
    """For each lease: ``{"on": ..., "off": ...}``, keyed ``"<ttl>s"``."""
    results: dict[str, dict[str, Any]] = {}
    for ttl in ttls:
        results[f"{ttl:g}s"] = {
            "on": crash_rounds(LEADERPOOL, url, ttl, rounds_on, log),
            "off": crash_rounds(LEADERPOOL_LEASE_ONLY, url, ttl, rounds_off, log),
        }
    return results
