"""``python -m leaderpool.worker`` (``leaderpool-worker``): one member of one pool per process.

It joins the pool, runs the leader task (:mod:`leaderpool.worker.tasks`) while it leads, and prints one
JSON line per transition on stdout with ``--json-events``; logs go to stderr. SIGTERM/SIGINT hand
over kindly and exit 0; a crashed task makes the member step down and rejoin as the youngest.
Redis being unreachable never ends the process: the election core retries with capped backoff.
Flags and variables are read by :mod:`leaderpool.worker.settings`.

Only :func:`main` installs signal handlers; :class:`Worker` can run inside any event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from leaderpool.aio import AsyncElection
from leaderpool.cli.args import UsageError, fail
from leaderpool.cli.logs import configure_logging
from leaderpool.clients import describe
from leaderpool.events import LeaderInfo, RevokeReason, Role
from leaderpool.log import get_logger
from leaderpool.worker.settings import PROG, WorkerSettings, parse_settings
from leaderpool.worker.tasks import TaskRunner, checked_fenced_set

__all__ = ["EventWriter", "Worker", "WorkerSettings", "main", "parse_settings", "serve"]

ELECTION_CHECK_S = 0.5
"""How often the worker checks that the election loop is still running (it only ends on a bug)."""

log = get_logger("leaderpool.worker")


# ---- JSON events ----


class EventWriter:
    """One JSON object per line, flushed, for each transition (``--json-events``)."""

    def __init__(self, pool: str, member: str, stream: TextIO | None = None) -> None:
        self.pool = pool
        self.member = member
        self.stream = stream or sys.stdout
        self.broken = False

    def write(self, event: str, **fields: Any) -> None:
        if self.broken:
            return
        record = {"event": event, "pool": self.pool, **fields, "t": time.time()}
        try:
            self.stream.write(json.dumps(record, separators=(",", ":")) + "\n")
            self.stream.flush()
        except (OSError, ValueError) as exc:  # the reader went away: lead on, without events
            self.broken = True
            log.warning("json_events_unwritable", error=str(exc) or type(exc).__name__)

    def elected(self, term: int) -> None:
        self.write("elected", member=self.member, term=term)

    def revoked(self, term: int | None, reason: RevokeReason) -> None:
        self.write("revoked", member=self.member, term=term, reason=reason.value)

    def leader(self, leader: LeaderInfo | None) -> None:
        self.write("leader", member=leader.member if leader else None, term=leader.term if leader else None)


# ---- the worker ----


class Worker:
    """Drives one :class:`AsyncElection` and the leader task; :meth:`run` until ``stop`` is set."""

    def __init__(self, settings: WorkerSettings, events: EventWriter | None = None) -> None:
        self.settings = settings
        self.config = settings.config
        self.events = events
        self.election = AsyncElection(
            self.config,
            settings.redis_url,
            on_elected=self._on_elected,
            on_revoked=self._on_revoked,
            on_leader_changed=self._on_leader_changed,
        )
        self.runner = TaskRunner(
            settings.task,
            pool=self.config.pool,
            member=self.config.member_id,
            fenced_set=checked_fenced_set(self.election),
            lead=self.election,
            grace_s=settings.task_grace_s,
            on_crash=self._on_task_crash,
        )
        self._term: int | None = None
        self._log = log.bind(pool=self.config.pool, member=self.config.member_id)

    async def run(self, stop: asyncio.Event) -> int:
        """Take part until ``stop`` is set; 0 after a clean stop, 1 if the election itself failed."""
        self._log.info(
            "worker_started",
            redis=describe(self.settings.redis_url),
            node=self.config.node,
            priority=self.config.priority,
            ttl_s=self.config.ttl_s,
            heartbeat_s=self.config.heartbeat,
            takeover=self.config.takeover,
            task=self.settings.task_spec,
        )
        code = 0
        await self.election.start()
        try:
            while not stop.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), ELECTION_CHECK_S)
                if self.election.role is Role.STOPPED and not stop.is_set():  # it ended on its own: a bug
                    self._log.error("election_stopped_unexpectedly")
                    code = 1
                    break
            else:
                self._log.info("worker_stopping")
        finally:
            try:
                await self.election.stop()  # revoked(shutdown) -> task stopped -> release + leave
            except Exception:
                self._log.exception("election_failed")
                code = 1
            await self.runner.stop()
            self._log.info("worker_stopped", exit_code=code)
        return code

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

    def _on_task_crash(self, term: int, error: BaseException) -> None:
        if self.election.term != term:
            return  # that leadership is already over
        self._log.warning("stepping_down", reason=RevokeReason.TASK_FAILED.value, error=type(error).__name__)
        self.election.step_down(RevokeReason.TASK_FAILED, rejoin=True)


async def serve(settings: WorkerSettings) -> int:
    """Run a worker until SIGTERM or SIGINT; a second signal stops waiting for the hand-over."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main_task = asyncio.current_task()
    signals = 0

    events = EventWriter(settings.config.pool, settings.config.member_id) if settings.json_events else None
    worker = Worker(settings, events)

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            worker.election.request_stop()  # the hand-over starts now, not a loop turn later
            stop.set()
        elif main_task is not None:
            main_task.cancel()
        log.info("signal_received", signal=signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await worker.run(stop)
    except asyncio.CancelledError:
        log.warning("worker_forced_exit")
        return 1
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = parse_settings(argv)
    except UsageError as exc:
        fail(PROG, str(exc))
    configure_logging(settings.log_format, settings.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve(settings))
    return 1


if __name__ == "__main__":
    sys.exit(main())
