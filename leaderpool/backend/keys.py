"""Every Redis key and channel leaderpool uses, built in one place.

A pool's keys share the hash tag ``{pool}`` so the whole pool lives on one Redis Cluster slot
and every multi-key Lua script stays single-slot::

    leaderpool:{POOL}:leader    string  "<term>|<member>", PX = the leader's lease
    leaderpool:{POOL}:term      string  highest term ever granted in this pool
    leaderpool:{POOL}:members   hash    member id -> JSON record (node, host, pid, priority, ...)
    leaderpool:{POOL}:leases    zset    member id -> lease deadline, Redis clock, unix ms
    leaderpool:{POOL}:ranking   zset    member id -> rank score (priority, then start time: see
                                        leaderpool.members.rank_score), best first: who is next
    leaderpool:{POOL}:resigned  string  member id that just resigned, PX = one lease
    leaderpool:{POOL}:recovery  string  present (PX = one lease) after Redis was found to have lost
                                        terms: claims wait so every live member can report its own
    leaderpool:{POOL}:history   stream  leadership transitions (term, member, reason, t_ms)
    leaderpool:{POOL}:events    channel pool events: joined, left, elected, released, resign, evicted
    leaderpool:{POOL}:state     hash    the leader state (leaderpool.state): version, term, member,
                                        saved_at_ms, data (JSON)
    leaderpool:{POOL}:schedules hash    schedule name -> JSON record of its last run and next slot
                                        (leaderpool.schedules.schedule_store)
    leaderpool:{POOL}:slot_log  stream  each slot's outcome: run (ok, failed...), skipped, missed
                                        (leaderpool.schedules.slot_log), capped
    leaderpool:{POOL}:leader_conn  string  "<term>|<client id>[|s]" of the leader's pub/sub
                                        connection, PX = the lease (fast failover: see
                                        leaderpool.fast_failover.failover); "|s": it is subscribed to
    leaderpool:conn:ID          channel one per watcher connection (client id ID), subscribed for
                                        its whole life, never published to: no subscriber
                                        proves the connection gone (fast failover)
    leaderpool:{POOL}:lead_until  string  "<term>|<unix ms>": the deadline the holder of that term
                                        last renewed its lead to, PXAT the same (followers read it
                                        with the leader key in one MGET, not a PTTL each)
    leaderpool:{POOL}:watching  hash    member id -> "<term>|<leader>" whose liveness endpoint it
                                        is connected to (shown by status)

Work for the pool (:mod:`leaderpool.jobs`)::

    leaderpool:{POOL}:jobs            stream  submitted jobs, read by the leader in group "leader";
                                              an entry is deleted once acknowledged
    leaderpool:{POOL}:dead            stream  dead letters: jobs that failed too often, with the error
    leaderpool:{POOL}:handlers        hash    member id -> "1" for members that run a handler
    leaderpool:{POOL}:inbox:MEMBER    list    targeted calls and multicalls for one member, PX
    leaderpool:{POOL}:reply:ID        list    the reply (or replies) to one call, PX

Unique names (:mod:`leaderpool.names.registry`) span every pool under the prefix, so they live apart, on
one slot of their own (the hash tag ``{names}``; no pool key starts ``PREFIX:global:``)::

    leaderpool:global:{names}:owners     hash    name -> JSON {"pool", "member", "node", "value"}
    leaderpool:global:{names}:deadlines  zset    name -> its holder's lease deadline, Redis clock, ms
    leaderpool:global:{names}:events     channel "registered|NAME", "unregistered|NAME"

Cluster-wide locks (:mod:`leaderpool.locks.blocking_lock`) speak python-redis-lock's protocol on keys
under the prefix (so the prefix's ACL covers them and tenants' locks stay apart), with the
resource as hash tag so all three sit on one slot::

    leaderpool:lock:{RESOURCE}          string  the holder's random id, EX/PX = the lock's ttl
    leaderpool:lock-signal:{RESOURCE}   list    pushed on release, wakes one waiter (BLPOP), PX 1 s
    leaderpool:lock-token:{RESOURCE}    string  the last fencing token handed out (never expires)

Queued recipes (:mod:`leaderpool.locks.semaphore`, :mod:`leaderpool.locks.rwlock`, ``Lock(fair=True)``)
keep their holders and waiters in sorted sets, one family per KIND (``semaphore``, ``rwlock``,
``fair-lock``), all on the resource's slot::

    leaderpool:KIND:{RESOURCE}          zset    holder -> its lease deadline (Redis clock, ms)
    leaderpool:KIND-queue:{RESOURCE}    zset    waiter -> its arrival number (first come, first served)
    leaderpool:KIND-waiting:{RESOURCE}  zset    waiter -> its waiter lease deadline (a dead waiter leaves)
    leaderpool:KIND-token:{RESOURCE}    string  the last fencing token handed out (never expires)
    leaderpool:KIND-seq:{RESOURCE}      string  the last arrival number handed out
    leaderpool:KIND-permits:{RESOURCE}  string  the permit count its users give (a semaphore's); set
                                        again whenever nobody holds or waits
    leaderpool:KIND-conns:{RESOURCE}    hash    holder -> its process's liveness channel (leaderpool:conn:ID):
                                        no subscriber there, and a waiter reclaims the permit at once
    leaderpool:KIND-wake:{RESOURCE}:ID  list    pushed when waiter ID may take a permit now (BLPOP), PX 5 s

(Until the release that moved them here, see CHANGELOG, they were python-redis-lock's own
``lock:{RESOURCE}``, ``lock-signal:{RESOURCE}`` and ``lock-token:{RESOURCE}``, outside every prefix.)

Singletons spread over a pool (:mod:`leaderpool.singletons`), each owned by one live member at a
time; ownership lasts while its owner's pool lease does (no lease of its own)::

    leaderpool:{POOL}:singletons         set     the pool's singleton names
    leaderpool:{POOL}:singleton_assign   hash    name -> the member the placer (the leader) gives it to
    leaderpool:{POOL}:singleton_epoch    string  bumped by each change of singleton_assign (a member
                                                 re-reads its assignment only when it moved)
    leaderpool:{POOL}:singleton_version  string  bumped by each write of the singletons' placement or
                                                 ownership (claim, release, assign, names, pin): a
                                                 beat whose version is the one last read skips the
                                                 per-name work (the owners' check, the survey)
    leaderpool:{POOL}:singleton_pins     hash    name -> the member an operator moved it to (move)
    leaderpool:{POOL}:singleton_owners   hash    name -> "<term>|<incarnation>|<member>": its owner
    leaderpool:{POOL}:singleton_terms    hash    name -> the highest term ever granted for it
    leaderpool:{POOL}:singleton_state    hash    name -> JSON {"term", "member", "data"}: the hand-off
    leaderpool:{POOL}:singleton_members  hash    member -> "<weight>|<connection channel>" of the members
                                                 that run singletons ("" channel: no fast proof)
    leaderpool:{POOL}:singleton_events   channel hints: "assigned", "released|NAME", "claimed|NAME",
                                                 "member|MEMBER", "left|MEMBER", "names"
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from leaderpool.util.constants import DEFAULT_PREFIX as DEFAULT_PREFIX  # re-exported: the CLI and worker use it
from leaderpool.util.constants import MAX_NAME_LENGTH as MAX_NAME_LENGTH
from leaderpool.util.naming import validate_name


# Printable ASCII without spaces; braces would break the Cluster hash tag.
@dataclass(frozen=True)
class Keyspace:
    """The keys of one pool. ``Keyspace("jobs").leader == "leaderpool:{jobs}:leader"``."""

    pool: str
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        validate_name("pool", self.pool)
        validate_name("prefix", self.prefix)

    @property
    def _base(self) -> str:
        return f"{self.prefix}:{{{self.pool}}}"

    @property
    def leader(self) -> str:
        return f"{self._base}:leader"

    @property
    def term(self) -> str:
        return f"{self._base}:term"

    @property
    def members(self) -> str:
        return f"{self._base}:members"

    @property
    def leases(self) -> str:
        return f"{self._base}:leases"

    @property
    def ranking(self) -> str:
        """Zset: member id -> rank score, best first (who ranks first and next, without a listing)."""
        return f"{self._base}:ranking"

    @property
    def resigned(self) -> str:
        return f"{self._base}:resigned"

    @property
    def recovery(self) -> str:
        return f"{self._base}:recovery"

    @property
    def history(self) -> str:
        return f"{self._base}:history"

    @property
    def events(self) -> str:
        return f"{self._base}:events"

    @property
    def state(self) -> str:
        return f"{self._base}:state"

    @property
    def schedules(self) -> str:
        return f"{self._base}:schedules"

    @property
    def slot_log(self) -> str:
        """Stream: each schedule slot's outcome, newest last (capped)."""
        return f"{self._base}:slot_log"

    @property
    def leader_conn(self) -> str:
        """The leader's registered Redis connection (``"<term>|<client id>"``), for fast failover."""
        return f"{self._base}:leader_conn"

    @property
    def lead_until(self) -> str:
        """The lead's deadline as its holder last renewed it (``"<term>|<unix ms>"``, PXAT the
        deadline): followers read it with the leader key in one MGET instead of a PTTL per beat."""
        return f"{self._base}:lead_until"

    @property
    def watching(self) -> str:
        """Hash: member -> the leader value whose liveness endpoint it is connected to."""
        return f"{self._base}:watching"

    # ---- work for the pool (leaderpool.jobs) ----

    @property
    def jobs(self) -> str:
        return f"{self._base}:jobs"

    @property
    def dead(self) -> str:
        return f"{self._base}:dead"

    @property
    def handlers(self) -> str:
        return f"{self._base}:handlers"

    def inbox(self, member: str) -> str:
        return f"{self._base}:inbox:{member}"

    def reply(self, call_id: str) -> str:
        return f"{self._base}:reply:{call_id}"

    # ---- singletons (leaderpool.singletons) ----

    @property
    def singletons(self) -> str:
        return f"{self._base}:singletons"

    @property
    def singleton_assign(self) -> str:
        return f"{self._base}:singleton_assign"

    @property
    def singleton_epoch(self) -> str:
        return f"{self._base}:singleton_epoch"

    @property
    def singleton_version(self) -> str:
        return f"{self._base}:singleton_version"

    @property
    def singleton_pins(self) -> str:
        return f"{self._base}:singleton_pins"

    @property
    def singleton_owners(self) -> str:
        return f"{self._base}:singleton_owners"

    @property
    def singleton_terms(self) -> str:
        return f"{self._base}:singleton_terms"

    @property
    def singleton_state(self) -> str:
        return f"{self._base}:singleton_state"

    @property
    def singleton_members(self) -> str:
        return f"{self._base}:singleton_members"

    @property
    def singleton_events(self) -> str:
        return f"{self._base}:singleton_events"

    def leader_channel(self, db: int) -> str:
        """The keyspace-notification channel of the leader key in database ``db``."""
        return f"__keyspace@{db}__:{self.leader}"


