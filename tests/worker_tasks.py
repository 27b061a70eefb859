"""Leader tasks for the worker tests (``--task tests.worker_tasks:NAME``)."""

from __future__ import annotations

import asyncio
import json
import os
import time  # also loaded as "tests.worker_tasks:time.sleep": a dotted attribute path
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


ACTS_FILE = "LEADERPOOL_TEST_ACTS_FILE"
"""The variable naming the file :func:`act_often` appends its acts to."""


def _record_act(out: Any, ctx: Any, now: float) -> None:
    out.write(json.dumps({"t": now, "deadline": ctx.renew_deadline, "term": ctx.term}) + "\n")
    out.flush()


async def act_often(ctx: Any) -> None:
    """Acts every few milliseconds on its own timer, checking ``ctx.stop`` right before each act:
    one line per act with the monotonic time taken before the check and the renew deadline the
    task saw (so an act recorded at or after that deadline is an act after the lead ended)."""
    with open(os.environ[ACTS_FILE], "a") as out:
        while True:
            await asyncio.sleep(0.003)
            now = time.monotonic()
            if ctx.stop.is_set():
                return
            _record_act(out, ctx, now)


def act_often_in_a_thread(ctx: Any) -> None:
    """:func:`act_often` as a thread task."""
    with open(os.environ[ACTS_FILE], "a") as out:
        while True:
            time.sleep(0.003)
            now = time.monotonic()
            if ctx.stopping:
                return
            _record_act(out, ctx, now)
