"""``leaderpool-cli forget POOL``: delete a pool whose members are gone.

The pool's keys come from :class:`~leaderpool.backend.keys.Keyspace` (never a pattern, which could match
another pool), and are checked and deleted in one script, so a member that joins meanwhile is
either seen (and the pool kept) or registers again afterwards at its next heartbeat.
"""

from __future__ import annotations

from leaderpool.backend.keys import Keyspace
from leaderpool.cli.status import pool_keys
from leaderpool.console.args import Failure
from leaderpool.console.oneshot import Blocking, run

FORGET = """
-- forget: KEYS[1] leader key, KEYS[2] leases zset, KEYS[3..] every other key of the pool;
-- ARGV[1] "1" to delete even with a leader or live members.
-- Returns {deleted keys (-1: refused), live members, leader value or false}.
local leader_key, leases_key = KEYS[1], KEYS[2]
local force = ARGV[1] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = redis.call('ZCOUNT', leases_key, '(' .. now, '+inf')
local leader = redis.call('GET', leader_key)
if (live > 0 or leader) and not force then return {-1, live, leader} end
return {redis.call('DEL', unpack(KEYS)), live, leader}
"""


def forget(client: Blocking, keys: Keyspace, *, force: bool) -> str:
    """Delete the pool's keys; the line to print, or :class:`Failure`."""
    every = pool_keys(keys)
    ordered = [keys.leader, keys.leases, *(k for k in every if k not in (keys.leader, keys.leases))]
    deleted, live, leader = run(client.register_script(FORGET)(keys=ordered, args=["1" if force else "0"]))
    deleted, live = int(deleted), int(live)
    pool = keys.pool
    if deleted < 0:
        held = f"a leader and {live} live member(s)" if leader else f"{live} live member(s)"
        raise Failure(f"pool {pool} has {held}: stop them first, or forget --force")
    if deleted == 0:
        raise Failure(f"no pool named {pool} (prefix {keys.prefix}): nothing to forget")
    alive = f" ({live} live member(s) register again at their next heartbeat)" if live else ""
    return f"forgot pool {pool}: deleted {deleted} key(s){alive}"