def connection_channel(prefix: str, client_id: int) -> str:
    """The pub/sub channel a process's watcher connection ``client_id`` subscribes to for its whole
    life, for fast failover: a script proves the connection gone by its having no subscriber
    (one per connection and prefix; not a pool key, so no braces)."""
    return f"{prefix}:conn:{client_id}"


@dataclass(frozen=True)
class NameKeys:
    """The keys of the unique-name registry under one prefix (shared by every pool)."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        validate_name("prefix", self.prefix)

    @property
    def _base(self) -> str:
        return f"{self.prefix}:global:{{names}}"

    @property
    def owners(self) -> str:
        return f"{self._base}:owners"

    @property
    def deadlines(self) -> str:
        return f"{self._base}:deadlines"

    @property
    def events(self) -> str:
        return f"{self._base}:events"


@dataclass(frozen=True)
class LockKeys:
    """A lock's keys for one resource under the prefix, hash-tagged so they share a Cluster slot,
    and the fencing-token counter next to them.
    ``LockKeys("orders").lock == "leaderpool:lock:{orders}"``."""

    resource: str
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        validate_name("lock resource", self.resource)
        validate_name("prefix", self.prefix)

    @property
    def redis_lock_name(self) -> str:
        """The name python-redis-lock is given (its own keys, ``lock:NAME``, are replaced by ours)."""
        return f"{{{self.resource}}}"

    @property
    def lock(self) -> str:
        return f"{self.prefix}:lock:{self.redis_lock_name}"

    @property
    def signal(self) -> str:
        return f"{self.prefix}:lock-signal:{self.redis_lock_name}"

    @property
    def token(self) -> str:
        return f"{self.prefix}:lock-token:{self.redis_lock_name}"


QUEUED_KINDS = ("semaphore", "rwlock", "fair-lock")


@dataclass(frozen=True)
class QueueKeys:
    """The keys of a queued recipe (a semaphore, a read-write lock, a fair lock) on one resource,
    hash-tagged onto one Cluster slot. ``QueueKeys("semaphore", "gpu").holders ==
    "leaderpool:semaphore:{gpu}"``."""

    kind: str
    resource: str
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if self.kind not in QUEUED_KINDS:
            raise ValueError(f"unknown queued recipe kind {self.kind!r}")
        validate_name(f"{self.kind} resource", self.resource)
        validate_name("prefix", self.prefix)

    def _key(self, suffix: str) -> str:
        return f"{self.prefix}:{self.kind}{suffix}:{{{self.resource}}}"

    @property
    def holders(self) -> str:
        return self._key("")

    @property
    def queue(self) -> str:
        return self._key("-queue")

    @property
    def waiting(self) -> str:
        return self._key("-waiting")

    @property
    def token(self) -> str:
        return self._key("-token")

    @property
    def seq(self) -> str:
        return self._key("-seq")

    @property
    def permits(self) -> str:
        return self._key("-permits")

    @property
    def conns(self) -> str:
        """Hash: holder -> the liveness channel of its process's Redis connection (a permit whose
        channel has no subscriber is a dead process's, reclaimed at once)."""
        return self._key("-conns")

    @property
    def wake_prefix(self) -> str:
        """The wake-up lists' common start; a waiter's own list is this plus its id (same slot)."""
        return self._key("-wake") + ":"

    def wake(self, member: str) -> str:
        return self.wake_prefix + member

    @property
    def script_keys(self) -> list[str]:
        """KEYS of every queued-recipe script, in their contract's order."""
        return [self.holders, self.queue, self.waiting, self.token, self.seq, self.permits, self.conns]


