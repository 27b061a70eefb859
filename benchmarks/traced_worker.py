"""A leaderpool worker with step probes: ``python benchmarks/traced_worker.py <worker flags>``.

Run as a script (not ``-m``) so that any checkout's interpreter can run it: the probes wrap the
functions of whatever ``leaderpool`` that interpreter imports (this branch's, or a worktree of
``main`` for an A/B). Each probe writes ``{"trace": NAME, "ns": time.monotonic_ns()}`` straight to
file descriptor 1 (one ``write``, so lines from a process never mix); CLOCK_MONOTONIC is one
clock for every process on the machine, so the steps of the leaving leader, Redis's reply and the
successor line up. :mod:`benchmarks.path_steps` reads them. A probe costs about 2 us; a function
missing from the checkout is skipped (the list covers both sides of the A/B).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
import time
from typing import Any

PROBES: tuple[tuple[str, str, str], ...] = (
    # (module, attribute path, probe name); "begin" / "end" added for coroutines and marked functions
    # the leaving leader
    ("leaderpool.worker.worker_service", "ShutdownSignals.__call__", "sig_handler"),
    ("leaderpool.election.leadership", "Leadership.shutdown", "core_shutdown"),
    ("leaderpool.election.leadership", "Leadership.step_down", "step_down"),
    ("leaderpool.worker.worker_service", "Worker._on_revoked", "on_revoked"),
    ("leaderpool.worker.tasks", "TaskRunner.stop", "task_stop"),
    ("leaderpool.worker.tasks", "TaskRunner.halt", "task_halt"),
    ("leaderpool.election.leadership", "Leadership.acknowledged", "acknowledged"),
    ("leaderpool.backend.pool_store", "PoolStore.leave", "leave_script"),
    ("leaderpool.backend.pool_store", "PoolStore.release", "release_script"),
    ("leaderpool.backend.batching", "Batcher._send", "batch_send"),
    # the follower (either path)
    ("leaderpool.backend.watcher", "Watcher._deliver", "watcher_deliver"),
    ("leaderpool.election.notifications", "Notifications.on_message", "on_message"),
    ("leaderpool.election.contest", "Contest.accept_handoff", "accept_handoff"),
    ("leaderpool.election.dispatch", "Callbacks.call", "callback"),
    ("leaderpool.fast_failover.endpoints", "Link._closed", "link_closed"),
    ("leaderpool.fast_failover.failover", "FastFailover.on_trigger", "on_trigger"),
    ("leaderpool.fast_failover.failover", "FastFailover.still_subscribed", "still_subscribed"),
    ("leaderpool.election.core", "ElectionCore._turn", "turn"),
    ("leaderpool.election.contest", "Contest.claim", "claim"),
    ("leaderpool.backend.pool_store", "PoolStore.bury_and_claim", "bury_script"),
    ("leaderpool.election.leadership", "Leadership.announce", "announce"),
    ("leaderpool.worker.worker_service", "Worker._on_elected", "on_elected"),
    ("leaderpool.worker.json_events", "EventWriter.elected", "elected_line"),
)


def emit(name: str) -> None:
    os.write(1, b'{"trace":"%s","ns":%d}\n' % (name.encode(), time.monotonic_ns()))


def _wrap(fn: Any, name: str) -> Any:
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def probed_async(*args: Any, **kwargs: Any) -> Any:
            emit(name + ".begin")
            try:
                return await fn(*args, **kwargs)
            finally:
                emit(name + ".end")

        return probed_async

    @functools.wraps(fn)
    def probed(*args: Any, **kwargs: Any) -> Any:
        emit(name + ".begin")
        try:
            return fn(*args, **kwargs)
        finally:
            emit(name + ".end")

    return probed


def install() -> list[str]:
    """Wrap every probe point this checkout has; returns the names of those it has not."""
    missing = []
    for module_name, path, name in PROBES:
        try:
            owner: Any = importlib.import_module(module_name)
        except ImportError:
            missing.append(name)
            continue
        *parents, attr = path.split(".")
        for part in parents:
            owner = getattr(owner, part, None)
        raw = None if owner is None else inspect.getattr_static(owner, attr, None)
        if raw is None:
            missing.append(name)
            continue
        if isinstance(raw, staticmethod):
            setattr(owner, attr, staticmethod(_wrap(raw.__func__, name)))
        else:
            setattr(owner, attr, _wrap(raw, name))
    return missing


if __name__ == "__main__":
    sys.path.pop(0)  # benchmarks/ itself: its module names must not shadow anything
    install()
    from leaderpool.worker.main import main

    sys.exit(main(sys.argv[1:]))
