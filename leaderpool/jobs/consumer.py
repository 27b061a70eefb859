"""The leader's consumer: reads the pool's job stream under its term, runs the handler, and
acknowledges each job only after the handler returned.

One run per leadership (:meth:`JobConsumer.start` on election, :meth:`JobConsumer.stop` on
revocation). On election it first claims, in one script checked against its term, every job
another consumer holds (the previous leader died or lost its lead mid-job) and re-runs them with
their delivery count; then it reads new jobs in batches with a blocking ``XREADGROUP``. It checks
its lead before each job (a handler never starts after the renew deadline), and every
acknowledgement is a script that checks the leader key holds this term: a stale leader's ack is
refused by Redis, and its jobs run again under the new leader (at-least-once).

A leader that lost its lead while a blocking read was under way may still receive jobs after the
new leader claimed; the new leader claims again every ``reclaim_s``, so such jobs wait at most that
long. A failed delivery runs again after a delay that doubles (``retry_delay_s``), up to
``max_deliveries`` in all, then goes to the dead letters with its error.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass

from leaderpool import probe
from leaderpool.backend.protocol import LeaderValue
from leaderpool.backend.redis_errors import RETRYABLE
from leaderpool.errors import ScriptError
from leaderpool.jobs.job_store import Done, Failed, JobStore
from leaderpool.jobs.jobs_config import JobsConfig
from leaderpool.jobs.runner import HandlerRunner
from leaderpool.jobs.wire import Job, JobContext, Kind, ok_reply
from leaderpool.util.constants import BACKOFF_FIRST_S
from leaderpool.util.log import Logger
from leaderpool.util.timeouts import within

READ_BLOCK_MS = 1000
"""A blocking read returns at least this often, so the loop re-checks its lead and reclaims."""
RECLAIM_LIMIT = 500
"""Jobs claimed per script call (a large backlog of orphans is claimed in several calls)."""
BACKOFF_MAX_S = 1.0

LeadCheck = Callable[[int], bool]
"""``lead_ok(term)``: this member still leads ``term`` and is inside its renew deadline (plain
reads of the election's state: safe from a handler's thread)."""


@dataclass
class _Lead:
    """One leadership's run of the consumer: its own stop flag and read, so that stopping the
    run of one term can never touch the run of the next."""

    term: int
    stopping: bool = False
    reading: asyncio.Task[list[Job]] | None = None


class JobConsumer:
    """Consumes a pool's jobs while this member leads."""

    def __init__(
        self,
        store: JobStore,
        member: str,
        runner: HandlerRunner,
        config: JobsConfig,
        lead_ok: LeadCheck,
        log: Logger,
    ) -> None:
        self.store = store
        self.member = member
        self.runner = runner
        self.config = config
        self._lead_ok = lead_ok
        self._log = log
        self._current: tuple[_Lead, asyncio.Task[None]] | None = None
        self._seq = 0

    @property
    def running(self) -> bool:
        return self._current is not None and not self._current[1].done()

    def start(self, term: int) -> None:
        lead = _Lead(term)
        task = asyncio.get_running_loop().create_task(self._run(lead), name=f"leaderpool-jobs-{term}")
        self._current = (lead, task)

    async def stop(self, grace_s: float) -> None:
        """Stop reading; let the job under way finish and be acknowledged (up to ``grace_s``),
        then cancel. Jobs read and not run stay pending: the next leader claims them."""
        current, self._current = self._current, None
        if current is None:
            return
        lead, task = current
        lead.stopping = True
        if lead.reading is not None:
            lead.reading.cancel()  # the entries it was given stay pending: claimed by the next leader
        done, _ = await asyncio.wait({task}, timeout=grace_s)
        if not done:
            task.cancel()
            self._log.warning(
                "jobs_stop_slow", term=lead.term, grace_s=grace_s, detail="the handler still runs; its job runs again"
            )
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await within(task, 1.0)

    def _may_start(self, lead: _Lead) -> bool:
        return not lead.stopping and self._lead_ok(lead.term)

    async def _run(self, lead: _Lead) -> None:
        term = lead.term
        held = LeaderValue(term, self.member)
        log = self._log.bind(term=term)
        queue: collections.deque[Job] = collections.deque()
        delayed: list[tuple[float, int, Job]] = []  # failed jobs waiting to run again: (when, seq, job)
        next_reclaim = 0.0
        on_election = True
        delay = BACKOFF_FIRST_S
        while self._may_start(lead):
            try:
                if time.monotonic() >= next_reclaim:
                    if not await self._reclaim(held, queue, on_election, log):
                        return
                    on_election = False
                    next_reclaim = time.monotonic() + self.config.reclaim_s
                while delayed and delayed[0][0] <= time.monotonic():
                    queue.append(heapq.heappop(delayed)[2])
                if not queue:
                    wake = min(next_reclaim, delayed[0][0]) if delayed else next_reclaim
                    queue.extend(await self._read(lead, wake))
                    continue
                batch = [queue.popleft() for _ in range(min(len(queue), self.config.batch))]
                if not await self._run_batch(lead, held, batch, delayed, log):
                    return
                delay = BACKOFF_FIRST_S
            except asyncio.CancelledError:
                if lead.stopping:
                    return
                raise
            except ScriptError as exc:
                log.error("script_failed", script=exc.script, error=str(exc))
                return
            except RETRYABLE as exc:
                log.warning("jobs_redis_failed", error=str(exc) or type(exc).__name__, retry_s=delay)
                # what a failed read delivered, or a failed settle left pending, is in our own
                # pending list only: start over from Redis, as on election (at-least-once); the
                # reclaim also makes the group again if the stream was deleted (NOGROUP)
                queue.clear()
                delayed.clear()
                next_reclaim, on_election = 0.0, True
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
            except Exception:
                log.exception("jobs_loop_failed")
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)

    async def _reclaim(self, held: LeaderValue, queue: collections.deque[Job], on_election: bool, log: Logger) -> bool:
        more = True
        while more:
            found = await self.store.reclaim(
                held,
                self.config.max_deliveries,
                self.config.max_dead_letters,
                on_election=on_election,
                limit=RECLAIM_LIMIT,
            )
            if not found.accepted:
                log.warning("jobs_claim_refused", detail="the leader key no longer holds this term")
                return False
            if found.jobs:
                log.info("jobs_claimed", count=len(found.jobs), ids=[j.job_id for j in found.jobs[:20]])
                probe.jobs(self.store.keys.pool, "claimed", len(found.jobs))
            for job_id in found.dead:
                log.warning("job_dead_lettered", job_id=job_id, detail="its consumers stopped mid-job too often")
            known = {j.job_id for j in queue}
            queue.extendleft(reversed([j for j in found.jobs if j.job_id not in known]))
            more = found.more
            on_election = False
        return True

    async def _read(self, lead: _Lead, wake: float) -> list[Job]:
        block_ms = max(1, min(READ_BLOCK_MS, int((wake - time.monotonic()) * 1000)))
        lead.reading = asyncio.ensure_future(self.store.read(self.member, self.config.batch, block_ms))
        try:
            return await lead.reading
        except asyncio.CancelledError:
            if lead.stopping:
                return []
            raise
        finally:
            lead.reading = None

    async def _run_batch(
        self, lead: _Lead, held: LeaderValue, batch: list[Job], delayed: list[tuple[float, int, Job]], log: Logger
    ) -> bool:
        """Run ``batch`` (acknowledging every ``flush_s``); False once the lead is gone."""
        term = held.term
        pool = self.store.keys.pool
        while batch:
            items = [
                (job.payload, JobContext(pool, self.member, job.job_id, job.delivery, term, Kind.JOB, log))
                for job in batch
            ]
            outcomes = await self.runner.run_batch(items, lambda: self._may_start(lead), self.config.flush_s)
            ran, batch = batch[: len(outcomes)], batch[len(outcomes) :]
            done = [Done(job, ok_reply(o.value)) for job, o in zip(ran, outcomes, strict=True) if o.ok]
            failed = [Failed(job, o.value) for job, o in zip(ran, outcomes, strict=True) if not o.ok]
            for f in failed:
                log.warning("job_failed", job_id=f.job.job_id, delivery=f.job.delivery, error=f.error)
            if ran:
                settled = await self.store.settle(
                    held, done, failed, self.config.max_deliveries, self.config.max_dead_letters
                )
                if not settled.accepted:
                    probe.jobs(pool, "ack_refused", len(ran))
                    log.warning(
                        "job_ack_refused",
                        jobs=len(ran),
                        ids=[j.job_id for j in ran[:20]],
                        detail="this term is over: the next leader runs them again",
                    )
                    return False
                by_id = {f.job.job_id: f for f in failed}
                for job_id, delivery in settled.retries:
                    when = time.monotonic() + self.config.retry_delay(delivery)
                    self._seq += 1
                    heapq.heappush(delayed, (when, self._seq, by_id[job_id].job._replace(delivery=delivery)))
                for job_id in settled.dead:
                    log.warning("job_dead_lettered", job_id=job_id, error=by_id[job_id].error)
                probe.jobs(pool, "done", len(done))
                probe.jobs(pool, "failed", len(settled.retries))
                probe.jobs(pool, "dead_lettered", len(settled.dead))
            if not ran:
                return False  # the lead is over (or we stop): the rest stay pending for the next leader
        return True
