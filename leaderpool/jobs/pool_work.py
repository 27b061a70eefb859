"""The work methods every face offers (``submit``, ``call``, ``multicall``, and a pool client's
``submit_many``), written once over :class:`~leaderpool.jobs.calls.Calls`.

A member (:class:`~leaderpool.aio.AsyncElection`) and a pool client
(:class:`~leaderpool.pool_client.AsyncPoolClient`) hand a pool work the same way; each says how
it gets its :class:`Calls` (built once it is started), and these methods translate Redis's
failures into leaderpool's errors, naming the pool and, for a member, the member
(:attr:`Calls.caller`). Their blocking twins are derived from them (:mod:`leaderpool.util.lifecycle`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from leaderpool.backend.redis_errors import translate_redis_errors
from leaderpool.jobs.calls import DEFAULT_CALL_TIMEOUT_S, Calls
from leaderpool.jobs.wire import MulticallResult

__all__ = ["PoolWork", "PoolWorkInBatches"]


class PoolWork:
    """``submit``, ``call`` and ``multicall`` on the face's :attr:`calls`."""

    @property
    def calls(self) -> Calls:
        """How the face hands the pool work (it raises until the face is started)."""
        raise NotImplementedError

    async def submit(self, payload: Any) -> str:
        """Append a job to the pool's stream (with or without a leader); returns its id. The
        leader's handler runs it."""
        calls = self.calls
        with translate_redis_errors(pool=calls.pool, member=calls.caller):
            return await calls.submit(payload)

    async def call(self, payload: Any, timeout: float = DEFAULT_CALL_TIMEOUT_S, *, member: str | None = None) -> Any:
        """The leader's (or ``member``'s) reply to ``payload``; see :meth:`leaderpool.jobs.calls.Calls.call`."""
        calls = self.calls
        with translate_redis_errors(pool=calls.pool, member=calls.caller):
            return await calls.call(payload, timeout, member=member)

    async def multicall(self, payload: Any, timeout: float = DEFAULT_CALL_TIMEOUT_S) -> MulticallResult:
        """Every live member's reply to ``payload`` (those that run a handler), and who did not
        answer in time."""
        calls = self.calls
        with translate_redis_errors(pool=calls.pool, member=calls.caller):
            return await calls.multicall(payload, timeout)


class PoolWorkInBatches(PoolWork):
    """:class:`PoolWork`, and ``submit_many`` (a pool client's)."""

    async def submit_many(self, payloads: Sequence[Any]) -> list[str]:
        """Append several jobs in one round trip, all or none (the cap counts them all)."""
        calls = self.calls
        with translate_redis_errors(pool=calls.pool, member=calls.caller):
            return await calls.submit_many(payloads)
