"""The library draws its random spreads from a generator of its own: an election run leaves the
application's ``random`` state as it was (an application seeding ``random`` keeps its sequence,
and hypothesis, which fails a test when something else moved it, is left alone)."""

from __future__ import annotations

import asyncio
import random

import fakeredis

from leaderpool.util.jitter import spread
from leaderpool.util.timeouts import within
from tests.support.helpers import Recorder, eventually, leaders, start_all, stop_all


def test_spread_stays_within_its_bounds() -> None:
    assert all(0.5 <= spread(0.5, 1.0) <= 1.0 for _ in range(1000))


def test_an_election_leaves_the_applications_random_state_alone(fake_server: fakeredis.FakeServer) -> None:
    async def main() -> None:
        rec = Recorder()
        members = [
            rec.election("r", f"m{i}", fakeredis.FakeAsyncRedis(server=fake_server), ttl_s=0.6) for i in range(3)
        ]
        await start_all(members)
        await eventually(lambda: len(leaders(members)) == 1 and all(m.leader for m in members))
        await asyncio.sleep(0.5)  # beats, each spread from the generator
        await stop_all(members)

    before = random.getstate()
    asyncio.run(within(main(), 60))
    assert before == random.getstate()
