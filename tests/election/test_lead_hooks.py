"""The lead hooks (:mod:`leaderpool.election.lead_hooks`): the one way work hears a lead start and
end. At-once hooks run beside the application's callback, in-turn hooks one after another (before
``on_elected``, after ``on_revoked``), a kind hand-over waits for them, and a failing hook is logged
without stopping the others."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import structlog
from structlog.testing import capture_logs

from leaderpool import AsyncElection, MemberConfig, RevokeReason
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.protocol import LeaderValue
from leaderpool.election.lead_hooks import LeadHook, LeadHooks
from leaderpool.util.log import get_logger
from leaderpool.util.timeouts import within


@pytest.fixture(autouse=True)
def _structlog_left_unconfigured() -> Iterator[None]:
    """capture_logs() leaves structlog marked as configured (see test_election_unit.py)."""
    yield
    structlog.reset_defaults()


def run(coro: Any) -> Any:
    return asyncio.run(within(coro, 30))


def hooks() -> LeadHooks:
    return LeadHooks(get_logger("leaderpool", pool="p", member="m"))


class TestOrder:
    def test_a_lead_start_runs_at_once_hooks_now_and_in_turn_hooks_in_order_before_elected(self) -> None:
        """lead_started begins the at-once hooks; before_elected awaits the in-turn ones in the
        order they were added, each to its end before the next."""

        async def main() -> None:
            seen: list[str] = []

            async def slow(term: int) -> None:
                seen.append(f"slow-begins-{term}")
                await asyncio.sleep(0.01)
                seen.append(f"slow-ends-{term}")

            h = hooks()
            h.add(LeadHook(on_lead_started=slow))
            h.add(LeadHook(on_lead_started=lambda term: seen.append(f"second-{term}")))
            h.add(LeadHook(on_lead_started=lambda term: seen.append(f"at-once-{term}")), at_once=True)
            assert h.waits_before_elected
            h.lead_started(3)
            assert ["at-once-3"] == seen
            await h.before_elected(3)
            assert ["at-once-3", "slow-begins-3", "slow-ends-3", "second-3"] == seen

        run(main())

    def test_a_lead_end_runs_at_once_hooks_beside_on_revoked_then_in_turn_hooks_in_order(self) -> None:
        """The at-once hooks begin with on_revoked; the in-turn hooks wait for both, then run
        one after another with the term and the reason."""

        async def main() -> None:
            seen: list[str] = []
            on_revoked_done = asyncio.get_running_loop().create_future()

            async def consumer_stop(term: int, reason: RevokeReason) -> None:
                seen.append("at-once-begins")
                await asyncio.sleep(0.01)
                seen.append("at-once-ends")

            async def first(term: int, reason: RevokeReason) -> None:
                await asyncio.sleep(0.01)
                seen.append(f"first-{term}-{reason.value}")

            h = hooks()
            h.add(LeadHook(on_lead_ended=first))
            h.add(LeadHook(on_lead_ended=lambda term, reason: seen.append(f"second-{term}")))
            h.add(LeadHook(on_lead_ended=consumer_stop), at_once=True)
            ended = asyncio.ensure_future(h.lead_ended(4, RevokeReason.RESIGNED, on_revoked_done))
            await asyncio.sleep(0.05)
            assert ["at-once-begins", "at-once-ends"] == seen  # the in-turn hooks wait for on_revoked
            on_revoked_done.set_result(None)
            await ended
            assert ["at-once-begins", "at-once-ends", "first-4-resigned", "second-4"] == seen

        run(main())

    def test_with_no_hook_for_the_end_the_hand_over_waits_for_on_revoked_alone(self) -> None:
        """lead_ended hands back on_revoked's acknowledgement itself when no hook hears the end."""

        async def main() -> None:
            h = hooks()
            h.add(LeadHook(on_lead_started=lambda term: None))
            acknowledged = asyncio.get_running_loop().create_future()
            assert acknowledged is h.lead_ended(1, RevokeReason.SHUTDOWN, acknowledged)

        run(main())

    def test_a_removed_hook_runs_no_more(self) -> None:
        """add() returns the hook's removal; removing twice is harmless."""

        async def main() -> None:
            seen: list[int] = []
            h = hooks()
            remove = h.add(LeadHook(on_lead_started=seen.append))
            await h.before_elected(1)
            remove()
            remove()
            assert not h.waits_before_elected
            await h.before_elected(2)
            assert [1] == seen

        run(main())


