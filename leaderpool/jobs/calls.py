"""Handing work to a pool: ``submit``, ``call`` and ``multicall``, written once in asyncio for
every face (members and :class:`~leaderpool.pool_client.PoolClient` alike).

- ``submit`` appends to the job stream whether or not a leader exists; the cap refuses, never drops.
- ``call`` submits with a reply key and waits for the reply (a blocking pop: a reply pushed while
  the caller waits is never lost; one pushed after it gave up expires). With nobody to take the
  job (no live member runs a handler) it fails at once: the check and the append are one script.
- ``call(member=ID)`` queues the request in that member's inbox (one script: only if it is live
  and runs a handler); ``multicall`` sends one request to every live member that runs a handler,
  then gathers the replies until all answered or the timeout passed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

from leaderpool.backend.keys import Keyspace
from leaderpool.errors import BacklogFull, CallTimeout, NoTaker
from leaderpool.jobs.job_store import JobStore, SendStatus, SubmitStatus
from leaderpool.jobs.jobs_config import JobsConfig
from leaderpool.jobs.wire import Kind, MulticallResult, Reply, Request, encode
from leaderpool.util.naming import validate_name

DEFAULT_CALL_TIMEOUT_S = 5.0


class Calls:
    """Submits work to one pool and waits for replies. ``caller``: the member handing the work
    (a member's face), named in the errors its face raises; None for a pool client."""

    def __init__(
        self, client: Any, keys: Keyspace, config: JobsConfig | None = None, *, caller: str | None = None
    ) -> None:
        self.keys = keys
        self.config = config or JobsConfig()
        self.caller = caller
        self.store = JobStore(client, keys)

    @property
    def pool(self) -> str:
        return self.keys.pool

    def _encode(self, payload: Any) -> str:
        return encode(payload, self.config.max_payload_bytes)

    def _full(self, length: int) -> BacklogFull:
        cap = self.config.max_backlog
        return BacklogFull(
            f"pool {self.pool} has {length} unfinished jobs, its cap is {cap}: the job was not submitted",
            cap=cap,
            pool=self.pool,
        )

    async def submit(self, payload: Any) -> str:
        """Append a job; returns its id (the stream entry id)."""
        return (await self.submit_many([payload]))[0]

    async def submit_many(self, payloads: Sequence[Any]) -> list[str]:
        """Append several jobs in one round trip, all or none; returns their ids in order."""
        encoded = [self._encode(p) for p in payloads]
        if not encoded:
            return []
        found = await self.store.submit(encoded, self.config.max_backlog)
        if found.status is SubmitStatus.FULL:
            raise self._full(found.length)
        return found.ids

    def _ttl_ms(self, timeout: float) -> int:
        return int((timeout + self.config.reply_grace_s) * 1000)

    async def call(self, payload: Any, timeout: float = DEFAULT_CALL_TIMEOUT_S, *, member: str | None = None) -> Any:
        """The handler's reply to ``payload``: the leader's, or ``member``'s. Raises
        :class:`NoTaker` at once when nobody can take it, :class:`CallTimeout` when no reply came
        within ``timeout`` seconds, :class:`~leaderpool.errors.JobFailed` when the handler raised
        (for a job, after its last delivery)."""
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        encoded = self._encode(payload)
        call_id = uuid.uuid4().hex
        reply_key = self.keys.reply(call_id)
        started = time.monotonic()
        if member is None:
            found = await self.store.submit(
                [encoded], self.config.max_backlog, need_taker=True, reply_key=reply_key,
                reply_ttl_ms=self._ttl_ms(timeout),
            )  # fmt: skip
            if found.status is SubmitStatus.NO_TAKER:
                raise NoTaker(f"pool {self.pool} has no live member that runs a handler", pool=self.pool)
            if found.status is SubmitStatus.FULL:
                raise self._full(found.length)
            what = f"job {found.ids[0]} of pool {self.pool}"
        else:
            validate_name("member id", member)  # it names a key: no braces, no spaces
            request = Request(call_id, encoded, reply_key, self._ttl_ms(timeout), Kind.MEMBER)
            sent = await self.store.send(member, request, int(self.config.inbox_ttl_s * 1000))
            if sent is SendStatus.NOT_LIVE:
                raise NoTaker(f"{member} is not a live member of pool {self.pool}", pool=self.pool, member=member)
            if sent is SendStatus.NO_HANDLER:
                raise NoTaker(f"{member} of pool {self.pool} runs no handler", pool=self.pool, member=member)
            what = f"call to {member} of pool {self.pool}"
        raw = await self.store.wait_reply(reply_key, timeout - (time.monotonic() - started))
        if raw is None:
            raise CallTimeout(f"no reply to {what} within {timeout:g}s (it still runs)", pool=self.pool)
        return Reply.parse(raw).result(self.pool)

    async def multicall(self, payload: Any, timeout: float = DEFAULT_CALL_TIMEOUT_S) -> MulticallResult:
        """Send ``payload`` to every live member that runs a handler; gather what they answer
        within ``timeout`` seconds."""
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        encoded = self._encode(payload)
        call_id = uuid.uuid4().hex
        reply_key = self.keys.reply(call_id)
        started = time.monotonic()
        request = Request(call_id, encoded, reply_key, self._ttl_ms(timeout), Kind.MULTICALL)
        members = await self.store.takers()
        inbox_ttl = int(self.config.inbox_ttl_s * 1000)
        sent = await asyncio.gather(*(self.store.send(m, request, inbox_ttl) for m in members))
        waiting = {m for m, status in zip(members, sent, strict=True) if status is SendStatus.QUEUED}
        replies: dict[str, Any] = {}
        errors: dict[str, str] = {}
        while waiting:
            left = timeout - (time.monotonic() - started)
            if left <= 0:
                break
            raw = await self.store.wait_reply(reply_key, left)
            if raw is None:
                break
            reply = Reply.parse(raw)
            if reply.member not in waiting:
                continue
            waiting.discard(reply.member)
            if reply.ok:
                replies[reply.member] = reply.value
            else:
                errors[reply.member] = str(reply.value)
        return MulticallResult(replies, errors, sorted(waiting))
