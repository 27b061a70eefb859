"""The running worker: :class:`Worker` (one election and its leader task; its JSON events are
written by :mod:`.json_events`) and :func:`run`, which drives it on an event loop of its own until
a signal.

Signals (only :func:`run` installs handlers; :class:`Worker` can run inside any event loop):
SIGTERM, SIGINT and SIGHUP each start a kind shutdown -- the task is stopped, the lead is handed
over to the next member, the member leaves the pool -- and the process exits 0. A second signal
during that shutdown stops waiting: the process exits 1 at once, whatever the task does (a thread
task is a daemon thread and is abandoned; async tasks are cancelled and, if they swallow the
cancellation, abandoned). Every wait on the way out is bounded, so no task can keep the process alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
from typing import TYPE_CHECKING, Any

from leaderpool.aio import AsyncElection
from leaderpool.backend.clients import RedisLike, describe
from leaderpool.console.args import EXIT_USAGE, say_error
from leaderpool.errors import MemberIdInUse
from leaderpool.events import LeaderInfo, RevokeReason, Role
from leaderpool.util.clock import SYSTEM_CLOCK, Clock
from leaderpool.util.descriptors import soft_limit
from leaderpool.util.gc_tuning import quiet_gc
from leaderpool.util.log import get_logger
from leaderpool.util.timeouts import cancel_and_wait, within
from leaderpool.worker.exec import exec_per_slot_task, exec_task
from leaderpool.worker.json_events import EventWriter
from leaderpool.worker.scheduled_task import scheduled
from leaderpool.worker.settings import PROG, WorkerSettings
from leaderpool.worker.task_state import with_leader_state
from leaderpool.worker.tasks import IDLE_TASK, Task, TaskRunner, checked_fenced_set, load_task

if TYPE_CHECKING:
    from leaderpool.metrics import ElectionMetrics
    from leaderpool.worker.http import HttpEndpoints
    from leaderpool.worker.singleton_work import SingletonWork

__all__ = ["ShutdownSignals", "Worker", "run", "serve"]

ELECTION_CHECK_S = 0.5
"""How often the worker checks that the election loop is still running (it only ends on a bug)."""
SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""Each starts a kind shutdown (hand over, exit 0); a second one forces the exit (1)."""
EXIT_FORCED = 1
LEFTOVER_WAIT_S = 1.0
"""After the worker is done, how long tasks still running on the loop may take to end once
cancelled (after a forced exit: half of it) before they are abandoned."""

log = get_logger("leaderpool.worker")


# ---- the worker ----


