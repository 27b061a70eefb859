"""Followers' heartbeats from one process, sent together: the beats its members queue in one turn
of the event loop go to Redis as one pipeline (one write, one read) instead of one round trip each.

Hundreds or thousands of members in one process (one pool or many) then cost Redis one read and
one write system call per batch rather than per beat, and the process one socket operation per
batch. A member that stops waiting (its call timed out) only abandons its own reply: the batch
goes on, so its connection is not torn down and rebuilt. That matters under overload: with one
round trip per call, every timeout cancelled a request mid-flight, redis-py dropped that
connection, and the reconnections made Redis slower still (the retry storm of issue 13).

Only followers batch: a leader's renewal carries its lead and is bounded by its renew deadline,
so it is never queued behind others (nor sent after its caller gave up on it). Clusters are not
batched (one pool lives on one slot, but a process's pools do not).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from weakref import WeakKeyDictionary

import redis.asyncio
from redis.exceptions import NoScriptError

from leaderpool.scripts import NamedScript

_Call = tuple[NamedScript, Sequence[str], Sequence[str | int], "asyncio.Future[Any]"]

MAX_BATCH = 256
"""At most this many calls in one pipeline: a reply of a few kB each, and the first member's
reply is not held back long by the last one's."""


class Batcher:
    """The script calls one client's members queue in one event-loop turn, sent as pipelines."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._client = client
        self._queue: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def call(self, script: NamedScript, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        """Run ``script`` in the next batch; its reply (errors translated as a direct call's)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, keys, args, future))
        if len(self._queue) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        return await script.translated(future)

    def _flush(self) -> None:
        queue, self._queue = self._queue, []
        live = [call for call in queue if not call[3].done()]  # a caller that gave up is not sent
        for start in range(0, len(live), MAX_BATCH):
            task = asyncio.ensure_future(self._send(live[start : start + MAX_BATCH]))
            self._sending.add(task)  # held until done: a task nobody references may be collected
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Call]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for script, keys, args, _ in batch:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        try:
            replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # the connection failed: every caller sees it, as on its own
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else ConnectionError(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        for (script, keys, args, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, NoScriptError):  # Redis restarted and forgot it: one call loads it
                try:
                    reply = await script.raw(keys, args)
                except Exception as exc:
                    reply = exc
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)


_batchers: WeakKeyDictionary[Any, Batcher] = WeakKeyDictionary()


def batcher_for(client: Any) -> Batcher | None:
    """The batcher of ``client`` (one per client), or None for a client that does not batch
    (a cluster client, the CLI's one-shot adapter)."""
    if not isinstance(client, redis.asyncio.Redis):
        return None
    found = _batchers.get(client)
    if found is None:
        found = _batchers[client] = Batcher(client)
    return found
