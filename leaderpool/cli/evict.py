"""``leaderpool-cli evict POOL MEMBER`` and the dashboard's evict button: remove a (stuck) member,
its lead if it has it, and its unique names, from a pool. A member that is still alive rejoins at
its next heartbeat, as the youngest member; a dead one is gone for good."""

from __future__ import annotations

from leaderpool.backend.pool_store import PoolStore
from leaderpool.console.args import Failure


async def evict(store: PoolStore, member: str) -> str:
    """Remove ``member`` (and its lead) from the pool; the lines to print, or :class:`Failure`.
    A coroutine, so that the dashboard awaits it on its asyncio client and the CLI runs it on a
    :class:`~leaderpool.console.oneshot.Blocking` one."""
    from leaderpool.names.registry import NameStore

    pool, names = store.keys.pool, NameStore(store.client, store.keys.prefix)
    # Read before the leave: a live member drops its own names at its first beat after the
    # eviction, which can come before our drop_owner below; they are freed all the same.
    held = {owner.name for owner in await names.read() if (owner.pool, owner.member) == (pool, member)}
    was_member, released, _ = await store.leave(member, "evicted", event="evicted")
    if not was_member and not released:
        raise Failure(f"{member} is not a member of pool {pool}")
    lead = f"; it led term {released}: the lead is free and the next member takes over" if released else ""
    freed = sorted(held | set(await names.drop_owner(pool, member)))  # no member, no names
    if freed:
        lead += f"; its names are free: {', '.join(freed)}"
    return (
        f"evicted {member} from pool {pool}{lead}\n"
        "(if that member is still alive, it rejoins at its next heartbeat as the youngest member)"
    )
