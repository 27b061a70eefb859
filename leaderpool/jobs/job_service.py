"""A member's work: the leader's job consumer and the member's inbox, driven by its election.

:class:`~leaderpool.aio.AsyncElection` (and so the blocking :class:`~leaderpool.blocking.Election`)
makes one when given ``handler=``: the inbox serves from start to stop; the consumer runs from
each ``elected`` to the matching ``revoked``, which the service hears as an at-once lead hook
(:mod:`leaderpool.election.lead_hooks`). On a graceful hand-over the election waits for
:meth:`JobService.revoked`, so the job under way is acknowledged before the lead moves on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from leaderpool.backend.keys import Keyspace
from leaderpool.election.lead_hooks import LeadHook, LeadHooks
from leaderpool.events import RevokeReason
from leaderpool.jobs.consumer import JobConsumer, LeadCheck
from leaderpool.jobs.inbox import InboxServer
from leaderpool.jobs.job_store import JobStore
from leaderpool.jobs.jobs_config import JobsConfig
from leaderpool.jobs.runner import HandlerRunner
from leaderpool.jobs.wire import Handler
from leaderpool.util.log import get_logger


class JobService:
    """One member's consumer (while it leads) and inbox (always), on its election's client."""

    def __init__(
        self,
        client: object,
        keys: Keyspace,
        member: str,
        handler: Handler,
        config: JobsConfig,
        *,
        lead_ok: LeadCheck,
        term_of: Callable[[], int | None],
        grace_s: float,
    ) -> None:
        log = get_logger("leaderpool", pool=keys.pool, member=member, term=None)
        self.store = JobStore(client, keys)
        self.grace_s = grace_s
        self._job_runner = HandlerRunner(handler, config.max_payload_bytes)
        self._inbox_runner = HandlerRunner(handler, config.max_payload_bytes)
        self.consumer = JobConsumer(self.store, member, self._job_runner, config, lead_ok, log)
        self.inbox = InboxServer(self.store, member, self._inbox_runner, term_of, log)

    def start(self, hooks: LeadHooks) -> None:
        """Serve the inbox, and run the consumer from each start of the lead (``hooks``) to its end."""
        self.inbox.start()
        # at once, beside the application's callbacks: the consumer starts with the lead, and
        # stops taking jobs the moment it ends (not after a slow on_revoked)
        hooks.add(LeadHook(on_lead_started=self.elected, on_lead_ended=self._lead_ended), at_once=True)

    def elected(self, term: int) -> None:
        self.consumer.start(term)

    async def revoked(self) -> None:
        await self.consumer.stop(self.grace_s)

    def _lead_ended(self, term: int, reason: RevokeReason) -> Awaitable[None]:
        return self.revoked()

    async def close(self) -> None:
        await self.consumer.stop(self.grace_s)
        await self.inbox.stop()
        self._job_runner.close()
        self._inbox_runner.close()
