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
    path = os.environ.get(RUNS_FILE)
    if path:
        record = {"name": ctx.name, "term": ctx.term, "member": ctx.member, "runs": runs}
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
    await ctx.stop.wait()
