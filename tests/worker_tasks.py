"""Leader tasks for the worker tests (``--task tests.worker_tasks:NAME``)."""

from __future__ import annotations

import os
import time  # noqa: F401  (tests load "tests.worker_tasks:time.sleep": a dotted attribute path)
from typing import Any

CRASH_FILE = "LEADERPOOL_TEST_CRASH_FILE"
"""The variable naming the file whose appearance makes :func:`crash_on_cue` fail."""

NOT_CALLABLE = 42


async def crash_soon(ctx: Any) -> None:
    """Leads for a moment, then fails: the worker must step down (task_failed) and rejoin."""
    await ctx.sleep(0.2)
    raise RuntimeError("the leader task blew up")


async def crash_on_cue(ctx: Any) -> None:
    """Leads until the test creates the file named by $LEADERPOOL_TEST_CRASH_FILE, then fails:
    the test decides when the crash happens (after the rest of the pool is in place)."""
    cue = os.environ[CRASH_FILE]
    while not os.path.exists(cue):
        if await ctx.sleep(0.02):
            return
    raise RuntimeError("the leader task blew up")


def fenced_writer(ctx: Any) -> None:
    """A thread task: records who leads under the term's fence, then idles until stopped."""
    ctx.fenced_set(f"lp-test:{{{ctx.pool}}}:owner", f"{ctx.member}:{ctx.term}")
    while not ctx.sleep(0.05):
        pass
