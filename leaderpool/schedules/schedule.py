"""Periodic singleton tasks: what a schedule is, and which slot is due when (pure, no I/O).

A schedule's **slots** are instants on Redis's clock: every ``every_s`` seconds counted from the
unix epoch (``every_s=300`` runs at :00, :05, ... whoever leads), or the instants a cron
expression names (evaluated in UTC by ``croniter``; a 6th field counts seconds). Every member
computes the same slots, so a new leader carries on the cadence of the last one, from the last
slot claimed in Redis (:mod:`leaderpool.schedules.schedule_store`, :mod:`leaderpool.schedules.periodic`).

**Late and missed slots.** After the last claimed slot, the next one is run as soon as it is due,
even late: a failover takes one lease and a little, so slots that fall during one still run, one
after another (no slot is lost while a member is alive). A slot more than ``grace_s`` late is
*missed* -- no member was alive to run it, or runs overran that long -- and the catch-up policy
decides: :attr:`CatchUp.ONCE` runs one run for all of them (its slot the latest one due),
:attr:`CatchUp.SKIP` drops them and waits for the first slot that is not yet ``grace_s`` late,
:attr:`CatchUp.ALL` runs each of them that lies within ``catch_up_window_s`` of now, the newest
first (at most :data:`MAX_CATCH_UP_RUNS`), then goes on with the cadence.

**Overlap.** Slots that come due while this leader's run of an earlier slot is still going:
:attr:`Overlap.BUFFER_ALL` (the default) runs each of them once the run ends, one after another
(late; those more than the grace late are missed, and the catch-up policy decides);
:attr:`Overlap.BUFFER_ONE` runs the latest of them once the run ends, the others skipped;
:attr:`Overlap.SKIP` skips them all (the next run is the first slot after the run ended);
:attr:`Overlap.ALLOW` starts each on time beside the run in progress; :attr:`Overlap.CANCEL_OTHER`
cancels the run in progress and starts the new one on time.

**Jitter.** ``jitter_s`` delays each slot's start by up to that long, by an amount every member
computes the same way (from the schedule's name and the slot), so a new leader waits as the old
one would have.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import NamedTuple

from leaderpool.errors import ConfigError
from leaderpool.util.naming import validate_name

MAX_CATCH_UP_RUNS = 100
"""The most missed slots :attr:`CatchUp.ALL` runs after an outage (the newest ones)."""

MIN_EVERY_S = 0.01
"""The shortest period: slots are whole milliseconds, and a run needs a few Redis round trips."""


class CatchUp(str, Enum):
    """What happens to missed slots (more than ``grace_s`` late)."""

    ONCE = "once"
    """One run for all of them, as the latest slot due."""
    SKIP = "skip"
    """None: wait for the first slot not yet ``grace_s`` late."""
    ALL = "all"
    """Each, within ``catch_up_window_s`` of now, the newest first."""


class Overlap(str, Enum):
    """What happens to slots that come due while this leader's previous run still goes on."""

    BUFFER_ALL = "buffer_all"
    """Each runs when the run before it ends, late (within the grace; beyond it, missed)."""
    BUFFER_ONE = "buffer_one"
    """The latest of them runs when the run ends; the others are skipped."""
    SKIP = "skip"
    """All skipped: the next run is the first slot after the run ended."""
    ALLOW = "allow"
    """Each starts on time, beside the run in progress."""
    CANCEL_OTHER = "cancel_other"
    """The run in progress is cancelled; the new one starts on time."""


