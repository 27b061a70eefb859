"""Member identity: one member id, one live process.

Each election is an *incarnation* of its member id: a random token made when its core is
created (so each process start, and each election object, is a new one), written into the
member record beside the host, the pid and when it first joined. Every script that acts for a
member (heartbeat, claim, leave, the names' register and beat) checks that the record under the
id is its incarnation's, so another process given the same id can neither refresh, renew, claim
nor free anything of it. A lead is never inherited: the register script refuses while a lead is
held under the id and the record is not ours, so the only leads a run ever holds are the ones it
claimed or was handed while registered.

When the id counts as free, for a process that asks for it (the register script, then
:class:`IdHolder` when refused):

- nobody holds it: no record, or the record's lease lapsed, and no lead is held under the id;
- the holder is proved dead: its liveness endpoint refuses connections, or another process
  answers there (:func:`~leaderpool.fast_failover.endpoints.endpoint_gone`); its record is replaced at once,
  but a lead it held still ends only as a dead leader's does (a follower's fast-failover proof,
  or its lease), and we wait for that;
- the holder's lease lapses while we watch it (a frozen or unreachable holder): we join as a
  new incarnation; the frozen one, when it wakes, finds its record another's, stops leading (its
  renew deadline has passed already) and is refused in turn.

The id is held, and :class:`~leaderpool.errors.MemberIdInUse` raised, when the holder's endpoint
answers with its own nonce, or its lease deadline moves on while we watch (it beats).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from leaderpool.backend.protocol import Joined
from leaderpool.config import MemberConfig
from leaderpool.errors import MemberIdInUse
from leaderpool.fast_failover.endpoints import endpoint_gone
from leaderpool.members import MemberInfo
from leaderpool.util.log import Logger

INCARNATION_BYTES = 8
"""An incarnation is this many random bytes, in hex: two runs of one id never share one."""


def new_incarnation() -> str:
    """A fresh incarnation token (hex: the scripts find it in a record as plain text)."""
    return secrets.token_hex(INCARNATION_BYTES)


def in_use(config: MemberConfig, holder: MemberInfo, why: str) -> MemberIdInUse:
    """The error, in one line, for ``holder`` holding our id."""
    return MemberIdInUse(
        f"member id {config.member_id!r} is in use in pool {config.pool!r} by a live process "
        f"({holder.describe_incarnation()}, incarnation {holder.incarnation or 'unknown'}; {why}): "
        "give each process its own id (--member-id, LEADERPOOL_MEMBER_ID)",
        holder_host=holder.host,
        holder_pid=holder.pid,
        holder_since_ms=holder.since_ms or holder.started_at_ms,
        holder_incarnation=holder.incarnation,
        pool=config.pool,
        member=config.member_id,
    )


class IdHolder:
    """While the register script refuses us, whoever holds our id: live (raise), proved dead
    (replace its record), or lapsing (wait). Every wait is bounded by what Redis said is left
    of the holder's lease and of a lead under the id, which only a live holder can extend."""

    def __init__(self, config: MemberConfig, clock: Callable[[], float], log: Logger) -> None:
        self._config = config
        self._clock = clock
        self._log = log
        self._tracked: str | None = None  # the holder's incarnation being watched
        self._deadline_ms = 0  # its lease deadline when first seen (Redis ms)
        self._give_up_at = 0.0
        self.replace = ""
        """The incarnation of a holder proved dead: the next registration may replace its record."""

    async def refused(self, reply: Joined) -> float:
        """Seconds to wait before asking again after ``reply`` (0: at once); raises
        :class:`~leaderpool.errors.MemberIdInUse` when the holder is live."""
        c, now = self._config, self._clock()
        holder, deadline = reply.holder, reply.holder_deadline_ms
        live = holder is not None and holder.lease_ms > 0
        if holder is not None and deadline is not None and live:
            if holder.incarnation != self._tracked:
                self._tracked, self._deadline_ms = holder.incarnation, deadline
                self._give_up_at = now + 2 * max(holder.lease_ms, reply.lead_pttl_ms, 0) / 1000 + 2 * c.heartbeat
                gone = await endpoint_gone(holder.liveness) if holder.liveness else None
                if gone is False:
                    raise in_use(c, holder, "its liveness endpoint answered")
                self._log.warning(
                    "member_id_held",
                    holder_pid=holder.pid,
                    holder_host=holder.host,
                    holder_incarnation=holder.incarnation,
                    proved_dead=bool(gone),
                    lease_left_ms=holder.lease_ms,
                    lead_left_ms=max(reply.lead_pttl_ms, -1),
                )
                if gone:
                    self.replace = holder.incarnation
                    return 0.0
            elif deadline > self._deadline_ms and holder.incarnation != self.replace:
                raise in_use(c, holder, "its lease was renewed while we waited")
        elif not self._give_up_at:
            self._give_up_at = now + 2 * max(reply.lead_pttl_ms, 0) / 1000 + 2 * c.heartbeat
        if now > self._give_up_at and holder is not None:
            raise in_use(c, holder, "it did not lapse within its lease")
        waits = [c.heartbeat / 2]
        if holder is not None and live and holder.incarnation != self.replace:
            waits.append(holder.lease_ms / 1000)
        if reply.lead_pttl_ms >= 0:
            waits.append(reply.lead_pttl_ms / 1000)
        return max(min(waits), 0.0) + 0.002  # a little past the deadline Redis said

    def took_over(self, log: Logger) -> None:
        """We registered: say from whom, if anyone held the id."""
        if self._tracked is not None or self.replace:
            log.info("member_id_taken_over", previous_incarnation=self._tracked, proved_dead=bool(self.replace))
