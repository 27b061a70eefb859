"""The jobs benchmark's handler, one body for every contender (leaderpool, RQ, arq), so each
does the same work; what it records goes to the contender's own Redis database.

A payload says what to do: ``lat`` records the time from submit (``t``, ``time.monotonic()``,
one clock for every process on the machine) to the handler's start; ``tput`` counts and, at the
``n``-th job, records the first start and the last end; ``crash`` records its start (pid, time),
sleeps, and records its end; ``call`` returns ``v``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis

_client: redis.Redis | None = None
_tput: dict[str, float] = {}
_count = [0]


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["BENCH_JOBS_URL"])
    return _client


def handle(payload: dict[str, Any]) -> Any:
    started = time.monotonic()
    kind = payload["k"]
    if kind == "lat":
        _redis().rpush("bench:lat", repr(started - payload["t"]))
    elif kind == "tput":
        _count[0] += 1
        _tput.setdefault("first", started)
        if _count[0] >= payload["n"]:
            _redis().rpush("bench:tput", json.dumps({"first": _tput["first"], "last": time.monotonic()}))
            _count[0] = 0
            _tput.clear()
    elif kind == "crash":
        _redis().rpush("bench:starts", json.dumps({"id": payload["id"], "pid": os.getpid(), "t": started}))
        time.sleep(payload.get("sleep", 0))
        _redis().rpush("bench:done", payload["id"])
    elif kind == "call":
        return payload["v"]
    return None


def leaderpool_handler(payload: dict[str, Any], ctx: Any) -> Any:
    """``leaderpool-worker --handler benchmarks.jobs_handlers:leaderpool_handler``."""
    return handle(payload)


def rq_handler(payload: dict[str, Any]) -> Any:
    return handle(payload)


async def arq_handler(ctx: dict[str, Any], payload: dict[str, Any]) -> Any:
    return handle(payload)
