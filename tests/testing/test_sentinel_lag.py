"""The chaos suite's Sentinel scenario on real processes: a failover to a replica that missed the
last hand-over. Without ``--wait-replicas`` the lead the replica never had is acted on (the
documented window; terms still fence it, and here it ended before the promotion, so no overlap);
with ``--wait-replicas 1`` it is held, never acted on: the window is closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from leaderpool.testing.chaos import sentinel_lag
from tests.conftest import REDIS_BINARIES


@pytest.mark.timeout(180)
def test_wait_replicas_closes_the_window_of_a_failover_to_a_lagging_replica(tmp_path: Path) -> None:
    binary = REDIS_BINARIES[0][0]
    without, with_wait = (
        sentinel_lag.run_lag(w, ttl_s=1.0, workdir=tmp_path, redis_binary=binary, settle_s=3.0, say=lambda _: None)
        for w in (0, 1)
    )
    text = sentinel_lag.table([without, with_wait])
    print(text)
    assert without.unreplicated_term is not None and without.unreplicated_acts > 0, text  # the window
    assert with_wait.unreplicated_term is not None and 0 == with_wait.unreplicated_acts, text  # closed
    assert all(sentinel_lag.safe(o) for o in (without, with_wait)), text
    assert without.acted_after_failover_s is not None, text  # the pool carries on after the failover