def members_pattern(prefix: str = DEFAULT_PREFIX) -> str:
    """SCAN pattern matching every pool's members hash, for discovering pools."""
    return f"{prefix}:{{*}}:members"


def pool_keys_pattern(prefix: str = DEFAULT_PREFIX) -> str:
    """SCAN pattern matching every key of every pool (with names and locks' keys left out: they
    have no ``{`` right after the prefix), for discovering pools whatever they still hold."""
    return f"{prefix}:{{*}}:*"


POOL_KEY_SUFFIXES = frozenset(
    {"leader", "term", "members", "leases", "ranking", "resigned", "recovery", "history", "state", "schedules",
     "leader_conn", "lead_until", "watching", "jobs", "dead", "handlers", "singletons", "singleton_assign",
     "singleton_epoch", "singleton_version", "singleton_pins", "singleton_owners", "singleton_terms", "singleton_state",
     "singleton_members"}
)  # fmt: skip
"""The lasting keys of a pool, after ``{POOL}:`` (a call's inbox and reply keys come and go)."""


def pool_from_key(key: str, prefix: str = DEFAULT_PREFIX) -> str | None:
    """The pool whose lasting key ``key`` is (one of :data:`POOL_KEY_SUFFIXES`); None otherwise."""
    head = f"{prefix}:{{"
    pool, sep, suffix = key[len(head) :].rpartition("}:")
    if key.startswith(head) and sep and suffix in POOL_KEY_SUFFIXES:
        return pool
    return None


