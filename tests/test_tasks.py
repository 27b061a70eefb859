"""The task contract, in process: a task starts with its context, stops when asked, is
cancelled or abandoned after the grace period, and a crash is reported once (no Redis)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from leaderpool.store import FenceResult
from leaderpool.worker.tasks import AsyncTaskContext, TaskRunner, ThreadTaskContext, load_task


async def no_fence(term: int, key: str, value: str | bytes, px: int) -> FenceResult:
    return FenceResult(True, term)


def runner(task: Any, crashes: list[tuple[int, BaseException]], grace_s: float = 0.3) -> TaskRunner:
    return TaskRunner(
        task, pool="p", member="m", fenced_set=no_fence, grace_s=grace_s, on_crash=lambda t, e: crashes.append((t, e))
    )


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


class TestAsyncTasks:
    def test_gets_its_context_and_stops_when_asked(self) -> None:
        seen: list[AsyncTaskContext] = []

        async def task(ctx: AsyncTaskContext) -> None:
            seen.append(ctx)
            await ctx.fenced_set("k", "v")
            while not await ctx.sleep(10):
                pass

        async def main() -> None:
            crashes: list[Any] = []
            r = runner(task, crashes)
            with capture_logs() as logs:
                r.start(7)
                await asyncio.sleep(0.05)
                assert r.running
                await r.stop()
            assert not r.running and [] == crashes
            assert ("p", "m", 7, True) == (seen[0].pool, seen[0].member, seen[0].term, seen[0].stopping)
            assert ["task_started", "task_stopped"] == [e["event"] for e in logs]

        run(main())

    def test_a_task_ignoring_the_stop_is_cancelled_after_the_grace(self) -> None:
        async def stubborn(ctx: AsyncTaskContext) -> None:
            await asyncio.sleep(3600)

        async def main() -> None:
            r = runner(stubborn, [], grace_s=0.1)
            with capture_logs() as logs:
                r.start(1)
                await r.stop()
            assert "task_cancelled" == logs[-1]["event"]

        run(main())

    def test_a_crash_is_reported_with_its_term(self) -> None:
        async def crash(ctx: AsyncTaskContext) -> None:
            raise ValueError("boom")

        async def main() -> None:
            crashes: list[tuple[int, BaseException]] = []
            r = runner(crash, crashes)
            with capture_logs() as logs:
                r.start(4)
                await asyncio.sleep(0.05)
            assert [(4, "boom")] == [(t, str(e)) for t, e in crashes]
            assert "task_failed" in [e["event"] for e in logs]
            await r.stop()  # nothing left to stop

        run(main())

    def test_after_a_crash_the_next_start_waits_and_a_stop_cuts_the_wait(self) -> None:
        """A task that always fails cannot spin: starts after crashes back off (0.5 s, doubling)."""
        runs: list[int] = []

        async def crash(ctx: AsyncTaskContext) -> None:
            runs.append(ctx.term)
            raise ValueError("boom")

        async def main() -> None:
            r = runner(crash, [])
            r.start(1)
            await asyncio.sleep(0.05)
            assert (0.5, [1]) == (r.crash_delay_s, runs)
            with capture_logs() as logs:
                r.start(2)
                await asyncio.sleep(0.05)
                started = time.monotonic()
                await r.stop()
            assert time.monotonic() - started < 0.4
            assert [1] == runs  # term 2 was stopped before its delayed start
            assert {"event": "task_start_delayed", "delay_s": 0.5, "crashes_in_a_row": 1}.items() <= logs[0].items()

        run(main())

    def test_returning_early_is_not_a_crash(self) -> None:
        async def once(ctx: AsyncTaskContext) -> None:
            return None

        async def main() -> None:
            crashes: list[Any] = []
            with capture_logs() as logs:
                runner(once, crashes).start(1)
                await asyncio.sleep(0.05)
            assert [] == crashes and "task_returned" == logs[-1]["event"]

        run(main())


class TestThreadTasks:
    def test_runs_in_a_thread_and_stops_on_the_event(self) -> None:
        threads: list[str] = []

        def task(ctx: ThreadTaskContext) -> None:
            threads.append(threading.current_thread().name)
            assert ctx.fenced_set("k", "v").written
            while not ctx.sleep(10):
                pass

        async def main() -> None:
            r = runner(task, [])
            r.start(2)
            await asyncio.sleep(0.1)
            started = time.monotonic()
            await r.stop()
            assert time.monotonic() - started < 5
            assert ["leaderpool-task-2"] == threads

        run(main())

    def test_a_thread_ignoring_the_stop_is_abandoned(self) -> None:
        release = threading.Event()

        def stubborn(ctx: ThreadTaskContext) -> None:
            release.wait(10)

        async def main() -> None:
            with capture_logs() as logs:
                r = runner(stubborn, [], grace_s=0.1)
                r.start(1)
                await r.stop()
            release.set()
            assert "task_abandoned" == logs[-1]["event"]

        run(main())

    def test_a_thread_crash_is_reported(self) -> None:
        def crash(ctx: ThreadTaskContext) -> None:
            raise KeyError("gone")

        async def main() -> None:
            crashes: list[tuple[int, BaseException]] = []
            runner(crash, crashes).start(3)
            for _ in range(100):
                if crashes:
                    break
                await asyncio.sleep(0.02)
            assert [(3, KeyError)] == [(t, type(e)) for t, e in crashes]

        run(main())


class TestLoading:
    def test_loads_module_function(self) -> None:
        assert "crash_soon" == load_task("tests.worker_tasks:crash_soon").__name__
        assert "sleep" == load_task("tests.worker_tasks:time.sleep").__name__  # dotted attribute paths

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ("nocolon", "must be MODULE:FUNCTION"),
            (":f", "must be MODULE:FUNCTION"),
            ("m:", "must be MODULE:FUNCTION"),
            ("a:b:c", "must be MODULE:FUNCTION"),
            ("no_such_mod_q:f", "cannot import module 'no_such_mod_q'"),
            ("tests.worker_tasks:nope", "has no attribute 'nope'"),
            ("tests.worker_tasks:NOT_CALLABLE", "is not callable (it is a int)"),
        ],
    )
    def test_bad_specs_say_what_is_wrong(self, spec: str, message: str) -> None:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_task(spec)