class Worker:
    """Drives one :class:`AsyncElection` and the leader task; :meth:`run` until ``stop`` is set."""

    def __init__(
        self,
        settings: WorkerSettings,
        events: EventWriter | None = None,
        http: HttpEndpoints | None = None,
        *,
        redis: RedisLike | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """``redis`` and ``clock``: instead of ``settings.redis_url`` and the system's clock (the
        test kit runs a worker's task on its own Redis and clock, :mod:`leaderpool.testkit`)."""
        self.settings = settings
        self.http = http
        self.metrics: ElectionMetrics | None = None
        self.loop_turned_at = time.monotonic()
        self.config = settings.config
        self.events = events
        self.election = AsyncElection(
            self.config,
            settings.redis_url if redis is None else redis,
            on_elected=self._on_elected,
            on_revoked=self._on_revoked,
            on_leader_changed=self._on_leader_changed,
            handler=settings.handler,
            jobs=settings.jobs,
            clock=clock,
        )
        self.runner = TaskRunner(
            self._leader_task(settings),
            pool=self.config.pool,
            member=self.config.member_id,
            fenced_set=checked_fenced_set(self.election),
            lead=self.election,
            grace_s=settings.task_grace_s,
            on_crash=self._on_task_crash,
            on_lapsed=self._on_lead_lapsed,
            clock=clock,
        )
        self.singleton_work = self._singleton_work(settings, clock)
        self._term: int | None = None
        self.forced = False
        self._log = log.bind(pool=self.config.pool, member=self.config.member_id)

    def _singleton_work(self, settings: WorkerSettings, clock: Clock) -> SingletonWork | None:
        """``--singletons``: the task (or command) runs once per singleton owned here."""
        if not settings.runs_singletons:
            return None
        from leaderpool.worker.singleton_work import SingletonWork

        task = exec_task(settings.exec_argv, **self._exec_options(settings)) if settings.exec_argv else settings.task
        return SingletonWork(
            self.election, task, names=settings.singletons, count=settings.singletons_count,
            weight=settings.singletons_weight, max_moves=settings.singletons_max_moves, pool=self.config.pool,
            member=self.config.member_id, grace_s=settings.task_grace_s, events=self.events,
            metrics=lambda: self.metrics, clock=clock,
        )  # fmt: skip

    def _leader_task(self, settings: WorkerSettings) -> Task:
        """The task, given the leader state and run once per slot of its schedule (if any); or
        the ``--exec`` command instead: for the whole lead, or once per slot of the schedule."""
        if settings.runs_singletons:  # the work is per singleton; the leader places them
            return load_task(IDLE_TASK)
        if settings.exec_argv and settings.schedule is None:
            return exec_task(settings.exec_argv, **self._exec_options(settings))
        task = settings.task
        if settings.exec_argv:
            task = exec_per_slot_task(settings.exec_argv, **self._exec_options(settings))
        if settings.schedule is not None:
            task = scheduled(task, settings.schedule, self.election, settings.schedule_grace_s)
        return with_leader_state(task, self.election)  # read once per lead, before the first slot

    @staticmethod
    def _exec_options(settings: WorkerSettings) -> dict[str, Any]:
        return {"json_events": settings.json_events, "grace_s": settings.task_grace_s, "pass_env": settings.pass_env}

    async def run(self, stop: asyncio.Event) -> int:
        """Take part until ``stop`` is set; 0 after a clean stop, 1 if the election itself failed."""
        work = {} if self.settings.exec_argv else {"task": self.settings.task_spec}  # --exec runs no task
        if self.settings.handler_spec is not None:
            work["handler"] = self.settings.handler_spec
        self._log.info(
            "worker_started",
            redis=describe(self.settings.redis_url),
            node=self.config.node,
            priority=self.config.priority,
            ttl_s=self.config.ttl_s,
            heartbeat_s=self.config.heartbeat,
            takeover=self.config.takeover,
            **work,
            **self._work_fields(),
            open_files_limit=soft_limit(),
        )
        code, refused = 0, ""
        self._serve_http()
        await self.election.start()
        keeper = self._keep_names()
        singletons = self._start_singletons(stop)
        try:
            while not stop.is_set():
                self.loop_turned_at = time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await within(stop.wait(), ELECTION_CHECK_S)
                if self.election.role is Role.STOPPED and not stop.is_set():  # it ended on its own
                    code = 1
                    break
            else:
                self._log.info("worker_stopping")
        finally:
            await self._stop_keeping_names(keeper)  # before leaving: the leave frees them
            await self._stop_singletons(singletons)  # before leaving: each handed over with its state
            try:
                await self.election.stop()  # revoked(shutdown) -> task stopped -> release + leave
                if code:  # it ended on its own without saying why: a bug
                    self._log.error("election_stopped_unexpectedly")
            except MemberIdInUse as exc:  # another live process runs our member id: one line, exit 2
                refused, code = str(exc), EXIT_USAGE
            except Exception:
                self._log.exception("election_failed")
                code = 1
            await self.runner.stop()
            if self.forced:  # a second signal cut the shutdown short
                code = EXIT_FORCED
            if self.http is not None:
                self.http.close()
            self._log.info("worker_stopped", exit_code=code)
            if refused:  # the last line on stderr
                say_error(PROG, refused)
        return code

    def _start_singletons(self, stop: asyncio.Event) -> asyncio.Task[bool] | None:
        """``--singletons``: start running them beside the election (Redis may be away yet)."""
        if self.singleton_work is None:
            return None
        return asyncio.get_running_loop().create_task(
            self.singleton_work.start(stop), name="leaderpool-singletons-start"
        )

    async def _stop_singletons(self, starting: asyncio.Task[bool] | None) -> None:
        if self.singleton_work is None or starting is None:
            return
        if not starting.done():
            await cancel_and_wait(starting)
        if starting.cancelled() or starting.exception() is not None or not starting.result():
            return  # never started: nothing runs here
        try:
            await within(self.singleton_work.stop(), self.config.ttl_s + self.settings.task_grace_s)
        except Exception as exc:  # the lease frees them: the other members run them after it
            self._log.warning("singletons_stop_failed", error=str(exc) or type(exc).__name__)

    def _work_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"exec": list(self.settings.exec_argv)} if self.settings.exec_argv else {}
        schedule = self.settings.schedule
        if self.settings.runs_singletons:
            fields.update(singletons=len(self.settings.singletons) + self.settings.singletons_count)
        if schedule is not None:
            fields.update(schedule=schedule.name, spec=schedule.spec, catch_up=schedule.catch_up.value)
        return fields

    # ---- health and metrics (--http-port) ----

    def _serve_http(self) -> None:
        if self.http is None:
            return
        from prometheus_client import REGISTRY

        from leaderpool.metrics import enable_metrics
        from leaderpool.worker.http import Probe

        self.metrics = enable_metrics(REGISTRY)  # the default registry: the process's own collectors too
        self.http.serve(Probe(health=self.health, leader=self.leadership), REGISTRY)
        host, port = self.http.address
        self._log.info("http_listening", host=host, port=port, paths="/healthz /leader /metrics")

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Alive while the loop turns and the election runs; Redis being retried is still alive."""
        from leaderpool.worker.http import STALLED_AFTER_S

        c = self.config
        loop_s = time.monotonic() - self.loop_turned_at
        role = self.election.role
        answered = self.metrics.since_answered(c.pool, c.member_id) if self.metrics else None
        redis_ok = answered is not None and answered < c.ttl_s
        ok = loop_s < STALLED_AFTER_S and role is not Role.STOPPED
        return ok, {
            "status": "ok" if ok else "unhealthy",
            "pool": c.pool,
            "member": c.member_id,
            "role": role.value,
            "term": self.election.term,
            "loop_turned_s_ago": round(loop_s, 3),
            "redis": "ok" if redis_ok else "retrying",
            "last_heartbeat_s_ago": None if answered is None else round(answered, 3),
        }

    def leadership(self) -> tuple[bool, dict[str, Any]]:
        """Leading or not, for a readiness probe that routes to the leader alone."""
        leader = self.election.leader
        term = self.election.term
        leading = self.election.is_leader and term is not None
        return leading, {
            "pool": self.config.pool,
            "member": self.config.member_id,
            "leader": leader.member if leader else None,
            "term": term if leading else (leader.term if leader else None),
        }

    def _keep_names(self) -> asyncio.Task[None] | None:
        """``--name``: hold (or stand by for) each name while the worker runs."""
        if not self.settings.names:
            return None
        from leaderpool.worker.name_keeper import NameKeeper

        keeper = NameKeeper(self.election, self.settings.names, self.events)
        task = asyncio.get_running_loop().create_task(keeper.run(), name="leaderpool-names-keeper")
        task.add_done_callback(self._keeper_ended)
        return task

    def _keeper_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:  # a bug: say so, the worker runs on
            self._log.error("name_keeper_failed", error=repr(task.exception()))

    async def _stop_keeping_names(self, keeper: asyncio.Task[None] | None) -> None:
        if keeper is None:
            return
        await cancel_and_wait(keeper)  # again and again: a Redis call in it can swallow one cancellation
        await self.election.names.settle(self.config.heartbeat)  # a registration in flight is freed too

    async def _on_elected(self, term: int) -> None:
        self._term = term
        if self.events:
            self.events.elected(term)
        self.runner.start(term)

    async def _on_revoked(self, reason: RevokeReason) -> None:
        term, self._term = self._term, None
        if self.events:
            self.events.revoked(term, reason)
        await self.runner.stop()

    def _on_leader_changed(self, leader: LeaderInfo | None) -> None:
        if self.events:
            self.events.leader(leader)

    def _on_lead_lapsed(self, term: int) -> None:
        """The task saw its renew deadline pass and ended. Usually the election is about to step
        down too; but if it renewed this very term meanwhile (a reply that came in just after the
        deadline), it would lead on with no task running: hand the lead over instead."""
        if self.election.term == term and self.election.is_leader:
            self._log.warning(
                "stepping_down", reason=RevokeReason.LEASE_LOST.value, detail="the task saw its lead lapse"
            )
            self.election.step_down(RevokeReason.LEASE_LOST)

    def _on_task_crash(self, term: int, error: BaseException) -> None:
        if self.election.term != term:
            return  # that leadership is already over
        if self.metrics is not None:
            self.metrics.task_crashed(self.config.pool, self.config.member_id)
        self._log.warning("stepping_down", reason=RevokeReason.TASK_FAILED.value, error=type(error).__name__)
        self.election.step_down(RevokeReason.TASK_FAILED, rejoin=True)


class ShutdownSignals:
    """What the shutdown signals asked for: the first a kind stop, the second a forced exit."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.stop = asyncio.Event()
        self.forced = asyncio.Event()
        self.count = 0

    def __call__(self, signum: int) -> None:
        self.count += 1
        log.soon("info", "signal_received", signal=signal.Signals(signum).name, count=self.count)
        if self.count == 1:
            # The hand-over starts now, not a loop turn later: the task is told to stop first
            # (it ends while the election's callbacks and loop wake up), then the election gives
            # the lead up locally and dispatches on_revoked, which waits for the task to have
            # ended before the leave script hands the lead over. With singletons the election
            # stops once they are handed over (Worker.run): its leave would free them, lost.
            self.worker.runner.halt()
            if self.worker.singleton_work is None:  # else they are handed over first, each with its state
                self.worker.election.request_stop()
            self.stop.set()
        else:
            self.worker.forced = True
            self.forced.set()


