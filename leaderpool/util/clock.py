"""The one seam through which the election (and a leader's schedules) read time: :class:`Clock`.

The election core reads "now" (monotonic seconds) and sleeps until its next deadline through
the clock it is given, and through nothing else. Production runs on :data:`SYSTEM_CLOCK`
(``time.monotonic`` and the event loop's own timers, as before the seam: the core binds
``clock.now`` once, so a read costs what ``time.monotonic()`` costs). The test kit
(:mod:`leaderpool.testkit`) gives each member a clock of its own that a test moves by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from leaderpool.util.alarm import Alarm
from leaderpool.util.constants import SPIN_LEAD_S
from leaderpool.util.timeouts import within


class Clock:
    """Monotonic seconds (:attr:`now`), unix seconds (:attr:`wall`), and the alarms the election
    and a leader's schedules sleep on."""

    spin_lead_s: float = SPIN_LEAD_S
    """How long before a leader's lease ends its successor stops sleeping and spins on the
    clock (a clock moved by hand never moves during a spin: 0 there)."""

    def __init__(self, now: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.now = now
        self.wall = wall

    def alarm(self) -> Alarm:
        """A new alarm measured on this clock (one per sleeping loop)."""
        return Alarm(self.now)

    async def wait_for(self, event: asyncio.Event, timeout_s: float) -> None:
        """Wait until ``event`` is set or ``timeout_s`` seconds of this clock have passed (the
        event's own ``wait``, not a subclass's); no error on a timeout."""
        with contextlib.suppress(TimeoutError):
            await within(asyncio.Event.wait(event), timeout_s)


SYSTEM_CLOCK = Clock()
"""``time.monotonic`` and the event loop's timers: what every member runs on in production."""


def as_clock(clock: Clock | Callable[[], float]) -> Clock:
    """A :class:`Clock`, from a clock or a bare function of monotonic seconds (unit tests pass one)."""
    return clock if isinstance(clock, Clock) else Clock(clock)
