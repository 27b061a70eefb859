"""Prometheus collectors for the elections of this process (through ``prometheus_client``).

The worker serves them on ``/metrics`` (``--http-port``); an application that serves its own
``/metrics`` calls :func:`enable_metrics` once and gets the same collectors in its registry::

    from leaderpool.metrics import enable_metrics
    enable_metrics()  # prometheus_client's default registry; or enable_metrics(my_registry)

What they measure comes from :mod:`leaderpool.probe`, which the election core reports into at no
cost while nothing listens. Every series is labelled with the pool and, where it is one member's
view, the member.
"""

from __future__ import annotations

import threading
import time

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from leaderpool import probe
from leaderpool.events import Elected, Event, LeaderChanged, Revoked

__all__ = ["ElectionMetrics", "disable_metrics", "enable_metrics"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""From half a millisecond (a loopback round trip) to a lease or two."""
MEMBER = ("pool", "member")


class ElectionMetrics:
    """The collectors, and the :class:`~leaderpool.probe.Observer` that feeds them."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        def histogram(name: str, doc: str, labels: tuple[str, ...]) -> Histogram:
            return Histogram(name, doc, labels, buckets=LATENCY_BUCKETS, registry=registry)

        self.registry = registry
        self.is_leader = Gauge("leaderpool_is_leader", "1 while this member leads its pool.", MEMBER, registry=registry)
        self.term = Gauge(
            "leaderpool_term",
            "Term of the lead this member holds or last saw (0: none seen).",
            MEMBER,
            registry=registry,
        )
        self.elections_won = Counter("leaderpool_elections_won", "Leads this member took.", MEMBER, registry=registry)
        self.revocations = Counter(
            "leaderpool_revocations", "Leads this member gave up, by reason.", (*MEMBER, "reason"), registry=registry
        )
        self.failover = histogram(
            "leaderpool_failover_seconds",
            "On the member that took a vacant lead: from seeing it vacant to leading.",
            ("pool",),
        )
        self.handover = histogram(
            "leaderpool_handover_seconds",
            "On the member a lead was handed to: from the grant in Redis to leading.",
            ("pool",),
        )
        self.renew_latency = histogram(
            "leaderpool_renew_latency_seconds", "Round trip of a leader's lease renewal.", MEMBER
        )
        self.notification_lag = histogram(
            "leaderpool_notification_lag_seconds",
            "From Redis's time stamp on a pool message (hand-overs carry one) to its arrival here.",
            ("pool",),
        )
        self.live_members = Gauge(
            "leaderpool_live_members", "Live members as of this member's last heartbeat (or read) of its pool.", MEMBER,
            registry=registry,
        )  # fmt: skip
        self.last_heartbeat = Gauge(
            "leaderpool_last_heartbeat_timestamp_seconds", "Unix time of this member's last answered heartbeat.",
            MEMBER, registry=registry,
        )  # fmt: skip
        self.redis_reconnects = Counter(
            "leaderpool_redis_reconnects", "Times a watcher lost its Redis connection and subscribed again.",
            registry=registry,
        )  # fmt: skip
        self.task_crashes = Counter(
            "leaderpool_task_crashes", "Leader tasks that raised while leading.", MEMBER, registry=registry
        )
        self.job_outcomes = Counter(
            "leaderpool_jobs", "Jobs the leader's consumer settled, by outcome (done, failed, dead_lettered, "
            "claimed from a previous leader, ack_refused for a term that ended).", ("pool", "outcome"),
            registry=registry,
        )  # fmt: skip
        self.locks = Counter(
            "leaderpool_locks", "Cluster-wide locks acquired, and lost while held.", ("outcome",), registry=registry
        )
        self.lock_wait = histogram(
            "leaderpool_lock_wait_seconds", "How long an acquired cluster-wide lock was waited for.", ()
        )
        self.slots = Counter(
            "leaderpool_schedule_slots", "Schedule slots by outcome (ok, failed, stopped, cancelled, missed, skipped).",
            ("pool", "schedule", "outcome"), registry=registry,
        )  # fmt: skip
        self.singletons_held = Gauge(
            "leaderpool_singletons_owned", "Singletons this member runs now.", MEMBER, registry=registry
        )
        self.singleton_stops = Counter(
            "leaderpool_singleton_stops", "Singletons that stopped here, by reason (moved: a rebalance or a move; "
            "stopping: this member left; lost: its ownership lapsed).", (*MEMBER, "reason"), registry=registry,
        )  # fmt: skip
        self.singleton_handoff = histogram(
            "leaderpool_singleton_handoff_seconds",
            "On the member handing a singleton over kindly: from its stop to its task's end (the release follows).",
            ("pool",),
        )
        self._answered: dict[tuple[str, str], float] = {}  # (pool, member) -> monotonic time of the last reply
        self._lock = threading.Lock()

    # ---- the probe's observer ----

    def event(self, pool: str, member: str, event: Event) -> None:
        if isinstance(event, Elected):
            self.is_leader.labels(pool, member).set(1)
            self.term.labels(pool, member).set(event.term)
            self.elections_won.labels(pool, member).inc()
        elif isinstance(event, Revoked):
            self.is_leader.labels(pool, member).set(0)
            self.revocations.labels(pool, member, event.reason.value).inc()
        elif isinstance(event, LeaderChanged) and event.leader is not None:
            self.term.labels(pool, member).set(event.leader.term)

    def took_lead(self, pool: str, member: str, *, handoff: bool, seconds: float) -> None:
        (self.handover if handoff else self.failover).labels(pool).observe(seconds)

    def heartbeat(self, pool: str, member: str, *, leading: bool, seconds: float) -> None:
        if leading:
            self.renew_latency.labels(pool, member).observe(seconds)
        self.last_heartbeat.labels(pool, member).set(time.time())
        with self._lock:
            self._answered[(pool, member)] = time.monotonic()

    def notified(self, pool: str, seconds: float) -> None:
        self.notification_lag.labels(pool).observe(seconds)

    def members_seen(self, pool: str, member: str, count: int) -> None:
        self.live_members.labels(pool, member).set(count)

    def reconnected(self) -> None:
        self.redis_reconnects.inc()

    def jobs(self, pool: str, outcome: str, count: int) -> None:
        self.job_outcomes.labels(pool, outcome).inc(count)

    def lock(self, outcome: str, waited_s: float) -> None:
        self.locks.labels(outcome).inc()
        if outcome == "acquired":
            self.lock_wait.observe(waited_s)

    def slot(self, pool: str, schedule: str, outcome: str, count: int = 1) -> None:
        self.slots.labels(pool, schedule, outcome).inc(count)

    # ---- for the worker ----

    def task_crashed(self, pool: str, member: str) -> None:
        self.task_crashes.labels(pool, member).inc()

    def singletons_owned(self, pool: str, member: str, count: int) -> None:
        self.singletons_held.labels(pool, member).set(count)

    def singleton_stopped(self, pool: str, member: str, reason: str, seconds: float) -> None:
        self.singleton_stops.labels(pool, member, reason).inc()
        if reason != "lost":
            self.singleton_handoff.labels(pool).observe(seconds)

    def since_answered(self, pool: str, member: str) -> float | None:
        """Seconds since this member's last answered heartbeat (None: none yet)."""
        with self._lock:
            at = self._answered.get((pool, member))
        return None if at is None else time.monotonic() - at


_enabled: dict[int, ElectionMetrics] = {}
_enabling = threading.Lock()


def enable_metrics(registry: CollectorRegistry | None = None) -> ElectionMetrics:
    """Register the collectors in ``registry`` (prometheus_client's default one if None) and
    start feeding them; calling it again with the same registry returns the same collectors."""
    registry = REGISTRY if registry is None else registry
    with _enabling:
        metrics = _enabled.get(id(registry))
        if metrics is None:
            metrics = _enabled[id(registry)] = ElectionMetrics(registry)
        probe.add_observer(metrics)
        return metrics


def disable_metrics(registry: CollectorRegistry | None = None) -> None:
    """Stop feeding the collectors of ``registry`` (they stay registered, frozen)."""
    registry = REGISTRY if registry is None else registry
    with _enabling:
        metrics = _enabled.get(id(registry))
    if metrics is not None:
        probe.remove_observer(metrics)
