"""``leaderpool-cli resign POOL``: ask the leader to hand over, and see the new leader act.

A hand-over is granted inside Redis; the successor learns of it from an announcement. A
successor that is frozen (SIGSTOP, a long GC pause, a swapped-out VM) holds the lead without
acting until its lease runs out. So ``resign`` waits twice, reading the pool with the core's
``observe`` script every :data:`POLL_S` (it only reads):

1. for the lead to change hands (at most ``--timeout``, default twice the lease);
2. for the new leader to *renew* its lease: the leader key's expiry moving later than the
   grant set it, which only the new leader's heartbeat does. It waits for that until the
   granted lease would end (plus :data:`CONFIRM_MARGIN_S`): a leader that has not renewed by
   then has lost the lead, and the next member takes it.

Outcomes, one line each: ``pool P: a (term 1) handed over to b (term 2) in 21 ms; b renewed the
lease 190 ms later (its first heartbeat as leader, due within one heartbeat interval: it acts)``
(exit 0; the second time is where b's heartbeat happened to be, 0 to one heartbeat), or, exit 1,
``... b has not renewed within 3.0 s: it may be frozen; the lead passes on when its lease ends``.
"""

from __future__ import annotations

import time

from leaderpool.backend.pool_store import LeaderValue, Observation, PoolStore
from leaderpool.console.args import Failure
from leaderpool.console.oneshot import run

POLL_S = 0.02
RENEWAL_SAYS = "its first heartbeat as leader, due within one heartbeat interval: it acts"
"""What the second wait waited for: the time to it is the successor's heartbeat phase, not a speed."""
CONFIRM_MARGIN_S = 0.2
RENEWED_SLACK_MS = 5
"""The leader key's expiry, read as Redis's clock plus its PTTL, wobbles by a millisecond or two
without any renewal; a renewal moves it by at least the time since the grant."""


def _expiry_ms(obs: Observation) -> int | None:
    return obs.now_ms + obs.leader_pttl_ms if obs.leader_pttl_ms >= 0 else None


def resign(store: PoolStore, timeout_s: float | None) -> str:
    """Hand the lead over and confirm the successor acts; the line to print, or :class:`Failure`."""
    pool = store.keys.pool
    found = run(store.leader_record())
    if found is None:
        raise Failure(f"pool {pool} has no leader: nothing to resign")
    before, pttl_ms, _info = found
    timeout = timeout_s if timeout_s is not None else max(2 * pttl_ms / 1000, 1.0) + 0.5
    started = time.monotonic()
    if run(store.request_resign()) == 0:
        raise Failure(f"nobody is listening on pool {pool}: its leader {before.member} cannot be asked to resign")
    now: LeaderValue | None = None
    obs: Observation | None = None
    while time.monotonic() - started < timeout:
        obs = run(store.observe(prune=False))
        now = obs.leader
        if now is not None and now != before:
            break
        time.sleep(POLL_S)
    handed_at = time.monotonic()
    if obs is None or now is None or now == before:
        state = "the lead is vacant" if now is None else f"{before.member} still leads term {before.term}"
        raise Failure(f"pool {pool}: no hand-over within {timeout:g}s ({state})")
    if now.member == before.member:
        raise Failure(
            f"pool {pool}: {before.member} resigned but was elected again (term {now.term}): no other member could lead"
        )
    head = (
        f"pool {pool}: {before.member} (term {before.term}) handed over to {now.member} (term {now.term}) "
        f"in {(handed_at - started) * 1000:.0f} ms"
    )
    return head + "; " + _confirm(store, now, obs, handed_at, head)


def _confirm(store: PoolStore, leader: LeaderValue, first: Observation, since: float, head: str) -> str:
    """Wait for ``leader`` to renew the lease it was granted (seen in ``first``): until that lease
    ends on Redis's clock (with a bound on ours too, should Redis stop answering in time)."""
    granted_expiry = _expiry_ms(first)
    if granted_expiry is None:  # a lead without expiry: nothing to renew, nothing to wait for
        return f"{leader.member} leads (its lease has no expiry)"
    lease_s = max(first.leader_pttl_ms, 0) / 1000
    deadline = since + lease_s + CONFIRM_MARGIN_S
    obs = first
    while True:
        expiry = _expiry_ms(obs)
        if obs.leader == leader and expiry is not None and expiry > granted_expiry + RENEWED_SLACK_MS:
            took = (time.monotonic() - since) * 1000
            return f"{leader.member} renewed the lease {took:.0f} ms later ({RENEWAL_SAYS})"
        if obs.now_ms >= granted_expiry or time.monotonic() >= deadline:
            raise Failure(
                f"{head}, but {leader.member} has not renewed within {lease_s:.1f} s: it may be frozen; "
                "the lead passes on when its lease ends"
            )
        if obs.leader != leader:
            what = "the lead is vacant" if obs.leader is None else f"{obs.leader.member} leads term {obs.leader.term}"
            raise Failure(f"{head}, but {leader.member} lost the lead before it renewed: {what}")
        time.sleep(POLL_S)
        obs = run(store.observe(prune=False))
