"""The leader task the chaos runner's workers run (``--task leaderpool.testing.chaos.task:chaos_task``).

While it leads it records what an application's leader would do, in the file named by
``$CHAOS_LOG`` (one per member, appended to by each of its processes), one line per deed:

- ``act TERM MEMBER PID T_START T``: an *unfenced* side effect every ``$CHAOS_ACT_S`` seconds
  (5 ms), T_START the first of this lead. Times are the OS's, even when a fault has made the
  process's own clock jump (:mod:`.skewed_clock`). ``T`` is read (unix time) *before* the task checks that
  it still leads, so the check that allowed the act came at or after ``T``: an old leader's last
  ``T`` is no later than its last permitted act, and a new leader's first ``T`` no earlier than
  its election. Two terms whose acts interleave in time overlapped.
- ``fence TERM MEMBER PID T_SEND T_REPLY OUTCOME``: a fenced write (``ctx.fenced_set``) every
  ``$CHAOS_FENCE_S`` seconds (50 ms); OUTCOME ``ok``, ``stale`` (refused) or ``error``.
- ``op {json}``: an event of the leader's recorded work (:mod:`.leader_ops`): a register written
  (fenced) and read, a counter incremented (read, then a fenced write), one operation every
  ``$CHAOS_OP_S`` seconds (20 ms), for the history checks.
- ``zombie TERM ...``: the same, written once after a lead that ran out on the clock (its renew
  deadline passed: frozen, cut off, slowed down), with the ended term, on a connection of its own
  (``$CHAOS_REDIS_URL``): the in-flight write of a stale leader, which the fence must refuse once
  a newer term wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import IO, Any

import redis.asyncio

from leaderpool.errors import NotLeader, StaleTerm
from leaderpool.fencing import afenced_set
from leaderpool.testing.chaos import leader_ops
from leaderpool.testing.chaos.skewed_clock import true_time
from leaderpool.util.timeouts import within

LOG_VAR = "CHAOS_LOG"
URL_VAR = "CHAOS_REDIS_URL"
ACT_VAR = "CHAOS_ACT_S"
FENCE_VAR = "CHAOS_FENCE_S"
OP_VAR = "CHAOS_OP_S"
ZOMBIE_TIMEOUT_S = 2.0

_zombies: set[asyncio.Task[None]] = set()  # kept referenced until done


def fenced_key(pool: str) -> str:
    return f"chaos:{{{pool}}}:fenced"


async def chaos_task(ctx: Any) -> None:
    """Act and write fenced while leading; then, if the lead lapsed, one zombie write."""
    with open(os.environ[LOG_VAR], "a", buffering=1) as out:
        loops = {
            asyncio.ensure_future(_act(ctx, out, float(os.environ.get(ACT_VAR, "0.005")))),
            asyncio.ensure_future(_fence(ctx, out, float(os.environ.get(FENCE_VAR, "0.05")))),
            asyncio.ensure_future(
                leader_ops.work(ctx, out, os.environ.get(URL_VAR), float(os.environ.get(OP_VAR, "0.02")))
            ),
        }
        try:  # any loop ends when it sees the lead over; the others are not waited for
            await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
    url, deadline = os.environ.get(URL_VAR), ctx.renew_deadline
    # Only a lead that ran out on the clock (frozen, cut off, slowed down) leaves a zombie: those
    # are the leaders whose in-flight writes fences exist for. A hand-over is not slowed by one.
    if url and deadline is not None and time.monotonic() >= deadline:
        zombie = asyncio.ensure_future(_zombie(url, ctx.pool, ctx.member, ctx.term, os.environ[LOG_VAR]))
        _zombies.add(zombie)
        zombie.add_done_callback(_zombies.discard)


async def _act(ctx: Any, out: IO[str], every_s: float) -> None:
    first: float | None = None
    pid = os.getpid()
    while True:
        now = true_time()
        if ctx.stopping:
            return
        first = now if first is None else first
        out.write(f"act {ctx.term} {ctx.member} {pid} {first:.6f} {now:.6f}\n")
        await asyncio.sleep(every_s)


async def _fence(ctx: Any, out: IO[str], every_s: float) -> None:
    key, pid = fenced_key(ctx.pool), os.getpid()
    while not ctx.stopping:
        sent = true_time()
        try:
            await ctx.fenced_set(key, f"{ctx.term} {ctx.member}")
            outcome = "ok"
        except NotLeader:  # the lead ended before the write was sent
            return
        except StaleTerm:
            outcome = "stale"
        except Exception:  # the outcome is unknown (a timeout, a reset): not counted as accepted
            outcome = "error"
        out.write(f"fence {ctx.term} {ctx.member} {pid} {sent:.6f} {true_time():.6f} {outcome}\n")
        if await ctx.sleep(every_s):
            return


async def _zombie(url: str, pool: str, member: str, term: int, path: str) -> None:
    client = redis.asyncio.Redis.from_url(url, socket_timeout=ZOMBIE_TIMEOUT_S, socket_connect_timeout=ZOMBIE_TIMEOUT_S)
    sent = true_time()
    try:
        await within(afenced_set(client, fenced_key(pool), f"{term} {member} zombie", term, pool=pool), 5)
        outcome = "ok"
    except StaleTerm:
        outcome = "stale"
    except Exception:
        outcome = "error"
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
    with open(path, "a") as out:
        out.write(f"zombie {term} {member} {os.getpid()} {sent:.6f} {true_time():.6f} {outcome}\n")
