"""Leader tasks for the schedule, leader-state and ``--exec`` tests (``--task tests.support.schedule_tasks:NAME``)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

RUNS_FILE = "LEADERPOOL_TEST_RUNS_FILE"
"""The variable naming the file the tasks below append one JSON line per event to."""
RUN_S = 0.1
"""How long a scheduled run lasts: long enough that an overlap would show."""


def _record(**fields: Any) -> None:
    line = json.dumps({**fields, "pid": os.getpid(), "t": time.time()}) + "\n"
    fd = os.open(os.environ[RUNS_FILE], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one write with O_APPEND: lines from processes never interleave
    finally:
        os.close(fd)


def read_runs(path: Path) -> list[dict[str, Any]]:
    """What the tasks below recorded in ``path`` (the RUNS_FILE), oldest first."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def starts(path: Path, member: str | None = None) -> list[dict[str, Any]]:
    """The recorded runs' start lines (of ``member``; None: anyone's)."""
    return [r for r in read_runs(path) if r["event"] == "start" and member in (None, r["member"])]


async def record_slot(ctx: Any) -> None:
    """One scheduled run: a start line, RUN_S of work, an end line."""
    _record(event="start", slot=ctx.slot, term=ctx.term, member=ctx.member)
    await asyncio.sleep(RUN_S)
    _record(event="end", slot=ctx.slot, term=ctx.term, member=ctx.member)


def record_slot_in_thread(ctx: Any) -> None:
    """:func:`record_slot` as a thread task."""
    _record(event="start", slot=ctx.slot, term=ctx.term, member=ctx.member)
    time.sleep(RUN_S)
    _record(event="end", slot=ctx.slot, term=ctx.term, member=ctx.member)


async def count_in_state(ctx: Any) -> None:
    """Resumes a counter from the leader state and saves it every 50 ms, recording what it read."""
    count = ctx.state.data["count"] if ctx.state else 0
    _record(event="resumed", count=count, version=ctx.state.version if ctx.state else 0, term=ctx.term)
    while not await ctx.sleep(0.05):
        count += 1
        saved = await ctx.save_state({"count": count})
        _record(event="saved", count=count, version=saved.version, term=ctx.term)


def count_in_state_in_thread(ctx: Any) -> None:
    """:func:`count_in_state` as a thread task."""
    count = ctx.state.data["count"] if ctx.state else 0
    _record(event="resumed", count=count, version=ctx.state.version if ctx.state else 0, term=ctx.term)
    while not ctx.sleep(0.05):
        count += 1
        saved = ctx.save_state({"count": count})
        _record(event="saved", count=count, version=saved.version, term=ctx.term)


_runs_here = 0


async def fail_second_run(ctx: Any) -> None:
    """Records each run; the second run in this process raises (a crash of the scheduled task)."""
    global _runs_here
    _runs_here += 1
    _record(event="start", slot=ctx.slot, term=ctx.term, member=ctx.member)
    if _runs_here == 2:
        raise RuntimeError("the scheduled run blew up")


LONG_RUN_S = 0.5
"""How long :func:`record_long_slot`'s runs last: longer than the overlap tests' period (0.2 s)."""


async def record_long_slot(ctx: Any) -> None:
    """A run that outlasts its period: a start line, LONG_RUN_S of work, an end line, or a
    ``cancelled`` line when the overlap policy cancels it."""
    _record(event="start", slot=ctx.slot, term=ctx.term, member=ctx.member)
    try:
        await asyncio.sleep(LONG_RUN_S)
    except asyncio.CancelledError:
        _record(event="cancelled", slot=ctx.slot, term=ctx.term, member=ctx.member)
        raise
    _record(event="end", slot=ctx.slot, term=ctx.term, member=ctx.member)
