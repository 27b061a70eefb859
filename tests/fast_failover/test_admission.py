"""The liveness endpoint's admission bounds (:mod:`leaderpool.fast_failover.admission`), on a fake clock."""

from __future__ import annotations

import pytest

from leaderpool.fast_failover import admission
from leaderpool.fast_failover.admission import Admission
from leaderpool.util import descriptors


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_accepts_beyond_the_burst_wait_for_the_rate() -> None:
    clock = Clock()
    gate = Admission(burst=3, per_s=10.0, clock=clock)
    assert [True, True, True, False] == [gate.may_accept() for _ in range(4)]
    assert 0.1 == pytest.approx(gate.wait_s())
    clock.now += 0.1
    assert gate.may_accept()
    assert not gate.may_accept()


def test_connections_are_capped_per_peer_and_in_all() -> None:
    gate = Admission(per_peer=2, total=3)
    assert [None, None, "per_peer"] == [gate.admit("10.0.0.1", 5) for _ in range(3)]
    assert [None, "total"] == [gate.admit("10.0.0.2", 5) for _ in range(2)]
    gate.release("10.0.0.1")
    assert None is gate.admit("10.0.0.3", 5)
    assert (3, 2) == (gate.open, gate.refused)


def test_a_connection_near_the_open_files_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(descriptors, "soft_limit", lambda: 256)
    gate = Admission()
    assert "descriptors" == gate.admit("10.0.0.1", 256 - descriptors.RESERVE)
    assert None is gate.admit("10.0.0.1", 256 - descriptors.RESERVE - 1)
    assert admission.PER_PEER > 1


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
        descriptors.raise_limit()
        expected = hard if hard != resource.RLIM_INFINITY else min(soft, 256)
        assert expected == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
