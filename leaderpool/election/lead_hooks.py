"""What runs when this member's lead starts and ends, beside the application's callbacks: the one
mechanism the capabilities hook into (the job consumer, :func:`~leaderpool.schedules.periodic.run_schedule`'s
runner, the leader state of ``with_state=True``).

A hook is a :class:`LeadHook`: ``on_lead_started(term)`` and ``on_lead_ended(term, reason)``,
each optional, each plain or returning an awaitable. Hooks run at one of two moments:

- **at once** (``add(hook, at_once=True)``): the moment the lead changes, on the election loop,
  beside the application's callback. For work that must start and stop with the lead itself:
  the job consumer takes no job once the lead ended, whatever ``on_revoked`` is doing.
- **in turn** (the default): awaited one after another, in the order they were added. When a
  lead starts, before ``on_elected`` runs (so the leader state is read before it); when it ends,
  once ``on_revoked`` and the at-once hooks have returned (a scheduled run in progress is waited for).

A kind hand-over (stop, resign, takeover) waits for all of them before it releases the lead, at
most one lease in all (:meth:`~leaderpool.election.leadership.Leadership.acknowledged`); after a
lost lease nobody waits, but they run all the same. A hook that raises is logged
(``elected_hook_failed``, ``revoked_hook_failed``, with pool, member and term) and the others still
run, except an in-turn lead-started hook: it prepares what ``on_elected`` starts from (the leader
state), so its error stops the start there (the hooks after it and ``on_elected`` do not run) and
reaches the callbacks' dispatcher, which logs it as the failed ``on_elected`` it stands for.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from leaderpool.events import RevokeReason
from leaderpool.util.log import Logger

__all__ = ["LeadHook", "LeadHooks", "OnLeadEnded", "OnLeadStarted"]

OnLeadStarted = Callable[[int], "Awaitable[None] | None"]
"""``on_lead_started(term)``: this member leads ``term`` from now."""
OnLeadEnded = Callable[[int, RevokeReason], "Awaitable[None] | None"]
"""``on_lead_ended(term, reason)``: the lead of ``term`` is over (this member acts no more for it)."""


@dataclass(frozen=True, eq=False)
class LeadHook:
    """What to run when a lead starts, ends, or both."""

    on_lead_started: OnLeadStarted | None = None
    on_lead_ended: OnLeadEnded | None = None


class LeadHooks:
    """One member's lead hooks, run by its face as the election reports its lead starting and ending."""

    def __init__(self, log: Logger) -> None:
        self.log = log  # bound with pool and member
        self._at_once: list[LeadHook] = []
        self._in_turn: list[LeadHook] = []
        self._begun: set[asyncio.Future[None]] = set()  # at-once started hooks' awaitables, until done

    def add(self, hook: LeadHook, *, at_once: bool = False) -> Callable[[], None]:
        """Run ``hook`` from the next lead change on (``at_once``: see the module's docstring);
        returns a function that removes it."""
        hooks = self._at_once if at_once else self._in_turn
        hooks.append(hook)
        return lambda: hooks.remove(hook) if hook in hooks else None

    @property
    def waits_before_elected(self) -> bool:
        """Whether :meth:`before_elected` has anything to run (a face may skip a thread hop)."""
        return any(h.on_lead_started is not None for h in self._in_turn)

    def lead_started(self, term: int) -> None:
        """The at-once hooks for the lead of ``term`` (the face calls this on the election loop,
        as it hands ``elected`` to the callbacks); what they return runs as a task."""
        for hook in list(self._at_once):
            if hook.on_lead_started is not None:
                begun = self._call("elected_hook_failed", term, hook.on_lead_started, term)
                if begun is not None:
                    task = asyncio.ensure_future(self._awaited("elected_hook_failed", term, begun))
                    self._begun.add(task)
                    task.add_done_callback(self._begun.discard)

    async def before_elected(self, term: int) -> None:
        """The in-turn hooks for the lead of ``term``, one after another (the callbacks run this
        just before ``on_elected``); the first that raises stops them, and ``on_elected``, with its error."""
        for hook in list(self._in_turn):
            if hook.on_lead_started is not None:
                await self._run(hook.on_lead_started, term)

    def lead_ended(self, term: int, reason: RevokeReason, acknowledged: Awaitable[None]) -> Awaitable[None]:
        """The lead of ``term`` ended: the at-once hooks begin now, beside ``on_revoked``
        (``acknowledged``: its callback has returned); once all are done, the in-turn hooks run
        one after another. Returns what a kind hand-over waits for."""
        if not any(h.on_lead_ended is not None for h in (*self._at_once, *self._in_turn)):
            return acknowledged
        at_once: list[Awaitable[None]] = []
        for hook in list(self._at_once):
            if hook.on_lead_ended is not None:
                ended = self._call("revoked_hook_failed", term, hook.on_lead_ended, term, reason)
                if ended is not None:
                    at_once.append(self._awaited("revoked_hook_failed", term, ended))
        # a task, so the at-once hooks finish even when nobody awaits the hand-over (lease lost)
        return asyncio.ensure_future(self._after_revoked(term, reason, acknowledged, at_once))

    async def _after_revoked(
        self, term: int, reason: RevokeReason, acknowledged: Awaitable[None], at_once: list[Awaitable[None]]
    ) -> None:
        """``on_revoked`` and the at-once hooks together, then the in-turn hooks in turn."""
        await asyncio.gather(acknowledged, *at_once)
        for hook in list(self._in_turn):
            if hook.on_lead_ended is not None:
                await self._awaited("revoked_hook_failed", term, self._run(hook.on_lead_ended, term, reason))

    def _call(
        self, event: str, term: int, fn: Callable[..., Awaitable[None] | None], *args: object
    ) -> Awaitable[None] | None:
        """``fn(*args)`` now; what it returns to await, None if nothing (or it raised: logged)."""
        try:
            return fn(*args)
        except Exception:
            self.log.exception(event, term=term)
            return None

    async def _run(self, fn: Callable[..., Awaitable[None] | None], *args: object) -> None:
        """``fn(*args)``, awaited if it returns an awaitable."""
        result = fn(*args)
        if inspect.isawaitable(result):
            await result

    async def _awaited(self, event: str, term: int, awaitable: Awaitable[None]) -> None:
        """``awaitable`` awaited; what it raises is logged as ``event``, not raised."""
        try:
            await awaitable
        except Exception:
            self.log.exception(event, term=term)
