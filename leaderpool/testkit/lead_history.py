"""What a test's pool did: each lead's start and end, on the kit's clock, and the check that no
two members ever acted as leader at once.

A member acts on a lead from its election until the earlier of its revocation and its renew
deadline (a frozen leader is told its lead ended only when it thaws, but it could act only until
its deadline: leaderpool's safety rule). The kit notes each leader's deadline whenever the pool
settles; the check compares those ends with the next lead's start.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

Kind = Literal["elected", "revoked"]


class LeadEvent(NamedTuple):
    """``(t, member, kind, term, reason)``: ``t`` in seconds on the kit's clock since it started."""

    t: float
    member: str
    kind: Kind
    term: int
    reason: str | None


@dataclass
class _Lead:
    member: str
    term: int
    start: float
    end: float = math.inf  # revoked at
    deadline: float = math.inf  # the latest renew deadline seen (kit time since the start)

    @property
    def acted_until(self) -> float:
        return min(self.end, self.deadline)


class LeadHistory:
    """Every ``elected`` and ``revoked`` of a pool's members, in the order they happened."""

    def __init__(self) -> None:
        self.events: list[LeadEvent] = []
        self._leads: list[_Lead] = []
        self._open: dict[str, _Lead] = {}

    def elected(self, t: float, member: str, term: int) -> None:
        self.events.append(LeadEvent(t, member, "elected", term, None))
        lead = _Lead(member, term, t)
        self._leads.append(lead)
        self._open[member] = lead

    def revoked(self, t: float, member: str, term: int, reason: str) -> None:
        self.events.append(LeadEvent(t, member, "revoked", term, reason))
        lead = self._open.pop(member, None)
        if lead is not None and lead.term == term:
            lead.end = t

    def saw_deadline(self, member: str, term: int, deadline: float) -> None:
        """``member`` leads ``term`` until ``deadline`` (kit time) unless it renews."""
        lead = self._open.get(member)
        if lead is not None and lead.term == term:
            lead.deadline = deadline if math.isinf(lead.deadline) else max(lead.deadline, deadline)

    def violations(self) -> list[str]:
        """Each place two leads overlap or a term goes backwards, one line each."""
        found: list[str] = []
        leads = sorted(self._leads, key=lambda lead: (lead.start, lead.term))
        for before, after in itertools.pairwise(leads):
            if after.term <= before.term:
                found.append(
                    f"term went backwards: {after.member} elected for term {after.term} at t={after.start:.3f} "
                    f"after {before.member}'s term {before.term}"
                )
            if before.acted_until > after.start + 1e-9:
                until = "still" if math.isinf(before.acted_until) else f"until t={before.acted_until:.3f}"
                found.append(
                    f"two leaders: {before.member} (term {before.term}) led {until} while {after.member} "
                    f"(term {after.term}) was elected at t={after.start:.3f}"
                )
        return found
