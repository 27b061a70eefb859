"""The task the singletons' chaos run gives its workers (``--singletons-count N --task
leaderpool.testing.chaos.singleton_task:singleton_task``): one run per singleton a member owns.

While it runs it records, in the member's act log (``$CHAOS_LOG``), one line per deed:

- ``sstart NAME TERM MEMBER PID T``: the run began (after the claim that granted ``TERM``).
- ``sact NAME TERM MEMBER PID T``: an *unfenced* act every ``$CHAOS_SINGLETON_ACT_S`` (50 ms).
  ``T`` is read before the task checks that the singleton still runs here, as the leader's
  acts are (:mod:`.task`): the check that allowed the act came at or after ``T``.
- ``sfence NAME TERM MEMBER PID T_SEND T_REPLY OUTCOME``: the fenced write of each increment
  (``ctx.fenced_set``, the singleton's own fence); OUTCOME ``ok``, ``stale`` or ``error``.
- ``op {json}``: the increment, every ``$CHAOS_SINGLETON_INCR_EVERY`` acts, of the singleton's
  counter (``chaos:{POOL}:s:NAME``: a GET, then a fenced write of that plus one), as a history
  event (:mod:`leaderpool.testing.history`), key ``counter:NAME``.
- ``sstop NAME TERM MEMBER PID T LAPSED``: the run ended; ``LAPSED`` 1 when its ownership ran out
  on the clock (frozen, cut off) rather than being stopped: then its last act, not ``T``, is
  the end of its ownership, and one ``szombie`` write follows (the same fields as ``sfence``):
  the last value it wrote, written again with its ended term on a connection of its own, the
  in-flight write of a stale owner, which the fence must refuse once a newer owner wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from typing import IO, Any

import redis.asyncio

from leaderpool.errors import NotLeader, StaleTerm
from leaderpool.fencing import afenced_set
from leaderpool.testing.chaos.skewed_clock import true_monotonic, true_time
from leaderpool.testing.chaos.task import LOG_VAR, URL_VAR, ZOMBIE_TIMEOUT_S
from leaderpool.util.timeouts import within

ACT_VAR = "CHAOS_SINGLETON_ACT_S"
INCR_VAR = "CHAOS_SINGLETON_INCR_EVERY"
TASK = "leaderpool.testing.chaos.singleton_task:singleton_task"

_zombies: set[asyncio.Task[None]] = set()  # kept referenced until done


def counter_key(pool: str, name: str) -> str:
    return f"chaos:{{{pool}}}:s:{name}"


def history_key(name: str) -> str:
    """The singleton's counter, as an object of the history (each is checked alone)."""
    return f"counter:{name}"


class _Refused(Exception):
    """Certainly not done: the increment is a ``fail``."""


class _Run:
    """One run of one singleton: its lines, and its increments."""

    def __init__(self, ctx: Any, out: IO[str], client: redis.asyncio.Redis) -> None:
        self.ctx, self.out, self.client = ctx, out, client
        self.head = f"{ctx.name} {ctx.term} {ctx.member} {os.getpid()}"
        self.process = f"{ctx.member}/{os.getpid()}/{ctx.name}/{ctx.term}"
        self.key = counter_key(ctx.pool, ctx.name)
        self.last_written: int | None = None

    def line(self, kind: str, *fields: object) -> None:
        self.out.write(" ".join([kind, self.head, *map(str, fields)]) + "\n")

    def event(self, type_: str, value: Any) -> None:
        record = {
            "type": type_, "f": "incr", "key": history_key(self.ctx.name), "value": value, "process": self.process,
            "incarnation": self.process, "term": self.ctx.term, "wall": true_time(), "mono": true_monotonic(),
        }  # fmt: skip
        self.out.write("op " + json.dumps(record, separators=(",", ":")) + "\n")

    async def bounded(self, awaitable: Any) -> Any:
        """Bounded by what is left of the ownership: a later answer is not one it may act on."""
        deadline = self.ctx.renew_deadline
        left = 0.0 if deadline is None else deadline - time.monotonic()
        if left <= 0 or self.ctx.stopping:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise _Refused
        return await within(awaitable, left)

    async def increment(self) -> None:
        self.event("invoke", None)
        try:
            raw = await self.bounded(self.client.get(self.key))
        except Exception:  # nothing was written (refused, or the read failed)
            self.event("fail", None)
            return
        read = int(raw) if raw is not None else 0
        pair = [read, read + 1]
        sent = true_time()
        try:
            await self.bounded(self.ctx.fenced_set(self.key, str(pair[1])))
        except (_Refused, NotLeader, StaleTerm) as exc:
            self.line("sfence", f"{sent:.6f}", f"{true_time():.6f}", "stale" if isinstance(exc, StaleTerm) else "not")
            self.event("fail", pair)
            return
        except Exception:  # unknown: it may have been written
            self.line("sfence", f"{sent:.6f}", f"{true_time():.6f}", "error")
            self.event("info", pair)
            return
        self.last_written = pair[1]
        self.line("sfence", f"{sent:.6f}", f"{true_time():.6f}", "ok")
        self.event("ok", pair)


async def singleton_task(ctx: Any) -> None:
    """Act, and increment the singleton's counter with fenced writes, while it runs here."""
    act_s = float(os.environ.get(ACT_VAR, "0.05"))
    incr_every = max(1, int(os.environ.get(INCR_VAR, "2")))
    url = os.environ[URL_VAR]
    client = redis.asyncio.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    with open(os.environ[LOG_VAR], "a", buffering=1) as out:
        run = _Run(ctx, out, client)
        run.line("sstart", f"{true_time():.6f}")
        lapsed = False
        try:
            acts = 0
            while True:
                now = true_time()
                if ctx.stopping:
                    break
                run.line("sact", f"{now:.6f}")
                if acts % incr_every == 0:
                    await run.increment()
                acts += 1
                if await ctx.sleep(act_s):
                    break
        finally:
            deadline = ctx.renew_deadline
            lapsed = deadline is not None and time.monotonic() >= deadline
            run.line("sstop", f"{true_time():.6f}", int(lapsed))
            with contextlib.suppress(Exception):
                await asyncio.shield(client.aclose())
    if lapsed and run.last_written is not None:
        zombie = asyncio.ensure_future(_zombie(url, ctx, run.head, run.last_written))
        _zombies.add(zombie)
        zombie.add_done_callback(_zombies.discard)


async def _zombie(url: str, ctx: Any, head: str, value: int) -> None:
    client = redis.asyncio.Redis.from_url(url, socket_timeout=ZOMBIE_TIMEOUT_S, socket_connect_timeout=ZOMBIE_TIMEOUT_S)
    sent = true_time()
    try:
        key = counter_key(ctx.pool, ctx.name)
        await within(afenced_set(client, key, str(value), ctx.term, pool=ctx.pool, singleton=ctx.name), 5)
        outcome = "ok"
    except StaleTerm:
        outcome = "stale"
    except Exception:
        outcome = "error"
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
    with open(os.environ[LOG_VAR], "a") as out:
        out.write(f"szombie {head} {sent:.6f} {true_time():.6f} {outcome}\n")
