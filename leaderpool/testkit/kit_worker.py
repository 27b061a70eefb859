"""A worker's ``--task`` under the kit: a member of a test's pool run by the worker's own
:class:`~leaderpool.worker.worker_service.Worker` (the task started when elected and
stopped when revoked, ``--every``/``--cron`` slots, the leader state, a crashing task stepping
down), on the kit's Redis and clock instead of a URL and the system's.

An ``async def`` task sleeps on the kit's clock (``ctx.sleep``, ``ctx.stop.wait()``); a plain
``def`` task runs in a thread whose sleeps take real time (its deadline checks read the kit's clock).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from leaderpool.aio import AsyncElection
from leaderpool.backend.clients import RedisLike
from leaderpool.config import MemberConfig
from leaderpool.errors import LeaderpoolError
from leaderpool.util.clock import Clock
from leaderpool.worker.settings import WorkerSettings, parse_settings
from leaderpool.worker.tasks import Task
from leaderpool.worker.worker_service import Worker

PLACEHOLDER_TASK = "leaderpool.worker.tasks:periodic_work"
"""What the flags are parsed with when the task is given as a function rather than ``MODULE:FUNCTION``."""


def worker_settings(config: MemberConfig, task: str | Task, worker_args: Sequence[str] = ()) -> WorkerSettings:
    """The worker's settings from its flags (``worker_args``: ``--every 60``, ``--task-grace``...),
    with the kit's member config over the flags' (every field of it)."""
    spec = task if isinstance(task, str) else PLACEHOLDER_TASK
    argv = ["--pool", config.pool, "--member-id", config.member_id, "--ttl", repr(config.ttl_s), "--task", spec]
    settings = parse_settings([*argv, *worker_args], environ={})
    settings = replace(settings, config=config)
    if not isinstance(task, str):
        settings = replace(settings, task=task, task_spec=getattr(task, "__qualname__", repr(task)))
    return settings


class KitWorker:
    """One worker on the members' loop (made anywhere, started on the loop)."""

    def __init__(self, settings: WorkerSettings, redis: RedisLike, clock: Clock) -> None:
        self.service = Worker(settings, redis=redis, clock=clock)
        self._stop: asyncio.Event | None = None
        self._running: asyncio.Future[int] | None = None

    @property
    def election(self) -> AsyncElection:
        return self.service.election

    async def start(self) -> None:
        """Run the worker on the running loop; return once its election has started."""
        self._stop = asyncio.Event()
        self._running = asyncio.ensure_future(self.service.run(self._stop))
        while not _started(self.election) and not self._running.done():
            await asyncio.sleep(0)

    async def end(self, *, crash: bool) -> None:
        """Stop it (kindly, or as a crash: no hand-over) and wait until it has."""
        if self._stop is None or self._running is None:
            return
        if crash and _started(self.election):
            self.election.core.abandon()
        self._stop.set()
        await asyncio.wait({self._running})


def _started(election: AsyncElection) -> bool:
    try:
        election.core  # noqa: B018  # raises until the election has started
    except LeaderpoolError:
        return False
    return True
