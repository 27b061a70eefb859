"""What the election's retries log (issue 24): no field that says nothing, and a Sentinel failure
in one short line rather than redis-py's repr of every Sentinel client."""

from __future__ import annotations

import redis.exceptions
import structlog

from leaderpool.election.retry import Retries
from leaderpool.util.log import get_logger

SENTINEL_FAILURE = (
    "No master found for 'mymaster' : <redis.client.Redis(<redis.connection.ConnectionPool(<redis.connection"
    ".Connection(db=0,username=<REDACTED>," + "x=1," * 200 + ")>)>)> - network:ConnectionError: Error 111 "
    "connecting to 127.0.0.1:1. Connection refused."
)


def test_redis_unavailable_carries_no_none_fields() -> None:
    """No ``hint=None`` or ``suppressed=None``: a field is there when it says something."""
    log = get_logger("leaderpool", pool="p", member="m")
    with structlog.testing.capture_logs() as logs:
        Retries(1.0).failed(redis.exceptions.ConnectionError("refused"), log, renew_left_s=None)
    (event,) = [e for e in logs if e["event"] == "redis_unavailable"]
    assert [] == [key for key, value in event.items() if value is None]
    assert "hint" not in event
    # the count of lines held back rides along only when there is one (the process-wide throttle
    # may hold some back after earlier tests in this process)
    assert event.get("suppressed", 1) > 0


def test_a_sentinel_failure_is_logged_in_one_short_line() -> None:
    """The error field names the master and the last Sentinel's error, not the clients' reprs."""
    log = get_logger("leaderpool", pool="p", member="m")
    with structlog.testing.capture_logs() as logs:
        Retries(1.0).failed(redis.exceptions.ConnectionError(SENTINEL_FAILURE), log, renew_left_s=None)
    (event,) = [e for e in logs if e["event"] == "redis_unavailable"]
    assert (
        "No master found for 'mymaster': no Sentinel answered (ConnectionError: Error 111 connecting to "
        "127.0.0.1:1. Connection refused.)"
    ) == event["error"]
