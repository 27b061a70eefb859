"""How the election loop retries failed Redis calls: how long to wait, and what to log.

An outage is retried fast at first, then at most a heartbeat apart, and logged as a warning on
the 1st, 10th and every 100th failure in a row. An authentication or authorisation failure is
a configuration error: logged at error level once per distinct error, retried a heartbeat apart.
(A failing script is not retried at all: the loop surfaces it.)
"""

from __future__ import annotations

from leaderpool.backend.baddata import report
from leaderpool.backend.redis_errors import Failure, auth_failure_code, classify, short_reason
from leaderpool.election.succession import retry_delay
from leaderpool.util import throttle
from leaderpool.util.constants import BACKOFF_JITTER, LOG_FAILURE_AT, LOG_FAILURE_EVERY
from leaderpool.util.jitter import spread
from leaderpool.util.log import Logger

_EVENTS = {
    Failure.TIMEOUT: ("redis_call_timed_out", "Redis, the network or this process's event loop is slow"),
    Failure.UNAVAILABLE: ("redis_unavailable", None),
}


class Retries:
    """Failures in a row, since the last call that succeeded."""

    def __init__(self, heartbeat_s: float) -> None:
        self._heartbeat = heartbeat_s
        self.failures = 0
        self._auth_errors: set[str] = set()
        self.last_error: str | None = None  # what the last failed call said, for a wait that times out

    def succeeded(self, log: Logger) -> None:
        if self.failures:
            log.info("redis_reachable_again", failures=self.failures)
        self.failures = 0
        self._auth_errors.clear()
        self.last_error = None

    def failed(self, exc: BaseException, log: Logger, *, renew_left_s: float | None) -> float:
        """Count and log one failure; returns how long to wait before the next try. A leader
        passes what is left of its renew deadline (it retries faster)."""
        self.failures += 1
        error = short_reason(exc)
        self.last_error = f"{type(exc).__name__}: {error}" if str(exc) else error
        kind = classify(exc)
        if kind is Failure.DATA:  # a broken pool key: retrying fast fixes nothing; said once per process
            subject = getattr(exc, "problem", "") or error  # the data's problem, whichever script met it
            report("bad_pool_data", subject, retry_s=self._heartbeat, hint="leaderpool-cli doctor names it")
            return self._heartbeat
        if kind is Failure.AUTH:  # a configuration error: retrying fast fixes nothing
            if error not in self._auth_errors:
                self._auth_errors.add(error)
                code = auth_failure_code(exc)
                check = "the user's ACL permissions" if code == "NOPERM" else "the username and password"
                log.error("redis_auth_failed", code=code, error=error, retry_s=self._heartbeat, hint=f"check {check}")
            return self._heartbeat
        delay = retry_delay(self.failures, heartbeat_s=self._heartbeat, renew_left_s=renew_left_s)
        if kind is Failure.TIMEOUT and renew_left_s is None:
            # a follower's call timed out: Redis or this process is overloaded, and retrying
            # sooner only adds to it; its lease outlasts a heartbeat or two without a beat
            delay = self._heartbeat
        delay *= spread(BACKOFF_JITTER, 1.0)  # no synchronized retry storm
        often = self.failures in LOG_FAILURE_AT or self.failures % LOG_FAILURE_EVERY == 0
        event, hint = _EVENTS.get(kind, ("redis_call_failed", None))
        fields: dict[str, object] = {"error": error, "failures": self.failures, "retry_s": round(delay, 3)}
        if hint is not None:  # a field that says nothing is left out (no "hint=None" in the line)
            fields["hint"] = hint
        if not often:
            log.debug(event, **fields)
        elif (suppressed := throttle.allow(event)) is not None:  # thousands of members fail at once
            log.warning(event, **fields, **({"suppressed": suppressed} if suppressed else {}))
        return delay
