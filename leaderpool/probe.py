"""Hooks the election core reports its measurements through: what :mod:`leaderpool.metrics`
turns into Prometheus collectors, or anything else an application registers.

The core calls the functions below at the few places where a measurement is born (an event, a
lead taken, a renewal's round trip, a hand-over message, a full read of the pool, a watcher
reconnect). With no observer registered each call is one empty loop: the core pays nothing for
metrics it does not export. Observers run inline on the event loop: they must be quick and never
raise (an exception is logged and the observer dropped, so a broken exporter cannot stop an
election).
"""

from __future__ import annotations

from typing import Any, Protocol

from leaderpool.events import Event
from leaderpool.util.log import get_logger

__all__ = ["Observer", "add_observer", "remove_observer"]

log = get_logger("leaderpool.probe")


class Observer(Protocol):
    def event(self, pool: str, member: str, event: Event) -> None:
        """An event handed to the application (elected, revoked, leader changed)."""

    def took_lead(self, pool: str, member: str, *, handoff: bool, seconds: float) -> None:
        """This member began to lead: ``seconds`` since it saw the lead vacant (a contest) or
        since the old leader granted it the lead in Redis (a hand-over)."""

    def heartbeat(self, pool: str, member: str, *, leading: bool, seconds: float) -> None:
        """A heartbeat (for a leader, the renewal of its lead) came back after ``seconds``."""

    def notified(self, pool: str, seconds: float) -> None:
        """A pool message stamped with Redis's time arrived ``seconds`` after it was sent."""

    def members_seen(self, pool: str, member: str, count: int) -> None:
        """A full read of the pool found ``count`` live members."""

    def reconnected(self) -> None:
        """A watcher lost its Redis connection and subscribed again."""

    def jobs(self, pool: str, outcome: str, count: int) -> None:
        """The leader's job consumer: ``count`` jobs ``done``, ``failed`` (to be retried),
        ``dead_lettered``, ``claimed`` (taken over from a previous leader) or ``ack_refused``."""

    def lock(self, outcome: str, waited_s: float) -> None:
        """A cluster-wide lock ``acquired`` after waiting ``waited_s``, or ``lost`` while held."""

    def slot(self, pool: str, schedule: str, outcome: str, count: int = 1) -> None:
        """A periodic schedule's run ended (``ok``, ``failed``, ``stopped``, ``cancelled``), or
        ``count`` slots were ``missed``, or one was ``skipped`` (the schedule is paused)."""


_observers: list[Observer] = []


def add_observer(observer: Observer) -> None:
    if observer not in _observers:
        _observers.append(observer)


def remove_observer(observer: Observer) -> None:
    if observer in _observers:
        _observers.remove(observer)


def _tell(method: str, *args: Any, **kwargs: Any) -> None:
    for observer in tuple(_observers):
        try:
            getattr(observer, method)(*args, **kwargs)
        except Exception:
            log.exception("observer_failed", observer=type(observer).__name__, method=method)
            remove_observer(observer)


def event(pool: str, member: str, ev: Event) -> None:
    if _observers:
        _tell("event", pool, member, ev)


def took_lead(pool: str, member: str, *, handoff: bool, seconds: float) -> None:
    if _observers:
        _tell("took_lead", pool, member, handoff=handoff, seconds=seconds)


def heartbeat(pool: str, member: str, *, leading: bool, seconds: float) -> None:
    if _observers:
        _tell("heartbeat", pool, member, leading=leading, seconds=seconds)


def notified(pool: str, seconds: float) -> None:
    if _observers:
        _tell("notified", pool, seconds)


def members_seen(pool: str, member: str, count: int) -> None:
    if _observers:
        _tell("members_seen", pool, member, count)


def reconnected() -> None:
    if _observers:
        _tell("reconnected")


def jobs(pool: str, outcome: str, count: int) -> None:
    if _observers and count:
        _tell("jobs", pool, outcome, count)


def lock(outcome: str, waited_s: float = 0.0) -> None:
    if _observers:
        _tell("lock", outcome, waited_s)


def slot(pool: str, schedule: str, outcome: str, count: int = 1) -> None:
    if _observers:
        _tell("slot", pool, schedule, outcome, count)