async def serve(worker: Worker, signals: ShutdownSignals) -> int:
    """Run ``worker`` until the first signal and its kind shutdown end (its exit code), or until
    a second signal (:data:`EXIT_FORCED` at once, leaving what still runs to :func:`run`)."""
    running = asyncio.ensure_future(worker.run(signals.stop))
    forcing = asyncio.ensure_future(signals.forced.wait())
    try:
        await asyncio.wait({running, forcing}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        forcing.cancel()
    if running.done():
        return running.result()
    log.warning("worker_forced_exit", exit_code=EXIT_FORCED, detail="a second signal: not waiting for the shutdown")
    return EXIT_FORCED


def run(settings: WorkerSettings, http: HttpEndpoints | None = None) -> int:
    """Run a worker on a loop of its own until it stops; returns the exit code.

    Unlike ``asyncio.run``, the way out is bounded: what still runs when the worker is done (a
    task that swallowed its cancellation, a shutdown cut short by a second signal) is cancelled,
    given :data:`LEFTOVER_WAIT_S`, and then abandoned with the loop."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    forced = False
    try:
        events = EventWriter(settings.config.pool, settings.config.member_id) if settings.json_events else None
        worker = Worker(settings, events, http)
        signals = ShutdownSignals(worker)
        for signum in SHUTDOWN_SIGNALS:  # they stay handled until the loop is gone: a third one is logged
            loop.add_signal_handler(signum, signals, signum)
        # The modules and the worker built so far (some 40,000 objects) are never scanned again:
        # a full collection of them took 4-12 ms, whenever it fell, a hand-over's whole budget.
        quiet_gc(young_threshold=gc.get_threshold()[0])
        try:
            return loop.run_until_complete(serve(worker, signals))
        finally:
            forced = signals.forced.is_set()
    finally:
        try:
            _end_leftovers(loop, LEFTOVER_WAIT_S / 2 if forced else LEFTOVER_WAIT_S)
        finally:
            for signum in SHUTDOWN_SIGNALS:
                loop.remove_signal_handler(signum)
            asyncio.set_event_loop(None)
            loop.close()


def _end_leftovers(loop: asyncio.AbstractEventLoop, wait_s: float) -> None:
    """Cancel the loop's remaining tasks, wait at most ``wait_s`` for them, abandon the rest."""
    left = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in left:
        task.cancel()
    if left:
        loop.run_until_complete(asyncio.wait(left, timeout=wait_s))
    stuck = [task for task in left if not task.done()]
    if stuck:
        log.warning("tasks_abandoned", tasks=sorted(task.get_name() for task in stuck), wait_s=wait_s)
        _quiet_when_destroyed(loop, set(stuck))
    with contextlib.suppress(TimeoutError):
        loop.run_until_complete(within(loop.shutdown_asyncgens(), wait_s))


def _quiet_when_destroyed(loop: asyncio.AbstractEventLoop, abandoned: set[asyncio.Task[Any]]) -> None:
    """Abandoned tasks are logged once, above: not again as "destroyed but pending" with the loop."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("task") not in abandoned:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