class TestFailures:
    def test_a_failing_hook_is_logged_with_its_term_and_the_others_still_run(self) -> None:
        """A lead-ended hook that raises (at once or in turn, plainly or from a coroutine) is logged
        with pool, member and term; the hooks after it run, and the hand-over is not failed by it. A
        lead-started hook that raises stops the start: the hooks after it (and on_elected) do not run."""

        async def main() -> None:
            seen: list[int | str] = []

            def fails_at_once(term: int, reason: RevokeReason) -> None:
                raise RuntimeError("at once")

            async def fails_in_turn(term: int, reason: RevokeReason) -> None:
                raise RuntimeError("in turn")

            def fails_to_start(term: int) -> None:
                raise RuntimeError("start")

            h = hooks()
            h.add(LeadHook(on_lead_started=fails_to_start, on_lead_ended=fails_in_turn))
            h.add(LeadHook(on_lead_started=seen.append, on_lead_ended=lambda term, reason: seen.append("ended")))
            h.add(LeadHook(on_lead_ended=fails_at_once), at_once=True)
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            with capture_logs() as logs:
                with pytest.raises(RuntimeError, match="start"):
                    await h.before_elected(7)  # what on_elected starts from failed: it must not run
                await h.lead_ended(7, RevokeReason.TAKEOVER, done)
            assert ["ended"] == seen
            failures = [(e["event"], e["pool"], e["member"], e["term"]) for e in logs if e["log_level"] == "error"]
            assert [
                ("revoked_hook_failed", "p", "m", 7),
                ("revoked_hook_failed", "p", "m", 7),
            ] == failures

        run(main())


class TestOnAnElection:
    def test_a_kind_hand_over_waits_for_the_lead_ended_hooks_before_it_releases_the_lead(
        self, fake_server: fakeredis.FakeServer
    ) -> None:
        """While an in-turn lead-ended hook runs on stop(), the pool's leader key still holds the
        lead; the hook hears the term that ended and the reason."""

        async def main() -> None:
            client = fakeredis.FakeAsyncRedis(server=fake_server)
            e = AsyncElection(MemberConfig(pool="p", member_id="a", ttl_s=2.0), client)
            held: list[tuple[int, RevokeReason, LeaderValue | None]] = []

            async def ended(term: int, reason: RevokeReason) -> None:
                await asyncio.sleep(0.05)
                held.append((term, reason, LeaderValue.parse(await client.get(Keyspace("p").leader))))

            e.lead_hooks.add(LeadHook(on_lead_ended=ended))
            await e.start()
            term = await e.wait_until_leader(5)
            await e.stop()
            assert [(term, RevokeReason.SHUTDOWN, LeaderValue(term, "a"))] == held
            assert await client.get(Keyspace("p").leader) is None

        run(main())

    def test_add_revoked_hook_is_a_lead_ended_hook(self, fake_server: fakeredis.FakeServer) -> None:
        """The older add_revoked_hook registers an in-turn lead-ended hook, and removes it."""

        async def main() -> None:
            e = AsyncElection(MemberConfig(pool="p", member_id="a"), fakeredis.FakeAsyncRedis(server=fake_server))
            seen: list[int] = []

            async def hook(term: int, reason: RevokeReason) -> None:
                seen.append(term)

            remove = e.add_revoked_hook(hook)
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            await e.lead_hooks.lead_ended(2, RevokeReason.RESIGNED, done)
            remove()
            await e.lead_hooks.lead_ended(3, RevokeReason.RESIGNED, done)
            assert [2] == seen

        run(main())
