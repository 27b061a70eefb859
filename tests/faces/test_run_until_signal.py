"""``run_until_signal()``: a library application stopped by SIGTERM hands its lead over kindly
(on_revoked runs, the next member leads at once), on both faces; real processes, a real redis-server."""

from __future__ import annotations

import signal
import threading

import pytest

from leaderpool import Election, LeaderpoolError, MemberConfig
from leaderpool.events import Role
from leaderpool.testing.redis_server import RedisServer
from tests.support.processes import member_processes, overlaps

LEASE = 30.0  # far longer than any wait below: the next member leads by hand-over, not expiry


@pytest.mark.parametrize("face", ["blocking", "asyncio"])
def test_sigterm_hands_the_lead_over(redis_one: RedisServer, face: str) -> None:
    """SIGTERM to a leader in run_until_signal: on_revoked ran (shutdown), b leads long before
    a's lease could end, and a exits 0 saying which signal stopped it."""
    with member_processes() as start:
        a = start(redis_one.url, "sig", "a", ttl=LEASE, until_signal=face)
        term = a.wait_event("elected")["term"]
        b = start(redis_one.url, "sig", "b", ttl=LEASE)
        b.wait_event("leader")
        a.signal(signal.SIGTERM)
        elected = b.wait_event("elected", timeout=15)  # well inside a's 30 s lease: a hand-over
        assert elected["term"] == term + 1
        assert 0 == a.popen.wait(15)
        assert ["shutdown"] == [e["reason"] for e in a.of("revoked")]
        assert [signal.SIGTERM] == [e["signal"] for e in a.of("stopped")]
        assert 0 == overlaps([a, b])


def test_the_blocking_face_needs_the_main_thread() -> None:
    """Python runs signal handlers in the main thread only: elsewhere, one clear error, nothing started."""
    election = Election(MemberConfig(pool="sig", member_id="t"), "redis://127.0.0.1:1/0")
    errors: list[BaseException] = []

    def call() -> None:
        try:
            election.run_until_signal()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(10)
    assert 1 == len(errors) and isinstance(errors[0], LeaderpoolError)
    assert "main thread" in str(errors[0]) and election.role is Role.STOPPED
