"""Running a handler: sync handlers on a thread (never on the event loop, where a slow handler
would delay the election's heartbeat), async ones on the loop; the outcome as JSON text.

A batch of jobs for a sync handler runs in one thread hand-off (not one per job: at thousands of
jobs a second the hand-off would cost more than a trivial handler), returning after a time
budget so the leader can acknowledge what is done while the rest still runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import json
import queue
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from leaderpool.errors import PayloadError
from leaderpool.jobs.wire import Handler, JobContext, encode
from leaderpool.util.threads import start_thread

T = TypeVar("T")


class Outcome(NamedTuple):
    ok: bool
    value: str
    """The reply's JSON text when ok, else the error as ``Type: message``."""


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def is_async_handler(handler: Handler) -> bool:
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(getattr(handler, "__call__", None))  # noqa: B004


def _decode(payload: str) -> Any:
    return json.loads(payload)


class HandlerRunner:
    """Runs one handler for jobs and requests; ``max_reply_bytes`` bounds what it may return."""

    def __init__(self, handler: Handler, max_reply_bytes: int) -> None:
        self.handler = handler
        self.is_async = is_async_handler(handler)
        self.max_reply_bytes = max_reply_bytes
        self._thread: _DaemonThread | None = None

    def _outcome_of(self, result: Any) -> Outcome:
        try:
            return Outcome(True, encode(result, self.max_reply_bytes, what="reply"))
        except PayloadError as exc:
            return Outcome(False, describe_error(exc))

    def _run_sync(self, payload: str, ctx: JobContext) -> Outcome:
        try:
            return self._outcome_of(self.handler(_decode(payload), ctx))
        except Exception as exc:  # the handler's failure is the job's outcome
            return Outcome(False, describe_error(exc))

    async def _run_async(self, payload: str, ctx: JobContext) -> Outcome:
        try:
            return self._outcome_of(await self.handler(_decode(payload), ctx))
        except Exception as exc:
            return Outcome(False, describe_error(exc))

    @property
    def thread(self) -> _DaemonThread:
        """The thread sync handlers run on (one per runner: jobs and inbox requests do not queue
        behind each other)."""
        if self._thread is None:
            self._thread = _DaemonThread(f"leaderpool-handler-{id(self):x}")
        return self._thread

    async def run_one(self, payload: str, ctx: JobContext) -> Outcome:
        if self.is_async:
            return await self._run_async(payload, ctx)
        return await asyncio.get_running_loop().run_in_executor(self.thread, self._run_sync, payload, ctx)

    async def run_batch(
        self,
        items: Sequence[tuple[str, JobContext]],
        may_start: Callable[[], bool],
        budget_s: float,
    ) -> list[Outcome]:
        """Run handlers for ``items`` in order until all ran, ``may_start()`` turns false before
        one (the lead is over: the rest stay pending for the next leader), or ``budget_s`` passed;
        returns the outcomes of those that ran, a prefix of ``items``."""
        if self.is_async:
            out: list[Outcome] = []
            end = time.monotonic() + budget_s
            for payload, ctx in items:
                if not may_start() or (out and time.monotonic() >= end):
                    break
                out.append(await self._run_async(payload, ctx))
            return out

        def batch() -> list[Outcome]:
            done: list[Outcome] = []
            end = time.monotonic() + budget_s
            for payload, ctx in items:
                if not may_start() or (done and time.monotonic() >= end):
                    break
                done.append(self._run_sync(payload, ctx))
            return done

        return await asyncio.get_running_loop().run_in_executor(self.thread, batch)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.close()
            self._thread = None


class _DaemonThread(concurrent.futures.Executor):
    """One daemon thread running what it is given in order. Not a ThreadPoolExecutor: Python
    joins those at exit, so a handler stuck in a call would hold the process up; a worker
    abandons a thread that ignores its stop (see leaderpool.worker.tasks)."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[
            tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...]] | None
        ]
        self._queue = queue.SimpleQueue()
        start_thread(self._run, name)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((future, functools.partial(fn, **kwargs), args))
        return future

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the awaiting coroutine
                future.set_exception(exc)

    def close(self) -> None:
        self._queue.put(None)