@dataclass(frozen=True)
class Schedule:
    """A named schedule: exactly one of ``every_s`` (seconds, at least 0.01) or ``cron`` (a cron
    expression, UTC: 5 fields, or 6 with the seconds *last*: ``"* * * * * */10"`` is every 10
    seconds, ``"*/10 * * * * *"`` every second of every tenth minute). ``grace_s``: how late a slot may start
    before it counts as missed (None: the runner's default, twice the lease). Bad values raise
    :class:`ConfigError` naming the field."""

    name: str
    every_s: float | None = None
    cron: str | None = None
    catch_up: CatchUp = CatchUp.ONCE
    grace_s: float | None = None
    overlap: Overlap = Overlap.BUFFER_ALL
    catch_up_window_s: float | None = None
    """With :attr:`CatchUp.ALL`: how far back missed slots are run (None: as far as
    :data:`MAX_CATCH_UP_RUNS` reaches)."""
    jitter_s: float = 0.0

    def __post_init__(self) -> None:
        validate_name("schedule name", self.name)
        if (self.every_s is None) == (self.cron is None):
            raise ConfigError("a schedule needs exactly one of every_s or cron")
        every = self.every_s
        if every is not None and not (isinstance(every, int | float) and math.isfinite(every) and every >= MIN_EVERY_S):
            raise ConfigError(f"every_s must be a number of seconds, at least {MIN_EVERY_S:g}, got {every!r}")
        if self.cron is not None:
            check_cron(self.cron)
        object.__setattr__(self, "catch_up", CatchUp(self.catch_up))
        try:
            object.__setattr__(self, "overlap", Overlap(self.overlap))
        except ValueError:
            choices = ", ".join(o.value for o in Overlap)
            raise ConfigError(f"overlap must be one of {choices}, got {self.overlap!r}") from None
        for field, value in (("grace_s", self.grace_s), ("catch_up_window_s", self.catch_up_window_s)):
            if value is not None and not _seconds(value):
                raise ConfigError(f"{field} must be a number of seconds >= 0, got {value!r}")
        if not _seconds(self.jitter_s):
            raise ConfigError(f"jitter_s must be a number of seconds >= 0, got {self.jitter_s!r}")
        if self.catch_up_window_s is not None and self.catch_up is not CatchUp.ALL:
            raise ConfigError("catch_up_window_s only applies with catch_up='all'")

    def jitter_ms(self, slot_ms: int) -> int:
        """How long after ``slot_ms`` its run starts: the same on every member."""
        if not self.jitter_s:
            return 0
        return zlib.crc32(f"{self.name}:{slot_ms}".encode()) % (round(self.jitter_s * 1000) + 1)

    @property
    def policy(self) -> str:
        """How the schedule's policies read in listings: ``once`` or ``all 600s, skip, jitter 2s``."""
        catch_up = self.catch_up.value
        if self.catch_up is CatchUp.ALL and self.catch_up_window_s is not None:
            catch_up += f" {self.catch_up_window_s:g}s"
        parts = [catch_up]
        if self.overlap is not Overlap.BUFFER_ALL:
            parts.append(f"overlap {self.overlap.value}")
        if self.jitter_s:
            parts.append(f"jitter {self.jitter_s:g}s")
        return ", ".join(parts)

    @property
    def spec(self) -> str:
        """How the schedule reads in listings: ``every 300s`` or ``cron */5 * * * *``."""
        return f"every {self.every_s:g}s" if self.every_s is not None else f"cron {self.cron}"

    @property
    def _period_ms(self) -> int:
        assert self.every_s is not None
        return max(1, round(self.every_s * 1000))

    def after(self, slot_ms: int) -> int:
        """The first slot strictly after ``slot_ms`` (unix ms)."""
        if self.every_s is not None:
            period = self._period_ms
            return (slot_ms // period + 1) * period
        return _cron_step(self._cron_text, slot_ms, forward=True)

    def at_or_before(self, now_ms: int) -> int:
        """The latest slot at or before ``now_ms``."""
        if self.every_s is not None:
            period = self._period_ms
            return now_ms // period * period
        return _cron_step(self._cron_text, now_ms + 1, forward=False)

    def at_or_after(self, now_ms: int) -> int:
        """The first slot at or after ``now_ms``."""
        return self.after(now_ms - 1)

    @property
    def _cron_text(self) -> str:
        assert self.cron is not None
        return self.cron


def _seconds(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def check_cron(expression: str) -> str:
    """``expression`` if croniter accepts it, else :class:`ConfigError` saying why."""
    from croniter import croniter

    if not isinstance(expression, str) or not expression.strip():
        raise ConfigError(f"cron must be a cron expression such as '*/5 * * * *', got {expression!r}")
    try:
        croniter(expression)
    except (ValueError, KeyError) as exc:  # croniter's errors are ValueErrors (a few bad ranges: KeyError)
        raise ConfigError(f"cron expression {expression!r} is invalid: {exc}") from None
    return expression


def _cron_step(expression: str, from_ms: int, *, forward: bool) -> int:
    """The cron instant strictly after (``forward``) or strictly before ``from_ms``, in ms."""
    from croniter import croniter

    start = datetime.fromtimestamp(from_ms / 1000, tz=timezone.utc)
    it = croniter(expression, start)
    found = it.get_next(float) if forward else it.get_prev(float)
    return round(found * 1000)


class Due(NamedTuple):
    """The slot to run next (unix ms; it may lie in the future), and the missed slots it passed
    over: ``missed_from``..``missed_to`` (None when none), run as this one (``ONCE``) or dropped.
    ``backlog``: with :attr:`CatchUp.ALL`, the older missed slots to run after this one, newest
    first (claimed with it)."""

    slot_ms: int
    missed_from: int | None = None
    missed_to: int | None = None
    backlog: tuple[int, ...] = ()


def next_due(schedule: Schedule, last_ms: int | None, now_ms: int, grace_ms: int) -> Due:
    """Which slot comes next, after the last slot claimed (``last_ms``; None: never ran), at
    ``now_ms`` on Redis's clock. A schedule that never ran starts with the first slot from now."""
    if last_ms is None:
        return Due(schedule.at_or_after(now_ms))
    slot = schedule.after(last_ms)
    if now_ms - slot <= grace_ms:  # not due yet, on time, or late within the grace: it runs
        return Due(slot)
    if schedule.catch_up is CatchUp.ONCE:
        latest = schedule.at_or_before(now_ms)
        missed_to = schedule.at_or_before(latest - 1)
        return Due(latest, slot, missed_to) if missed_to >= slot else Due(latest)
    if schedule.catch_up is CatchUp.ALL:
        return _catch_up_all(schedule, slot, now_ms)
    first_on_time = schedule.at_or_after(now_ms - grace_ms)
    return Due(first_on_time, slot, schedule.at_or_before(first_on_time - 1))


def _catch_up_all(schedule: Schedule, first_missed: int, now_ms: int) -> Due:
    """Every missed slot within the window (the newest :data:`MAX_CATCH_UP_RUNS`), newest first;
    those older than the window, or beyond the cap, are dropped (reported as missed)."""
    window = schedule.catch_up_window_s
    oldest = first_missed if window is None else max(first_missed, now_ms - round(window * 1000))
    runs: list[int] = []
    slot = schedule.at_or_before(now_ms)
    while slot >= oldest and len(runs) < MAX_CATCH_UP_RUNS:
        runs.append(slot)
        slot = schedule.at_or_before(slot - 1)
    if not runs:  # the window holds none of them: as SKIP
        return Due(schedule.at_or_after(now_ms), first_missed, schedule.at_or_before(now_ms))
    dropped_to = schedule.at_or_before(runs[-1] - 1)
    if dropped_to >= first_missed:
        return Due(runs[0], first_missed, dropped_to, tuple(runs[1:]))
    return Due(runs[0], backlog=tuple(runs[1:]))


def after_overlap(schedule: Schedule, last_ms: int, ended_ms: int) -> tuple[int | None, int | None, int]:
    """A run of ``last_ms`` ended at ``ended_ms``: the slots that came due meanwhile, which the
    overlap policy skips: (first, last, count), or (None, None, 0). ``BUFFER_ONE`` keeps the latest
    of them to run; ``SKIP`` skips all; ``BUFFER_ALL`` none (each runs, late); ``ALLOW`` and
    ``CANCEL_OTHER`` never get here (their slots did not wait)."""
    first = schedule.after(last_ms)
    if first > ended_ms or schedule.overlap not in (Overlap.SKIP, Overlap.BUFFER_ONE):
        return None, None, 0
    latest = schedule.at_or_before(ended_ms)
    last = latest if schedule.overlap is Overlap.SKIP else schedule.at_or_before(latest - 1)
    if last < first:
        return None, None, 0
    count, slot = 0, first
    while slot <= last and count < 10_000:
        count, slot = count + 1, schedule.after(slot)
    return first, last, count
