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
:attr:`CatchUp.SKIP` drops them and waits for the first slot that is not yet ``grace_s`` late.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import NamedTuple

from leaderpool.errors import ConfigError
from leaderpool.util.naming import validate_name

MIN_EVERY_S = 0.01
"""The shortest period: slots are whole milliseconds, and a run needs a few Redis round trips."""


class CatchUp(str, Enum):
    """What happens to missed slots (more than ``grace_s`` late)."""

    ONCE = "once"
    """One run for all of them, as the latest slot due."""
    SKIP = "skip"
    """None: wait for the first slot not yet ``grace_s`` late."""


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
        if self.grace_s is not None and not (math.isfinite(self.grace_s) and self.grace_s >= 0):
            raise ConfigError(f"grace_s must be a number of seconds >= 0, got {self.grace_s!r}")

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
    over: ``missed_from``..``missed_to`` (None when none), run as this one (``ONCE``) or dropped."""

    slot_ms: int
    missed_from: int | None = None
    missed_to: int | None = None


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
    first_on_time = schedule.at_or_after(now_ms - grace_ms)
    return Due(first_on_time, slot, schedule.at_or_before(first_on_time - 1))
