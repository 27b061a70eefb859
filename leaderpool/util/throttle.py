"""How often a process says the same warning: a few a second at most, then a count.

Under overload every member of a process reports the same trouble at once (thousands of late
heartbeats, thousands of timed-out calls): writing each of those lines was a large share of the
work that kept the process behind (issue 13). One per event name passes per burst; the rest are
counted and the count rides on the next line that passes (``suppressed``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

BURST = 10
"""Lines of one event a process writes at once before throttling starts."""

PER_S = 2.0
"""Lines of one event a process writes per second once throttled."""


class Throttle:
    """A token bucket for one event name, process-wide."""

    def __init__(
        self, *, burst: int = BURST, per_s: float = PER_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._burst, self._per_s, self._clock = burst, per_s, clock
        self._tokens = float(burst)
        self._at = clock()
        self.suppressed = 0

    def allow(self) -> int | None:
        """None: stay quiet (counted); else how many were suppressed since the last line passed."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._per_s)
        self._at = now
        if self._tokens < 1:
            self.suppressed += 1
            return None
        self._tokens -= 1
        suppressed, self.suppressed = self.suppressed, 0
        return suppressed


_throttles: dict[str, Throttle] = {}


def allow(event: str) -> int | None:
    """:meth:`Throttle.allow` for ``event``'s process-wide bucket."""
    throttle = _throttles.get(event)
    if throttle is None:
        throttle = _throttles[event] = Throttle()
    return throttle.allow()
