"""The task contract, in process: a task starts with its context, stops when asked, is
cancelled or abandoned after the grace period, and a crash is reported once (no Redis)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from leaderpool.backend.pool_store import FenceResult
from leaderpool.errors import NotLeader
from leaderpool.util.timeouts import within
from leaderpool.worker import tasks
from leaderpool.worker.task_context import AsyncTaskContext, ThreadTaskContext
from leaderpool.worker.tasks import TaskRunner, load_task


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """capture_logs() leaves structlog marked as configured, which sends the library's events to
    structlog's defaults instead of the standard logging module: undo it for the tests after."""
    yield
    structlog.reset_defaults()


async def no_fence(term: int, key: str, value: str | bytes, px: int) -> FenceResult:
    return FenceResult(True, term)


@dataclass
class FakeLead:
    """An election as a task's lead reads it: its term and renew deadline, set by the test."""

    term: int | None = None
    renew_deadline: float | None = None


class Runner(TaskRunner):
    """A runner whose election leads each term it starts for an hour (only a stop ends the task),
    unless the test steers ``lead`` itself."""

    def __init__(self, task: Any, crashes: list[tuple[int, BaseException]], grace_s: float, lead: FakeLead | None):
        self.lead, self.steered = lead or FakeLead(), lead is not None
        self.lapsed: list[int] = []
        super().__init__(
            task, pool="p", member="m", fenced_set=no_fence, lead=self.lead, grace_s=grace_s,
            on_crash=lambda t, e: crashes.append((t, e)), on_lapsed=self.lapsed.append,
        )  # fmt: skip

    def start(self, term: int) -> None:
        if not self.steered:
            self.lead.term, self.lead.renew_deadline = term, time.monotonic() + 3600
        super().start(term)


def runner(
    task: Any, crashes: list[tuple[int, BaseException]], grace_s: float = 0.3, lead: FakeLead | None = None
) -> Runner:
    return Runner(task, crashes, grace_s, lead)


def run(coro: Any) -> Any:
    return asyncio.run(within(coro, 30))


async def until(predicate: Callable[[], Any], timeout: float = 20.0) -> None:
    """Wait, bounded, until ``predicate()`` holds (what a test waits for, instead of a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        await asyncio.sleep(0.005)


class TestAsyncTasks:
    def test_gets_its_context_and_stops_when_asked(self) -> None:
        seen: list[AsyncTaskContext] = []
        written: list[bool] = []

        async def task(ctx: AsyncTaskContext) -> None:
            seen.append(ctx)
            written.append((await ctx.fenced_set("k", "v")).written)
            while not await ctx.sleep(10):
                pass

        async def main() -> None:
            crashes: list[Any] = []
            r = runner(task, crashes, grace_s=10)
            with capture_logs() as logs:
                r.start(7)
                await until(lambda: written)
                assert r.running
                await r.stop()
            assert not r.running and [] == crashes
            assert ("p", "m", 7, True, [True]) == (
                seen[0].pool, seen[0].member, seen[0].term, seen[0].stopping, written,
            )  # fmt: skip
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
                await until(lambda: crashes)
            assert [(4, "boom")] == [(t, str(e)) for t, e in crashes]
            assert "task_failed" in [e["event"] for e in logs]
            await r.stop()  # nothing left to stop

        run(main())

    def test_the_start_delay_after_crashes_doubles_up_to_its_cap(self) -> None:
        """A task that always fails cannot spin: starts after crashes back off (0.5 s, doubling, 30 s)."""
        r = runner(lambda ctx: None, [])
        delays = []
        for crashes in range(9):
            r._crashes = crashes  # crashes in a row, set directly: the formula, not the waiting
            delays.append(r.crash_delay_s)
        assert [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0] == delays

    def test_after_a_crash_the_next_start_waits_and_a_stop_cuts_the_wait(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The delayed start waits on the stop: stopped during a 20 s delay with a 10 s grace, the
        task ends at once (task_stopped, not cancelled after the grace) and never runs."""
        monkeypatch.setattr(tasks, "CRASH_DELAY_S", 20.0)
        runs: list[int] = []
        crashes: list[Any] = []

        async def crash(ctx: AsyncTaskContext) -> None:
            runs.append(ctx.term)
            raise ValueError("boom")

        async def main() -> None:
            r = runner(crash, crashes, grace_s=10)
            r.start(1)
            await until(lambda: crashes)
            assert (20.0, [1]) == (r.crash_delay_s, runs)
            with capture_logs() as logs:
                r.start(2)
                await r.stop()
            assert [1] == runs  # term 2 was stopped before its delayed start
            assert {"event": "task_start_delayed", "delay_s": 20.0, "crashes_in_a_row": 1}.items() <= logs[0].items()
            assert ["task_start_delayed", "task_stopped"] == [e["event"] for e in logs]

        run(main())

    def test_returning_early_is_not_a_crash(self) -> None:
        async def once(ctx: AsyncTaskContext) -> None:
            return None

        async def main() -> None:
            crashes: list[Any] = []
            with capture_logs() as logs:
                r = runner(once, crashes)
                r.start(1)
                await until(lambda: any(e["event"] == "task_returned" for e in logs))
            assert [] == crashes and "task_returned" == logs[-1]["event"]

        run(main())


