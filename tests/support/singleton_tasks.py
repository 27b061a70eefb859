"""Singleton tasks for the worker tests (``--singletons ... --task tests.support.singleton_tasks:NAME``)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis.asyncio

from leaderpool.errors import NotLeader, StaleTerm
from leaderpool.fencing import afenced_set

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


WRITES_FILE = "LEADERPOOL_TEST_SINGLETON_WRITES"
"""The variable naming the file :func:`fenced_writer` appends one line per write to."""
URL = "LEADERPOOL_TEST_REDIS_URL"
"""The Redis URL :func:`fenced_writer`'s last (zombie) write goes to, on a connection of its own."""


def written_key(name: str) -> str:
    return f"fenced:{{{name}}}"


async def fenced_writer(ctx: Any) -> None:
    """Writes its term to ``fenced:{NAME}`` every 20 ms with ``ctx.fenced_set`` while it runs,
    noting ``KIND NAME TERM MEMBER OUTCOME SENT REPLIED`` per write (unix times: a freeze may
    fall between a reply and its note, so the order of the lines is not the order of the writes).
    If its ownership ran out on the clock (frozen), one more write with its ended term, sent
    straight to Redis (the write a process had in flight when it froze): the singleton's fence
    must refuse it once a newer owner wrote."""
    key, path = written_key(str(ctx.name)), os.environ[WRITES_FILE]

    def note(kind: str, outcome: str, sent: float) -> None:
        with open(path, "a") as f:
            f.write(f"{kind} {ctx.name} {ctx.term} {ctx.member} {outcome} {sent:.6f} {time.time():.6f}\n")

    while not ctx.stopping:
        sent = time.time()
        try:
            await ctx.fenced_set(key, f"{ctx.term} {ctx.member}")
            note("write", "ok", sent)
        except NotLeader:
            note("write", "not_owner", sent)
            break
        except StaleTerm:
            note("write", "stale", sent)
        if await ctx.sleep(0.02):
            break
    deadline = ctx.renew_deadline
    if deadline is None or time.monotonic() < deadline:
        return  # stopped kindly: no write in flight
    client = redis.asyncio.Redis.from_url(os.environ[URL])
    sent = time.time()
    try:
        await afenced_set(client, key, f"{ctx.term} {ctx.member} zombie", ctx.term, pool=ctx.pool, singleton=ctx.name)
        note("zombie", "ok", sent)
    except StaleTerm:
        note("zombie", "stale", sent)
    finally:
        await client.aclose()
