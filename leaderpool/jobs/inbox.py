"""A member's inbox: targeted calls (``call(payload, member=ID)``) and multicalls, answered by
every member that runs a handler, leader or not.

The inbox is a list only this member pops; a request carries its reply key and how long the
reply may wait there. The member announces that it takes requests in the pool's handlers hash
(re-announced every few seconds, in case the pool's keys were deleted), and withdraws on stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from leaderpool.backend.redis_errors import RETRYABLE
from leaderpool.jobs.job_store import JobStore
from leaderpool.jobs.runner import HandlerRunner
from leaderpool.jobs.wire import JobContext, Request, error_reply, ok_reply
from leaderpool.util.log import Logger
from leaderpool.util.timeouts import cancel_and_wait, within

POP_TIMEOUT_S = 1.0
"""A blocking pop returns at least this often (below a client's socket timeout: redis-py's is 5 s)."""
ANNOUNCE_S = 5.0
"""The member re-announces its handler this often (the pool's keys may have been deleted)."""


class InboxServer:
    def __init__(
        self, store: JobStore, member: str, runner: HandlerRunner, term_of: Callable[[], int | None], log: Logger
    ) -> None:
        self.store = store
        self.member = member
        self.runner = runner
        self._term_of = term_of
        self._log = log
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"leaderpool-inbox-{self.member}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        with contextlib.suppress(*RETRYABLE):
            await within(self.store.unregister_handler(self.member), 1.0)

    async def _run(self) -> None:
        announce_at = 0.0
        while True:
            try:
                if time.monotonic() >= announce_at:
                    await self.store.register_handler(self.member)
                    announce_at = time.monotonic() + ANNOUNCE_S
                request = await self.store.next_request(self.member, POP_TIMEOUT_S)
                if request is None:
                    continue
                await self._answer(request)
            except RETRYABLE as exc:
                self._log.warning("inbox_redis_failed", error=str(exc) or type(exc).__name__)
                announce_at = 0.0
                await asyncio.sleep(0.5)
            except Exception:
                self._log.exception("inbox_failed")
                await asyncio.sleep(0.5)

    async def _answer(self, request: Request) -> None:
        ctx = JobContext(
            self.store.keys.pool, self.member, request.request_id, 1, self._term_of(), request.kind, self._log
        )
        outcome = await self.runner.run_one(request.payload, ctx)
        if outcome.ok:
            reply = ok_reply(outcome.value, self.member)
        else:
            self._log.warning("request_failed", request_id=request.request_id, kind=request.kind, error=outcome.value)
            reply = error_reply(outcome.value, 1, self.member)
        await self.store.reply(request.reply_key, reply, request.reply_ttl_ms)
