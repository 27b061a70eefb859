"""Leader state: one small, versioned JSON document per pool that survives the move.

A singleton that moves (its leader crashed, was stopped, resigned) should resume where it
stopped, as Swarm's hand-off promises; done safely here: the leader **saves** the state under its
term, and a save is accepted only while the pool's leader key holds exactly that term and member
(one script checks and writes, like a fenced write, but against the lead itself). So a stale
leader -- paused past its lease, cut off, already replaced -- cannot overwrite what its successor
saved; its save raises :class:`~leaderpool.errors.StaleTerm`. The next leader **reads** it when
elected (``AsyncElection(..., with_state=True)`` reads it before ``on_elected``; a worker task
gets it as ``ctx.state``).

    leaderpool:{POOL}:state   hash  version (1, 2, ... one per save), term, member, saved_at_ms
                                    (Redis clock), data (the JSON text)

The document is at most :data:`MAX_STATE_BYTES` of JSON; more raises
:class:`~leaderpool.errors.StateTooLarge` and saves nothing. Keep the state small (a cursor, a
checkpoint, counters): it is written in one command and read by every new leader.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from leaderpool.backend.baddata import report
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.protocol import LeaderValue, text
from leaderpool.backend.script_registry import Lua, ScriptHost, ScriptSet
from leaderpool.errors import StaleTerm, StateTooLarge

MAX_STATE_BYTES = 64 * 1024
"""The largest leader state accepted, as UTF-8 JSON."""

SAVE_STATE = """
-- save_state: KEYS[1] leader key, KEYS[2] state hash; ARGV[1] the leader value held
-- ("<term>|<member>"), ARGV[2] its term, ARGV[3] its member, ARGV[4] the state's JSON.
-- Saves only while the leader key holds ARGV[1] (the lead is this term's, not expired) and no
-- newer term saved (defence when Redis lost the leader key); the version grows by one per save.
-- Returns {1, version, now} when saved, {0, leader value or false, term of the stored state}.
local leader_key, state_key = KEYS[1], KEYS[2]
local held, term, member, data = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local leader = redis.call('GET', leader_key)
local stored = redis.call('HMGET', state_key, 'version', 'term')
local stored_term = tonumber(stored[2] or '0') or 0  -- garbage (not ours): as none
if leader ~= held or stored_term > term then return {0, leader, stored_term} end
local version = (tonumber(stored[1] or '0') or 0) + 1
redis.call('HSET', state_key, 'version', version, 'term', ARGV[2], 'member', member,
           'saved_at_ms', now, 'data', data)
return {1, version, now}
"""

STATE_FIELDS = ("version", "term", "member", "saved_at_ms", "data")
"""The state hash's fields, in the order :func:`parse_state` reads them (``HMGET``)."""


class StateScripts(ScriptSet):
    """The leader state's script."""

    save = Lua("save_state", SAVE_STATE, ("string", "hash"))


@dataclass(frozen=True)
class LeaderState:
    """A pool's leader state as last saved: ``data`` (the JSON value), ``version`` (1 for the
    first save, one more per save), and who saved it when (``term``, ``member``, ``saved_at_ms``
    on Redis's clock)."""

    data: Any
    version: int
    term: int
    member: str
    saved_at_ms: int

    @property
    def saved_at(self) -> float:
        """When it was saved, unix seconds (Redis's clock)."""
        return self.saved_at_ms / 1000


def encode_state(data: Any, *, pool: str | None = None, member: str | None = None, term: int | None = None) -> str:
    """``data`` as compact JSON, checked against :data:`MAX_STATE_BYTES`. Raises
    :class:`StateTooLarge`, or ``TypeError`` for what JSON cannot hold."""
    try:
        encoded = json.dumps(data, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the leader state must be JSON: {exc}") from None
    size = len(encoded.encode())
    if size > MAX_STATE_BYTES:
        raise StateTooLarge(
            f"the leader state is {size} bytes of JSON, at most {MAX_STATE_BYTES}: keep it small",
            size=size, limit=MAX_STATE_BYTES, pool=pool, member=member, term=term,
        )  # fmt: skip
    return encoded


def parse_state(values: list[Any]) -> LeaderState | None:
    """The reply of ``HMGET state version term member saved_at_ms data``; None when nothing was
    saved, and for a state leaderpool did not write (reported once: see :mod:`leaderpool.backend.baddata`)."""
    if not values or values[0] is None:
        return None
    version, term, member, saved_at_ms, data = values
    try:
        return LeaderState(
            json.loads(text(data)), int(text(version)), int(text(term)), text(member), int(text(saved_at_ms))
        )
    except (ValueError, TypeError, RecursionError) as exc:
        report("leader_state_skipped", text(member)[:100], problem=f"{type(exc).__name__}: {str(exc)[:100]}")
        return None


async def read_state(client: Any, keys: Keyspace) -> LeaderState | None:
    """The pool's leader state, or None if no leader ever saved one. ``client``: an asyncio
    redis-py client (or the CLI's one-shot adapter)."""
    return parse_state(list(await client.hmget(keys.state, list(STATE_FIELDS))))


async def save_state(client: ScriptHost, keys: Keyspace, held: LeaderValue, data: Any) -> LeaderState:
    """Save ``data`` as the pool's state under the lead ``held`` (its term and member).

    Raises :class:`StaleTerm` (``highest``: the term that leads now, or that saved last) when
    ``held`` no longer leads the pool, :class:`StateTooLarge` over the limit, and ``TypeError``
    for data JSON cannot hold; nothing is saved then."""
    encoded = encode_state(data, pool=keys.pool, member=held.member, term=held.term)
    reply = await StateScripts.on(client).save(
        keys=[keys.leader, keys.state], args=[held.encode(), held.term, held.member, encoded]
    )
    if int(reply[0]) == 1:
        return LeaderState(json.loads(encoded), int(reply[1]), held.term, held.member, int(reply[2]))
    leader = LeaderValue.parse(reply[1])
    stored_term = int(reply[2])
    now = f"term {leader.term} ({leader.member}) leads" if leader else "nobody leads"
    raise StaleTerm(
        f"term {held.term} no longer leads pool {keys.pool} ({now}): the leader state was not saved",
        highest=max(leader.term if leader else 0, stored_term), pool=keys.pool, member=held.member, term=held.term,
    )  # fmt: skip
