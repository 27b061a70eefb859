"""``leaderpool-cli forget POOL``: delete a pool whose members are gone.

The pool's keys come from :class:`~leaderpool.backend.keys.Keyspace` (never a pattern, which could match
another pool), and are checked and deleted in one script (:meth:`~leaderpool.backend.pool_store.PoolStore.forget`),
so a member that joins meanwhile is either seen (and the pool kept) or registers again afterwards at
its next heartbeat.
"""

from __future__ import annotations

from leaderpool.backend.keys import Keyspace
from leaderpool.backend.pool_store import PoolStore
from leaderpool.cli.status import no_such_pools, pool_keys
from leaderpool.console.args import Failure
from leaderpool.console.oneshot import Blocking, run


def forget(client: Blocking, keys: Keyspace, *, force: bool) -> str:
    """Delete the pool's keys; the line to print, or :class:`Failure`."""
    deleted, live, leader = run(PoolStore(client, keys).forget(pool_keys(keys), force=force))
    pool = keys.pool
    if deleted < 0:
        held = f"a leader and {live} live member(s)" if leader else f"{live} live member(s)"
        raise Failure(f"pool {pool} has {held}: stop them first, or forget --force")
    if deleted == 0:
        raise Failure(no_such_pools([pool], keys.prefix))
    alive = f" ({live} live member(s) register again at their next heartbeat)" if live else ""
    return f"forgot pool {pool}: deleted {deleted} key(s){alive}"
