"""Typed asyncio calls for a pool's work: one method per script or command, replies parsed at
once. Nothing here decides anything; :mod:`.consumer`, :mod:`.inbox` and :mod:`.calls` do."""

from __future__ import annotations

import time
from collections.abc import Sequence
from enum import IntEnum
from typing import Any, NamedTuple

from leaderpool.backend.keys import Keyspace
from leaderpool.backend.protocol import LeaderValue, text
from leaderpool.jobs.job_scripts import JobScripts
from leaderpool.jobs.jobs_config import GROUP
from leaderpool.jobs.wire import Job, Request
from leaderpool.util.block_timeout import block_timeout

BLOCK_CHUNK_S = 1.0
"""The longest blocking command sent: well below a client's socket timeout (redis-py's: 5 s);
shorter still (half of it) for a client with a shorter socket timeout."""


def block_chunk_s(client: Any) -> float:
    """How long one blocking command on ``client`` may wait, below its socket timeout."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    timeout = kwargs.get("socket_timeout") if isinstance(kwargs, dict) else None
    return BLOCK_CHUNK_S if not timeout else min(BLOCK_CHUNK_S, float(timeout) / 2)


class SubmitStatus(IntEnum):
    APPENDED = 1
    FULL = -1
    """The stream holds its cap of unfinished jobs: nothing appended."""
    NO_TAKER = -2
    """No live member runs a handler (checked only for calls): nothing appended."""


class SendStatus(IntEnum):
    QUEUED = 1
    NOT_LIVE = 0
    NO_HANDLER = -1


class Submitted(NamedTuple):
    status: SubmitStatus
    ids: list[str]
    length: int = 0
    """With FULL: how many unfinished jobs the stream holds."""


class Settled(NamedTuple):
    accepted: bool
    """False: the leader key did not hold our term (a stale ack, refused: nothing changed)."""
    retries: list[tuple[str, int]]
    """(job id, its next delivery count) of failed jobs to run again."""
    dead: list[str]


class Reclaimed(NamedTuple):
    accepted: bool
    more: bool
    jobs: list[Job]
    dead: list[str]


class PendingJob(NamedTuple):
    job_id: str
    consumer: str
    idle_ms: int
    deliveries: int


class Backlog(NamedTuple):
    jobs: int
    """Unfinished jobs in the stream: waiting to be read, or read and not yet acknowledged."""
    pending: int
    """Read by a consumer, not yet acknowledged (in flight, or held by a consumer that died)."""
    dead: int
    listed: list[PendingJob]
    exists: bool = True
    """False for a pool that never had a job (no job stream, no dead letters)."""

    @property
    def waiting(self) -> int:
        return max(self.jobs - self.pending, 0)


class Done(NamedTuple):
    job: Job
    reply: str
    """The reply as stored (see :func:`~leaderpool.jobs.wire.ok_reply`)."""


class Failed(NamedTuple):
    job: Job
    error: str


class JobStore:
    """The asyncio Redis I/O of one pool's work (any awaitable client: redis-py's asyncio one, or
    the CLI's one-shot adapter)."""

    def __init__(self, client: Any, keys: Keyspace) -> None:
        self.client = client
        self.keys = keys
        self._scripts = JobScripts.on(client)
        self.block_s = block_chunk_s(client)

    # ---- submitting ----

    async def submit(
        self, payloads: Sequence[str], cap: int, *, need_taker: bool = False, reply_key: str = "", reply_ttl_ms: int = 0
    ) -> Submitted:
        k = self.keys
        reply = await self._scripts.submit(
            keys=[k.jobs, k.leases, k.handlers],
            args=[cap, "1" if need_taker else "0", reply_key, reply_ttl_ms, *payloads],
        )
        status = SubmitStatus(int(reply[0]))
        if status is SubmitStatus.APPENDED:
            return Submitted(status, [text(i) for i in reply[1:]])
        return Submitted(status, [], int(reply[1]) if len(reply) > 1 else 0)

    async def send(self, member: str, request: Request, inbox_ttl_ms: int) -> SendStatus:
        """Queue a request in ``member``'s inbox, if it is live and runs a handler."""
        k = self.keys
        reply = await self._scripts.send(
            keys=[k.inbox(member), k.leases, k.handlers], args=[member, request.encode(), inbox_ttl_ms]
        )
        return SendStatus(int(reply))

    async def takers(self) -> list[str]:
        """The live members that run a handler."""
        return sorted(text(m) for m in await self._scripts.takers(keys=[self.keys.leases, self.keys.handlers]))

    async def wait_reply(self, reply_key: str, timeout_s: float) -> Any:
        """The next reply pushed to ``reply_key``, or None after ``timeout_s``. Waits in
        blocking pops of at most :attr:`block_s`, below the client's socket timeout (redis-py's
        default is 5 s); a reply pushed between two pops waits in its list."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            found = await self.client.blpop([reply_key], timeout=block_timeout(min(left, self.block_s)))
            if found is not None:
                return found[1]
            if left <= self.block_s:
                return None

    # ---- consuming (the leader) ----

    async def read(self, member: str, count: int, block_ms: int | None) -> list[Job]:
        """New jobs for ``member`` (delivery 1), waiting up to ``block_ms`` (None: no wait)."""
        if block_ms is not None:
            block_ms = max(1, min(block_ms, int(self.block_s * 1000)))
        found = await self.client.xreadgroup(GROUP, member, {self.keys.jobs: ">"}, count=count, block=block_ms)
        jobs: list[Job] = []
        for _stream, entries in found or []:
            for job_id, fields in entries:
                if fields:  # deleted meanwhile: nothing to run (the next settle acknowledges nothing)
                    jobs.append(Job.from_fields(job_id, fields, 1))
        return jobs

    async def settle(
        self, held: LeaderValue, done: Sequence[Done], failed: Sequence[Failed], max_deliveries: int, max_dead: int
    ) -> Settled:
        """``max_dead``: the dead letters' cap (trimmed approximately, the oldest first)."""
        k = self.keys
        args: list[str | int] = [held.encode(), GROUP, max_deliveries, max_dead, len(done)]
        for d in done:
            args += [d.job.job_id, d.job.reply_key, d.job.reply_ttl_ms or 1, d.reply]
        for f in failed:
            args += [f.job.job_id, f.error]
        reply = await self._scripts.settle(keys=[k.jobs, k.leader, k.dead], args=args)
        if int(reply[0]) == 0:
            return Settled(False, [], [])
        rest = [text(x) for x in reply[1:]]
        cut = rest.index("")
        retries = [(rest[i], int(rest[i + 1])) for i in range(0, cut, 2)]
        return Settled(True, retries, rest[cut + 1 :])

    async def reclaim(
        self, held: LeaderValue, max_deliveries: int, max_dead: int, *, on_election: bool, limit: int
    ) -> Reclaimed:
        k = self.keys
        reply = await self._scripts.reclaim(
            keys=[k.jobs, k.leader, k.dead],
            args=[held.encode(), GROUP, max_deliveries, "1" if on_election else "0", limit, max_dead],
        )
        if int(reply[0]) == 0:
            return Reclaimed(False, False, [], [])
        more, jobs, i = bool(int(reply[1])), [], 2
        while text(reply[i]) != "":
            jobs.append(Job.from_fields(reply[i], reply[i + 2], int(reply[i + 1])))
            i += 3
        return Reclaimed(True, more, jobs, [text(x) for x in reply[i + 1 :]])

    # ---- members with a handler ----

    async def register_handler(self, member: str) -> None:
        await self.client.hset(self.keys.handlers, member, "1")

    async def unregister_handler(self, member: str) -> None:
        await self.client.hdel(self.keys.handlers, member)

    async def next_request(self, member: str, timeout_s: float) -> Request | None:
        found = await self.client.blpop([self.keys.inbox(member)], timeout=block_timeout(min(timeout_s, self.block_s)))
        return None if found is None else Request.parse(found[1])

    async def reply(self, reply_key: str, reply: str, ttl_ms: int) -> None:
        await self.client.rpush(reply_key, reply)
        await self.client.pexpire(reply_key, max(ttl_ms, 1))

    # ---- inspecting and dead letters (the CLI) ----

    async def backlog(self, list_pending: int = 0) -> Backlog:
        k = self.keys
        reply = await self._scripts.backlog(keys=[k.jobs, k.dead], args=[GROUP, list_pending])
        rows = [
            PendingJob(text(reply[i]), text(reply[i + 1]), int(reply[i + 2]), int(reply[i + 3]))
            for i in range(4, len(reply) - 3, 4)
        ]
        return Backlog(int(reply[0]), int(reply[1]), int(reply[2]), rows, bool(int(reply[3])))

    async def dead_letters(self, count: int = 100) -> list[tuple[str, dict[str, str]]]:
        entries = await self.client.xrange(self.keys.dead, count=count)
        return [(text(i), {text(a): text(b) for a, b in f.items()}) for i, f in entries or []]

    async def requeue(self, ids: Sequence[str], cap: int) -> tuple[int, int]:
        """Submit dead letters again (all of them when ``ids`` is empty), as many as the job stream
        has room for under ``cap``: (how many were requeued, how many were left for want of room)."""
        k = self.keys
        done, left = await self._scripts.requeue(keys=[k.dead, k.jobs], args=[cap, "0" if ids else "1", *ids])
        return int(done), int(left)

    async def drop(self, ids: Sequence[str]) -> int:
        """Delete dead letters (all of them when ``ids`` is empty)."""
        if not ids:
            n = int(await self.client.xlen(self.keys.dead))
            await self.client.delete(self.keys.dead)
            return n
        return int(await self.client.xdel(self.keys.dead, *ids))
