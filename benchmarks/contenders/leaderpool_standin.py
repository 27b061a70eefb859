"""A stand-in for ``python -m leaderpool.worker --json-events``, built on the library directly
(``AsyncElection``), for when the worker is not installed: same flags, same JSON lines.
SIGTERM: ``stop()``, which tells ``on_revoked`` first and then releases and leaves in one step."""

from __future__ import annotations

import asyncio
import signal

from benchmarks.contenders.common import Emitter, parse_args
from leaderpool import AsyncElection, LeaderInfo, MemberConfig, RevokeReason
from leaderpool.keys import Keyspace
from leaderpool.logs import configure_logging


def leader_key(pool: str) -> str:
    return Keyspace(pool).leader


async def run(url: str, pool: str, member: str, ttl: float) -> None:
    emit = Emitter(pool, member)
    term: int | None = None

    def on_elected(new_term: int) -> None:
        nonlocal term
        term = new_term
        emit.elected(new_term)

    def on_revoked(reason: RevokeReason) -> None:
        emit.revoked(reason.value, term)

    def on_leader_changed(leader: LeaderInfo | None) -> None:
        emit.emit("leader", member=leader.member if leader else None, term=leader.term if leader else None)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    election = AsyncElection(
        MemberConfig(pool=pool, member_id=member, ttl_s=ttl),
        url,
        on_elected=on_elected,
        on_revoked=on_revoked,
        on_leader_changed=on_leader_changed,
    )
    await election.start()
    try:
        await stop.wait()
    finally:
        await election.stop()


def main() -> int:
    args = parse_args(__doc__ or "")
    configure_logging(fmt="json", level="warning")
    asyncio.run(run(args.redis, args.pool, args.member_id, args.ttl))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
