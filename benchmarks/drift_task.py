"""The scheduled task of :mod:`benchmarks.schedule_drift`: one JSON line per run, nothing else."""

from __future__ import annotations

import json
import os
import time
from typing import Any

RUNS_FILE = "LEADERPOOL_BENCH_RUNS_FILE"


async def record_run(ctx: Any) -> None:
    """Record this run's slot, its start (wall clock, as the slot's) and who ran it."""
    line = json.dumps({"slot": ctx.slot, "t": time.time(), "member": ctx.member, "term": ctx.term}) + "\n"
    fd = os.open(os.environ[RUNS_FILE], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