def schedules_pattern(prefix: str = DEFAULT_PREFIX) -> str:
    """SCAN pattern matching every pool's schedules hash, for listing schedules."""
    return f"{prefix}:{{*}}:schedules"


def pool_from_schedules_key(key: str, prefix: str = DEFAULT_PREFIX) -> str | None:
    """Inverse of ``Keyspace.schedules``; None for a key that is not one."""
    head, tail = f"{prefix}:{{", "}:schedules"
    if key.startswith(head) and key.endswith(tail):
        return key[len(head) : -len(tail)]
    return None


def pool_from_members_key(key: str, prefix: str = DEFAULT_PREFIX) -> str | None:
    """Inverse of ``Keyspace.members``; None for a key that is not one."""
    head, tail = f"{prefix}:{{", "}:members"
    if key.startswith(head) and key.endswith(tail):
        return key[len(head) : -len(tail)]
    return None


_HASH_TAG_RE = re.compile(r"\{([^}]+)\}")


def fence_key(resource_key: str, pool: str | None = None, singleton: str | None = None) -> str:
    """The key holding the highest term ``pool`` wrote ``resource_key`` with, on the same Cluster
    slot (see :mod:`leaderpool.fencing`; no pool: one fence for every writer). With ``singleton``
    it is that singleton's own fence in ``pool`` (its terms are a counter of their own):
    ``...:fence:POOL:{NAME}``; braces never occur in a name, so no pool's fence can be mistaken
    for a singleton's.

    A key with a hash tag keeps it (the first ``{...}`` decides the slot); a key without one is
    wrapped whole in braces, which hashes exactly like the bare key.
    """
    if singleton is not None and pool is None:
        raise ValueError("a singleton's fence needs its pool: singleton terms count per pool")
    suffix = ":fence" if pool is None else f":fence:{validate_name('pool', pool)}"
    if singleton is not None:
        suffix += f":{{{validate_name('singleton', singleton)}}}"
    if _HASH_TAG_RE.search(resource_key):
        return f"{resource_key}{suffix}"
    return f"{{{resource_key}}}{suffix}"
