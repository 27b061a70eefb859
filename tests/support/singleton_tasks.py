"""Singleton tasks for the worker tests (``--singletons ... --task tests.support.singleton_tasks:NAME``)."""

from __future__ import annotations

import json
import os
from typing import Any

RUNS_FILE = "LEADERPOOL_TEST_SINGLETON_RUNS"
"""The variable naming the file each run appends one JSON line to: name, term, member, state."""


async def counter(ctx: Any) -> None:
    """Counts its runs in the singleton's state (saved at once, so a hand-off passes it on), notes
    each run in $LEADERPOOL_TEST_SINGLETON_RUNS, then runs until stopped."""
    runs = (ctx.state or {}).get("runs", 0) + 1
    await ctx.save_state({"runs": runs, "by": ctx.member})
    _note(ctx, runs)
    await ctx.stop.wait()


async def crash_once(ctx: Any) -> None:
    """Its first run saves a mark and raises; the restart (same term) finds the mark, notes its
    run and runs until stopped."""
    if not (ctx.state or {}).get("crashed"):
        await ctx.save_state({"crashed": True})
        raise RuntimeError("the singleton's task blew up")
    _note(ctx, 1)
    await ctx.stop.wait()


def in_thread(ctx: Any) -> None:
    """A thread task: counts its runs in the state, as :func:`counter` does."""
    runs = (ctx.state or {}).get("runs", 0) + 1
    ctx.save_state({"runs": runs, "by": ctx.member})
    _note(ctx, runs)
    ctx.stop.wait()


def _note(ctx: Any, runs: int) -> None:
    path = os.environ.get(RUNS_FILE)
    if path:
        record = {"name": ctx.name, "term": ctx.term, "member": ctx.member, "runs": runs, "state": ctx.state}
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
