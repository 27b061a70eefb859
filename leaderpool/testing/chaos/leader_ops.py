"""The leader's recorded work: operations on a register and a counter, each logged as an event of
a history (:mod:`leaderpool.testing.history`) in the member's act log, one ``op {json}`` line per
event, before and after it happens:

- ``write`` the register (``chaos:{POOL}:register``) with a fenced write of a value unique to
  this process; ``read`` it (a plain GET);
- ``incr`` the counter (``chaos:{POOL}:counter``): GET it, then a fenced write of that plus one,
  the read-modify-write an application's leader does; its value is ``[read, written]``.

Completions: ``ok``; ``fail`` when it certainly took no effect (the fence refused it, the lead
was over before it was sent, the GET of an increment failed); ``info`` when unknown (a timeout,
a reset). Every call is bounded by what is left of the lead (its renew deadline): an answer that
comes later is not one the leader may act on, so it is ``info``, as a client that timed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import time
from typing import IO, Any, TypeVar

import redis.asyncio

from leaderpool.errors import LeaseLost, NotLeader, StaleTerm
from leaderpool.testing.chaos.skewed_clock import true_monotonic, true_time
from leaderpool.util.timeouts import within

T = TypeVar("T")
STARTED = true_time()
INCARNATION = f"{os.getpid()}-{round(STARTED * 1e6)}"
"""This process start, until members carry an incarnation of their own: pid and start time."""
_values = itertools.count(1)


REGISTER, COUNTER = "register", "counter"
"""The objects' names in the history (each is checked alone)."""


def register_key(pool: str) -> str:
    return f"chaos:{{{pool}}}:register"


def counter_key(pool: str) -> str:
    return f"chaos:{{{pool}}}:counter"


class _Refused(Exception):
    """Certainly not done: the op is a ``fail``."""


class OpLog:
    """Writes one lead's events. Its ``process`` is ``member/pid/term``: a lead that ends while an
    operation is out leaves it open (indeterminate), and Jepsen's rule is that a process with an
    open operation never invokes again; the next lead of this process is another one."""

    def __init__(self, out: IO[str], ctx: Any) -> None:
        self.out, self.ctx = out, ctx
        self.process = f"{ctx.member}/{os.getpid()}/{ctx.term}"

    def event(self, type_: str, f: str, key: str, value: Any) -> None:
        record = {
            "type": type_, "f": f, "key": key, "value": value, "process": self.process,
            "incarnation": INCARNATION, "term": self.ctx.term, "wall": true_time(), "mono": true_monotonic(),
        }  # fmt: skip
        self.out.write("op " + json.dumps(record, separators=(",", ":")) + "\n")


def _left(ctx: Any) -> float:
    deadline = ctx.renew_deadline
    return 0.0 if deadline is None else deadline - time.monotonic()


async def _bounded(ctx: Any, awaitable: Any) -> Any:
    left = _left(ctx)
    if left <= 0 or ctx.stopping:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        raise _Refused
    return await within(awaitable, left)


async def _fenced(ctx: Any, key: str, value: int) -> None:
    try:
        await _bounded(ctx, ctx.fenced_set(key, str(value)))
    except (NotLeader, LeaseLost, StaleTerm) as exc:  # refused, or never sent: took no effect
        raise _Refused from exc


async def _read(ctx: Any, client: redis.asyncio.Redis, key: str) -> int | None:
    raw = await _bounded(ctx, client.get(key))
    return None if raw is None else int(raw)


async def one(ctx: Any, log: OpLog, client: redis.asyncio.Redis, rng: random.Random) -> None:
    """One operation, drawn at random, recorded as invoke and completion."""
    pool, kind = ctx.pool, rng.random()
    if kind < 0.35:
        value = os.getpid() * 1_000_000 + next(_values)
        await _recorded(log, "write", REGISTER, value, _fenced(ctx, register_key(pool), value), value)
    elif kind < 0.65:
        await _recorded(log, "read", REGISTER, None, _read(ctx, client, register_key(pool)), None)
    else:
        await _increment(ctx, log, client)


async def _recorded(log: OpLog, f: str, key: str, value: Any, done: Any, result: Any, invoked: bool = False) -> None:
    if not invoked:
        log.event("invoke", f, key, value)
    try:
        got = await done
    except _Refused:
        log.event("fail", f, key, value)
    except Exception:  # asyncio.CancelledError is not one: a killed task leaves the op open (info)
        log.event("info", f, key, value)
    else:
        log.event("ok", f, key, got if f == "read" else result)


async def _increment(ctx: Any, log: OpLog, client: redis.asyncio.Redis) -> None:
    key = counter_key(ctx.pool)
    log.event("invoke", "incr", COUNTER, None)
    try:
        read = await _read(ctx, client, key)
    except Exception:  # nothing was written
        log.event("fail", "incr", COUNTER, None)
        return
    pair = [read or 0, (read or 0) + 1]
    await _recorded(log, "incr", COUNTER, pair, _fenced(ctx, key, pair[1]), pair, invoked=True)


async def work(ctx: Any, out: IO[str], url: str | None, every_s: float) -> None:
    """While leading: one operation every ``every_s``, on a client of its own for the reads."""
    if not url:  # nothing to work on: wait out the lead (the task ends when any of its loops does)
        await ctx.stop.wait()
        return
    log = OpLog(out, ctx)
    rng = random.Random(INCARNATION)
    client = redis.asyncio.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        while not ctx.stopping:
            await one(ctx, log, client, rng)
            if await ctx.sleep(every_s):
                return
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(client.aclose())
