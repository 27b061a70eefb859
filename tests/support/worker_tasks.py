"""Leader tasks for the worker tests (``--task tests.support.worker_tasks:NAME``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time  # also loaded as "tests.support.worker_tasks:time.sleep": a dotted attribute path
from typing import Any

CRASH_FILE = "LEADERPOOL_TEST_CRASH_FILE"
"""The variable naming the file whose appearance makes :func:`crash_on_cue` fail."""

NOT_CALLABLE = 42

IMPORTING_FILE = "LEADERPOOL_TEST_IMPORTING_FILE"
"""The variable naming the file ``tests.support.slow_import_task`` creates when its (slow) import begins."""


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


STOPPING_FILE = "LEADERPOOL_TEST_STOPPING_FILE"
"""The variable naming the file the stubborn tasks create once they were asked to stop."""


def _note_stopping() -> None:
    with open(os.environ[STOPPING_FILE], "w"):
        pass


def ignores_the_stop_in_a_thread(ctx: Any) -> None:
    """A thread task that, once asked to stop, goes on for an hour (a thread cannot be killed)."""
    ctx.stop.wait()
    _note_stopping()
    time.sleep(3600)


async def swallows_cancellation(ctx: Any) -> None:
    """An async task that ignores the stop and swallows every cancellation, for an hour."""
    await ctx.stop.wait()
    _note_stopping()
    end = time.monotonic() + 3600
    while time.monotonic() < end:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(1)
