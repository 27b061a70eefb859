"""Membership's seam: what rides on a member's heartbeat and leave (the names do) is the rider's
business; the election only knows the seam."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable
from typing import Any

import fakeredis

from leaderpool import MemberConfig
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.pool_store import PoolStore
from leaderpool.backend.protocol import Beat, LeaderValue, Left
from leaderpool.election.membership import Membership
from leaderpool.util.log import Logger, get_logger
from leaderpool.util.timeouts import within
from tests.support.worker_procs import ROOT, clean_env

LOG = get_logger("leaderpool.tests")


class Rider:
    """Rides on the pool's own scripts, and notes what it was asked."""

    def __init__(self, store: PoolStore) -> None:
        self.store = store
        self.holding = False
        self.heard: list[str] = []

    def riding(self) -> bool:
        return self.holding

    def beat(
        self,
        pool_keys: Keyspace,
        member: str,
        ttl_ms: int,
        held: LeaderValue | None,
        want_members: bool,
        seen_term: int,
        log: Logger,
        *,
        conn: str = "",
        watch: str = "",
        incarnation: str = "",
    ) -> Awaitable[Beat]:
        self.heard.append(f"beat {pool_keys.pool} {member}")
        return self.store.heartbeat(
            member, ttl_ms, held, want_members, seen_term, conn=conn, watch=watch, incarnation=incarnation
        )

    def leave(
        self, pool_keys: Keyspace, member: str, reason: str, *, successor: str, ttl_ms: int, incarnation: str = ""
    ) -> Awaitable[Left]:
        self.heard.append(f"leave {pool_keys.pool} {member} {reason}")
        return self.store.leave(member, reason, successor=successor, ttl_ms=ttl_ms, incarnation=incarnation)

    def joined(self) -> None:
        self.heard.append("joined")

    def rejoining(self) -> None:
        self.heard.append("rejoining")

    def stopped(self) -> None:
        self.heard.append("stopped")


async def unbounded(call: Awaitable[Any]) -> Any:
    return await call


def member(pool: str) -> tuple[Membership, Rider]:
    config = MemberConfig(pool=pool, member_id="a", ttl_s=3.0)
    store = PoolStore(fakeredis.FakeAsyncRedis(), Keyspace(pool))
    membership = Membership(config, store, clock=lambda: 1.0)
    return membership, Rider(store)


def run(coro: Any) -> Any:
    return asyncio.run(within(coro, 30))


def test_the_election_imports_nothing_of_the_names() -> None:
    """The names ride on the election through the seam: no election module imports them."""
    code = (
        "import pkgutil, importlib, sys\n"
        "import leaderpool.election as e\n"
        "for m in pkgutil.walk_packages(e.__path__, 'leaderpool.election.'): importlib.import_module(m.name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('leaderpool.names')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, env=clean_env()
    )
    assert 0 == done.returncode, done.stderr[-2000:]
    assert "[]" == done.stdout.strip()


def test_the_rider_beats_and_leaves_for_the_member_only_while_it_holds_something() -> None:
    """Riding: its beat and leave are the member's; not riding: the pool's own run."""

    async def main() -> None:
        membership, rider = member("ride")
        membership.ride(rider)
        await membership.join(unbounded, 0, LOG)
        await membership.beat(unbounded, None, False, 0, LOG)
        assert ["joined"] == rider.heard
        rider.holding = True
        _sent, beat = await membership.beat(unbounded, None, False, 0, LOG)
        assert 1 == beat.status
        left = await membership.leave("shutdown", "")
        assert left.was_member
        assert ["joined", "beat ride a", "leave ride a shutdown"] == rider.heard

    run(main())


def test_the_rider_hears_the_member_join_rejoin_and_stop() -> None:
    """A rider given after the join hears it at once; then the rejoin, the join, the stop."""

    async def main() -> None:
        membership, rider = member("hear")
        await membership.join(unbounded, 0, LOG)
        membership.ride(rider)
        await membership.rejoin(unbounded, 0, LOG, why="test", youngest=False)
        membership.stopped()
        assert ["joined", "rejoining", "joined", "stopped"] == rider.heard
        assert not membership.joined

    run(main())