class TestThreadTasks:
    def test_runs_in_a_thread_and_stops_on_the_event(self) -> None:
        """Stopped while it sleeps, it ends within the grace (task_stopped, not abandoned)."""
        threads: list[tuple[str, bool]] = []

        def task(ctx: ThreadTaskContext) -> None:
            written = ctx.fenced_set("k", "v").written
            threads.append((threading.current_thread().name, written))
            while not ctx.sleep(10):
                pass

        async def main() -> None:
            r = runner(task, [], grace_s=10)
            with capture_logs() as logs:
                r.start(2)
                await until(lambda: threads)  # it runs, and its fenced write went through the loop
                await r.stop()
            assert [("leaderpool-task-2", True)] == threads
            assert ["task_started", "task_stopped"] == [e["event"] for e in logs]

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
            await until(lambda: crashes)
            assert [(3, KeyError)] == [(t, type(e)) for t, e in crashes]

        run(main())


class TestTheLeadEndsAtTheRenewDeadline:
    """A task's context reports the end of the lead as soon as the election's renew deadline has
    passed (or its term moved on), before the worker has stopped the task: after a freeze the
    task's own timer may fire before the worker hears it lost the lead."""

    def test_an_async_task_sees_the_lead_over_without_being_stopped(self) -> None:
        seen: list[tuple[bool, bool, float | None]] = []
        errors: list[BaseException] = []

        async def task(ctx: AsyncTaskContext) -> None:
            await asyncio.sleep(0.05)  # its own timer, as after a freeze
            seen.append((ctx.stop.is_set(), ctx.stopping, ctx.renew_deadline))
            try:
                await ctx.fenced_set("k", "v")
            except NotLeader as exc:
                errors.append(exc)

        async def main() -> None:
            deadline = time.monotonic() - 0.001  # passed while the task slept
            r = runner(task, [], lead=FakeLead(term=5, renew_deadline=deadline))
            r.start(5)
            assert r._done is not None
            await asyncio.wait({r._done}, timeout=10)
            assert [(True, True, deadline)] == seen
            assert [5] == [e.term for e in errors if isinstance(e, NotLeader)]
            await r.stop()

        run(main())

    def test_sleep_and_wait_return_at_the_deadline_and_it_stays_over(self) -> None:
        results: list[Any] = []

        async def task(ctx: AsyncTaskContext) -> None:
            results.append(await ctx.sleep(3600))  # cut short by the deadline, not the hour
            results.append(await ctx.stop.wait())
            results.append(ctx.renew_deadline)

        async def main() -> None:
            deadline = time.monotonic() + 0.2
            lead = FakeLead(term=2, renew_deadline=deadline)
            r = runner(task, [], lead=lead)
            r.start(2)
            assert r._done is not None
            await asyncio.wait({r._done}, timeout=10)
            lead.renew_deadline = deadline + 3600  # renewed too late: the lead stays over
            assert [True, True, deadline] == results
            assert r._ctx is not None and r._ctx.stopping
            await r.stop()

        run(main())

    def test_a_new_term_ends_the_lead(self) -> None:
        """Noticed at the next check (the worker's stop wakes a waiting task)."""

        checks: list[bool] = []

        async def task(ctx: AsyncTaskContext) -> None:
            while not ctx.stopping:
                checks.append(False)
                await asyncio.sleep(0.01)

        async def main() -> None:
            lead = FakeLead(term=3, renew_deadline=time.monotonic() + 3600)
            r = runner(task, [], lead=lead)
            r.start(3)
            assert r._done is not None
            await until(lambda: checks)  # it runs, leading
            lead.term = 4  # stepped down and elected again, with a new deadline for term 4
            lead.renew_deadline = time.monotonic() + 7200
            finished, _ = await asyncio.wait({r._done}, timeout=10)
            assert {r._done} == finished

        run(main())

    def test_a_task_that_ends_on_its_lapsed_lead_is_reported_and_a_stopped_one_is_not(self) -> None:
        """on_lapsed(term) lets the worker step down should the election renew that term after all."""

        async def task(ctx: AsyncTaskContext) -> None:
            while not await ctx.sleep(3600):
                pass

        async def main() -> None:
            lapsing = runner(task, [], lead=FakeLead(term=6, renew_deadline=time.monotonic() + 0.1))
            lapsing.start(6)
            await until(lambda: lapsing.lapsed)  # reported by the task's done callback, a turn after it ended
            assert [6] == lapsing.lapsed and not lapsing.running
            stopped = runner(task, [], grace_s=10)
            stopped.start(7)
            await stopped.stop()
            assert [] == stopped.lapsed

        run(main())

    def test_a_thread_task_sees_the_lead_over_without_being_stopped(self) -> None:
        results: list[Any] = []
        release = threading.Event()

        def task(ctx: ThreadTaskContext) -> None:
            results.append(ctx.sleep(3600))  # cut short by the deadline
            results.append(ctx.stop.wait())
            try:
                ctx.fenced_set("k", "v")
            except NotLeader as exc:
                results.append(exc.term)
            release.set()

        async def main() -> None:
            r = runner(task, [], lead=FakeLead(term=8, renew_deadline=time.monotonic() + 0.2))
            with capture_logs() as logs:
                r.start(8)
                assert r._done is not None
                await asyncio.wait({r._done}, timeout=10)
                assert release.is_set()
                assert [True, True, 8] == results
                await r.stop()  # it had already ended: its end is logged once all the same
            assert ["task_started", "task_stopped"] == [e["event"] for e in logs]

        run(main())


class TestLoading:
    def test_loads_module_function(self) -> None:
        assert "crash_soon" == load_task("tests.support.worker_tasks:crash_soon").__name__
        assert "sleep" == load_task("tests.support.worker_tasks:time.sleep").__name__  # dotted attribute paths

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ("nocolon", "must be MODULE:FUNCTION"),
            (":f", "must be MODULE:FUNCTION"),
            ("m:", "must be MODULE:FUNCTION"),
            ("a:b:c", "must be MODULE:FUNCTION"),
            ("no_such_mod_q:f", "cannot import module 'no_such_mod_q'"),
            ("tests.support.worker_tasks:nope", "has no attribute 'nope'"),
            ("tests.support.worker_tasks:NOT_CALLABLE", "is not callable (it is an int)"),
        ],
    )
    def test_bad_specs_say_what_is_wrong(self, spec: str, message: str) -> None:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_task(spec)
