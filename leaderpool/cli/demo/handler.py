"""The demo workers' handler (``--handler leaderpool.cli.demo.handler:tracked_work``), after the
seed's ``tracked_work``: it reports each run as a JSON line on the worker's stdout (where the demo
reads the workers' events), works for ``payload["ms"]`` milliseconds, and replies who ran it."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from leaderpool.jobs.wire import JobContext


def tracked_work(payload: Any, ctx: JobContext) -> Any:
    line = {"event": "job_ran", "member": ctx.member, "job": ctx.job_id, "delivery": ctx.delivery,
            "term": ctx.term, "kind": ctx.kind, "t": time.time()}  # fmt: skip
    sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    if isinstance(payload, dict) and payload.get("ms"):
        time.sleep(float(payload["ms"]) / 1000)
    return {"member": ctx.member, "delivery": ctx.delivery, "term": ctx.term, "kind": ctx.kind}
