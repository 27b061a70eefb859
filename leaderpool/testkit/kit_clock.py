"""The kit's clock: one time for every member of a test's pool, moved by hand.

:class:`KitClock` is the time a test's pool runs on. On fakeredis it is virtual: it stands still
until :meth:`KitClock.advance`, which walks it from one member's deadline to the next, letting the
members do what falls due at each (a heartbeat, a lease end, a renew deadline) before it moves on,
so a failover a lease long takes milliseconds of wall time and happens the same way every run.
Against a real redis-server (whose clock nobody can move) it is the real monotonic clock and
advancing sleeps.

Each member reads it through a :class:`MemberClock` of its own (the election's seam,
:class:`leaderpool.util.clock.Clock`): its alarm sleeps on the kit's timers, and the member can be
frozen (a GC pause: it stops turning at its next sleep, while the time, and its lease, run on).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable

from leaderpool.util.alarm import Alarm
from leaderpool.util.clock import Clock

REAL_STEP_S = 0.05
"""Against a real server, how often :meth:`KitClock.advance` looks in on the members while it waits."""

SETTLE_TURNS = 3
"""Loop turns with every member asleep before the pool counts as settled."""


class KitClock:
    """The pool's time: virtual (moved only by :meth:`advance`) or the real monotonic clock."""

    def __init__(self, *, virtual: bool = True, wall_start: float | None = None) -> None:
        self.virtual = virtual
        self._t = 1000.0 if virtual else time.monotonic()
        self._t0 = self._t
        # today's midnight (UTC): schedules' slots, which fall on whole minutes, hours and days of the
        # wall clock, come at the same instants of the kit's clock in every run
        self._wall0 = time.time() // 86400 * 86400 if wall_start is None else wall_start
        self._alarms: weakref.WeakSet[KitAlarm] = weakref.WeakSet()
        self._busy: list[Callable[[], bool]] = []
        self._after_step: list[Callable[[], None]] = []

    def now(self) -> float:
        """Monotonic seconds, as every member reads them."""
        return self._t if self.virtual else time.monotonic()

    def wall(self) -> float:
        """Unix time that moves with :meth:`now` (what a fakeredis server reads as its clock); a
        virtual clock starts at midnight UTC."""
        return self._wall0 + (self._t - self._t0) if self.virtual else time.time()

    def elapsed(self) -> float:
        """Seconds since the kit's clock started (the ``t`` of a pool's history)."""
        return self.now() - self._t0

    def member_clock(self) -> MemberClock:
        return MemberClock(self)

    def track(self, alarm: KitAlarm) -> None:
        self._alarms.add(alarm)

    def after_each_step(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` each time the members have settled at a step of :meth:`advance`."""
        self._after_step.append(hook)

    def add_busy(self, busy: Callable[[], bool]) -> None:
        """Count the pool as unsettled while ``busy()`` (callbacks still running, say)."""
        self._busy.append(busy)

    @property
    def settled(self) -> bool:
        """Every member's loop asleep (or frozen), none with a ring on its way, nothing busy."""
        return all(a.idle for a in list(self._alarms)) and not any(busy() for busy in self._busy)

    def next_deadline(self) -> float | None:
        """The earliest instant a sleeping member wants to wake at."""
        due = [d for a in list(self._alarms) if (d := a.deadline) is not None]
        return min(due, default=None)

    async def settle(self, timeout_s: float = 5.0, *, confirm_s: float = 0.001) -> None:
        """Let the members react to what just happened, until every loop sleeps again and the
        event loop has nothing ready to run, confirmed after ``confirm_s`` of wall time (for what
        travels through a socket: a liveness endpoint closing, a real server's reply). Bounded."""
        loop = asyncio.get_running_loop()
        give_up, quiet = loop.time() + timeout_s, 0
        confirm = confirm_s if self.virtual else max(confirm_s, 0.001)
        while loop.time() < give_up:
            await asyncio.sleep(confirm if quiet == SETTLE_TURNS else 0)
            if not (self.settled and _nothing_ready(loop)):
                quiet = 0
            elif quiet > SETTLE_TURNS:
                return
            else:
                quiet += 1

    async def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` on, stopping at each deadline on the way to let the members act."""
        if seconds < 0:
            raise ValueError(f"advance() needs seconds >= 0, got {seconds}")
        if not self.virtual:  # a real server's clock runs on its own: wait, looking in now and then
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0:
                await asyncio.sleep(min(left, REAL_STEP_S))
                for hook in self._after_step:
                    hook()
            await self.settle()
            return
        target = self._t + seconds
        await self.settle()
        for _ in range(1_000_000):  # bounded: each step is a deadline some member slept until
            due = self.next_deadline()
            if due is None or due > target:
                break
            self._t = max(self._t, due)
            for alarm in list(self._alarms):
                alarm.wake_if_due(self._t)
            await self.settle(confirm_s=0)
            for hook in self._after_step:
                hook()
        self._t = target
        for alarm in list(self._alarms):
            alarm.wake_if_due(self._t)
        await self.settle()

    async def run_until(self, done: Callable[[], bool], *, limit_s: float) -> bool:
        """Advance deadline by deadline until ``done()`` (checked after each settles), at most
        ``limit_s`` of the clock; whether it became true."""
        await self.settle()
        end = self.now() + limit_s
        while not done():
            if not self.virtual:
                if self.now() >= end:
                    return False
                await self.advance(0.01)
                continue
            due = self.next_deadline()
            if due is None or due > end:
                return done()
            await self.advance(max(due - self._t, 0.0))
        return True


def _nothing_ready(loop: asyncio.AbstractEventLoop) -> bool:
    """No callback waits to run on ``loop`` (asyncio's own loops keep them in ``_ready``)."""
    ready = getattr(loop, "_ready", None)
    return ready is None or len(ready) == 0


class MemberClock(Clock):
    """One member's view of the kit's clock: the election's seam, with a freeze switch."""

    def __init__(self, kit: KitClock) -> None:
        super().__init__(kit.now, kit.wall)
        self.kit = kit
        self.spin_lead_s = 0.0 if kit.virtual else self.spin_lead_s
        self._thawed: asyncio.Event | None = None  # set: running; clear: frozen
        self.frozen = False
        self.retired = False  # its member was killed or stopped: its loop sleeps no more
        self._alarms: weakref.WeakSet[KitAlarm] = weakref.WeakSet()

    def alarm(self) -> Alarm:
        alarm = KitAlarm(self)
        self.kit.track(alarm)
        self._alarms.add(alarm)
        return alarm

    async def wait_for(self, event: asyncio.Event, timeout_s: float) -> None:
        """As the system clock's, on the kit's clock (a worker's task sleeping on its context)."""
        alarm = self.alarm()
        waiter = asyncio.ensure_future(asyncio.Event.wait(event))
        waiter.add_done_callback(lambda _: alarm.ring())
        try:
            await alarm.sleep_until(self.now() + timeout_s)
        finally:
            waiter.cancel()
            alarm.close()

    def freeze(self) -> None:
        """Stop the member at its next sleep (on the members' loop)."""
        self.frozen = True
        self._gate().clear()

    def thaw(self) -> None:
        self.frozen = False
        self._gate().set()

    def _gate(self) -> asyncio.Event:
        if self._thawed is None:
            self._thawed = asyncio.Event()
            self._thawed.set()
        return self._thawed

    async def wait_thawed(self) -> None:
        gate = self._gate()
        if not gate.is_set():
            await gate.wait()


class KitAlarm(Alarm):
    """An alarm on the kit's clock: a virtual sleep is woken by :meth:`KitClock.advance`, a real
    one by the loop's timer; either way a frozen member stays asleep until thawed."""

    def __init__(self, owner: MemberClock) -> None:
        super().__init__(owner.now)
        self._owner = owner
        self.deadline: float | None = None  # while asleep on the virtual clock
        self._asleep = False
        self._frozen_wait = False
        self._closed = False

    def close(self) -> None:
        self._closed = True

    @property
    def idle(self) -> bool:
        if self._owner.retired or self._closed:
            return True
        waiter = self._waiter
        asleep = self._asleep and waiter is not None and not waiter.done()
        return asleep or self._frozen_wait

    def wake_if_due(self, now: float) -> None:
        if self.deadline is not None and self.deadline <= now:
            self.deadline = None
            self.ring()

    async def sleep_until(self, deadline: float, *, through_rings: bool = False, coarse: bool = False) -> None:
        if self._owner.kit.virtual:
            await self._virtual_sleep(deadline, through_rings)
        else:
            self._asleep = True
            try:  # fine timers: a test wants no tick's delay
                await super().sleep_until(deadline, through_rings=through_rings)
            finally:
                self._asleep = False
        if self._owner.frozen:
            self._frozen_wait = True
            try:
                await self._owner.wait_thawed()
            finally:
                self._frozen_wait = False

    async def _virtual_sleep(self, deadline: float, through_rings: bool) -> None:
        rung, self.rung = self.rung, False
        if rung and not through_rings:
            return
        if deadline <= self._clock():
            return
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        self.deadline, self._asleep = deadline, True
        try:
            while True:
                await waiter
                if not through_rings or self._clock() >= deadline:
                    break
                waiter = self._waiter = asyncio.get_running_loop().create_future()  # a ring during a backoff
        finally:
            self._waiter, self.deadline, self._asleep = None, None, False
        self.rung = False
