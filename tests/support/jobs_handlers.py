"""Handlers for the jobs tests' worker processes (``--handler tests.support.jobs_handlers:record``)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from leaderpool.jobs.wire import JobContext


def record(payload: Any, ctx: JobContext) -> Any:
    """Append the job to ``$JOBS_RECORD_DIR/<member>.jsonl`` as it starts (a line per delivery),
    sleep ``payload["sleep"]`` seconds, and reply who ran it."""
    line = {"job": ctx.job_id, "delivery": ctx.delivery, "term": ctx.term, "kind": ctx.kind, "payload": payload}
    with open(os.path.join(os.environ["JOBS_RECORD_DIR"], f"{ctx.member}.jsonl"), "a") as out:
        out.write(json.dumps(line) + "\n")
    if isinstance(payload, dict) and payload.get("sleep"):
        time.sleep(float(payload["sleep"]))
    return {"member": ctx.member, "delivery": ctx.delivery, "term": ctx.term}
