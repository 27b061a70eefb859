"""The hot-path calls of one process, sent together: the heartbeats (and, after a change, the
glances and claims) its members queue while the previous batch is out go to Redis as one
pipeline (one write, one read) instead of one round trip each.

One batch is in flight per client at a time; what queues meanwhile is the next batch, so a batch
grows with the load (auto-pipelining) and never waits behind other batches for a connection.
Hundreds or thousands of members in one process (one pool or many) then cost Redis one read and
one write system call per batch rather than per beat. A member that stops waiting (its call
timed out) only abandons its own reply: the batch goes on, so its connection is not torn down
and rebuilt. That matters under overload: with one round trip per call on a pool of 16
connections, a process of 2,000 members could send only 16 calls per turn of its (busy) event
loop; calls queued for a connection timed out, each timeout dropped a connection mid-reply, and
the reconnections and retries made everything slower still (the collapse in issue 13).

A leader's renewal batches too: it is sent only if its caller still waits when the batch is
written (a call its renew deadline cancelled is dropped, also from a batch written again after
a connection failed); once written it is as any call in flight, and the script renews only a
lead still held (compare-and-set). Cluster clients are not
batched (a process's pools live on many slots).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from leaderpool.backend.script_registry import NamedScript

if TYPE_CHECKING:
    import asyncio  # at run time only where a batch is sent: the CLI's one-shot commands load the store without it

_Call = tuple[NamedScript, Sequence[str], Sequence[str | int], "asyncio.Future[Any]"]

MAX_BATCH = 256
"""At most this many calls in one pipeline: a reply of a few kB each, and the first member's
reply is not held back long by the last one's."""

_HEADS_MAX = 100_000
"""Packed command heads kept (one per script and key list: a pool's few scripts); past this
many the cache starts again, so a process that saw many pools come and go stays small."""


def _bulk(value: str | bytes | int) -> bytes:
    """One argument in RESP (as redis-py encodes it: str as UTF-8, numbers as their text)."""
    raw = value if isinstance(value, bytes) else (value if isinstance(value, str) else repr(value)).encode()
    return b"$%d\r\n%s\r\n" % (len(raw), raw)


class Batcher:
    """The script calls one client's members queue in one event-loop turn, sent as pipelines."""

    def __init__(self, client: Any) -> None:  # a redis.asyncio.Redis (not imported: the CLI runs without it)
        self._client = client
        self._queue: list[_Call] = []
        self._sending: asyncio.Task[None] | None = None
        self._heads: dict[tuple[str, Sequence[str]], bytes] = {}
        self._packed: dict[tuple[bytes, tuple[str | int, ...]], bytes] = {}

    async def call(self, script: NamedScript, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        """Run ``script`` in the next batch; its reply (errors translated as a direct call's)."""
        import asyncio  # loaded already: this runs on its event loop

        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, keys, args, future))
        if self._sending is None:
            self._sending = asyncio.ensure_future(self._run())
        return await script.translated(future)

    async def _run(self) -> None:
        """Send batches until nothing is queued; one at a time."""

        try:
            # No sleep(0) first: this task's first step runs after every callback already due in
            # this turn of the loop, so the members woken in it have queued theirs; one more
            # turn only delayed a lone call (a failover's claim, a hand-over's renewal) by a hop.
            while self._queue:
                batch = [call for call in self._queue[:MAX_BATCH] if not call[3].done()]  # gave up: not sent
                del self._queue[:MAX_BATCH]
                if batch:
                    await self._send(batch)
        finally:
            self._sending = None

    def _pack(self, script: NamedScript, keys: Sequence[str], args: Sequence[str | int]) -> bytes:
        """``EVALSHA sha numkeys keys... args...`` in RESP. The head (up to the keys) is the same
        for every beat of a member: packed once (redis-py's packing cost more than the beat)."""
        cache_key = (script.sha, keys if isinstance(keys, tuple) else tuple(keys))
        head = self._heads.get(cache_key)
        if head is None:
            if len(self._heads) >= _HEADS_MAX:
                self._heads.clear()
            head = self._heads[cache_key] = b"".join(
                [b"$7\r\nEVALSHA\r\n", _bulk(script.sha), _bulk(len(keys)), *map(_bulk, keys)]
            )
        # a member's beats repeat their arguments until something changes: the whole call packed once
        call_key = (head, args if isinstance(args, tuple) else tuple(args))
        packed = self._packed.get(call_key)
        if packed is None:
            if len(self._packed) >= _HEADS_MAX:
                self._packed.clear()
            packed = b"*%d\r\n%s%s" % (3 + len(keys) + len(args), head, b"".join(map(_bulk, args)))
            self._packed[call_key] = packed
        return packed

    async def _send(self, batch: list[_Call]) -> None:
        """One write for the whole batch on a connection of the client's pool, then its replies
        read in order (an error reply is that call's alone)."""
        from redis.exceptions import NoScriptError, ResponseError

        pool = self._client.connection_pool
        sent = batch

        async def exchange() -> list[Any]:
            nonlocal sent
            # a retry leaves out the calls given up on meanwhile: a renewal whose renew deadline
            # passed must never be sent (its member no longer acts as leader)
            sent = [call for call in batch if not call[3].done()]
            replies: list[Any] = []
            if not sent:
                return replies
            packed = b"".join([self._pack(script, keys, args) for script, keys, args, _ in sent])
            await conn.send_packed_command(packed, check_health=False)
            for _ in sent:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:
                    replies.append(exc)
            return replies

        try:
            conn = await pool.get_connection()
            try:  # retried on a new connection as redis-py retries a pipeline (say, Redis restarted)
                replies = await conn.retry.call_with_retry(exchange, lambda _: conn.disconnect())
            finally:
                await pool.release(conn)
        except BaseException as exc:  # the connection failed: every caller sees it, as on its own
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else ConnectionError(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        for (script, keys, args, future), reply in zip(sent, replies, strict=True):
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
    aio = sys.modules.get("redis.asyncio")  # not loaded: the client cannot be one of its clients
    if aio is None or not isinstance(client, aio.Redis):
        return None
    found = _batchers.get(client)
    if found is None:
        found = _batchers[client] = Batcher(client)
    return found
