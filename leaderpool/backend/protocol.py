"""The wire protocol: what leaderpool writes into Redis and reads back, typed at the boundary.

Two text formats, each with one encoder and one parser here (and, in Lua, one helper each in
:mod:`leaderpool.backend.lua_snippets`, built from the constants below)::

    leader value     "<term>|<member>"                   the leader key's value
    pool message     "<event>|<term>|<detail>|<member>"  published on the pool's events channel

and the scripts' replies, turned into IntEnums and named tuples the moment they arrive. A change
of format touches this module and :mod:`leaderpool.backend.lua_snippets`, nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum, IntEnum
from typing import Any, NamedTuple

from leaderpool.backend.baddata import FOREIGN_HOLDER, MAX_RECORD_BYTES, report
from leaderpool.members import MemberInfo

SEPARATOR = "|"
"""Between the fields of a leader value and of a pool message. The member id is always the last
field and is split off last, so it may contain the separator."""

HANDOFF_PREFIX = "handoff:"
"""A hand-over's ``elected`` message carries ``handoff:<Redis ms of the grant>:<the successor's run>``
as its detail (an earlier version's, ``handoff:<ms>``, names no run)."""
HANDOFF_RUN = ":"
"""Between the grant's time and the run (incarnation) of the member it was granted to."""


def is_number(value: str) -> bool:
    """Whether ``value`` is a non-negative integer as leaderpool writes one: ASCII digits, at most
    20 (``str.isdigit`` also takes "²", which ``int`` refuses, and ``int`` refuses 4,300 digits)."""
    return 0 < len(value) <= 20 and value.isascii() and value.isdigit()


def text(value: Any) -> str:
    """A Redis reply as str, whether or not the client decodes responses (bytes that are not
    UTF-8, which leaderpool never writes, are replaced rather than raised on)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


# ---- the leader value ----


class LeaderValue(NamedTuple):
    """What the leader key holds: ``"<term>|<member>"``."""

    term: int
    member: str

    def encode(self) -> str:
        return f"{self.term}{SEPARATOR}{self.member}"

    @classmethod
    def parse(cls, raw: Any) -> LeaderValue | None:
        """None for no leader; a value that is not ``<term>|<member>`` is a lead held by someone
        unknown, :data:`~leaderpool.backend.baddata.FOREIGN_HOLDER` at term 0 (reported once)."""
        if raw is None or raw is False:
            return None
        value = text(raw)
        term, sep, member = value.partition(SEPARATOR)
        if sep and member and is_number(term):
            return cls(int(term), member)
        report("leader_value_foreign", value[:100], hint="a lead held by someone unknown: never overwritten")
        return cls(0, FOREIGN_HOLDER)


class LeaderConn(NamedTuple):
    """What the ``leader_conn`` key holds: ``"<term>|<client id>"``, or
    ``"<term>|<client id>|s"`` when that connection subscribed to its own channel
    (:func:`~leaderpool.backend.keys.connection_channel`) before it was registered: the Redis connection
    the leader of ``term`` keeps open for its whole lead. ``client_id`` 0: CLIENT was refused to the
    leader (followers confirm a death by a refused reconnect to its liveness endpoint instead)."""

    term: int
    client_id: int
    subscribed: bool = False
    """The connection is subscribed to its channel, never unsubscribes while it lives, and
    subscribed before this registration was written: no subscriber there proves it gone, and a
    script can ask that (``PUBSUB NUMSUB``; a script cannot run ``CLIENT LIST``)."""

    def encode(self) -> str:
        return f"{self.term}{SEPARATOR}{connection_registration(self.client_id, subscribed=self.subscribed)}"

    @classmethod
    def parse(cls, raw: Any) -> LeaderConn | None:
        if raw is None or raw is False:
            return None
        term, _, rest = text(raw).partition(SEPARATOR)
        client_id, _, flag = rest.partition(SEPARATOR)
        try:
            return cls(int(term), int(client_id), flag == SUBSCRIBED_FLAG)
        except ValueError:
            return None


SUBSCRIBED_FLAG = "s"


def connection_registration(client_id: int, *, subscribed: bool) -> str:
    """The part of ``leader_conn`` a claim or renewal sends: ``"<client id>"`` or, when the
    connection is subscribed to its own channel, ``"<client id>|s"``."""
    return f"{client_id}{SEPARATOR}{SUBSCRIBED_FLAG}" if subscribed else str(client_id)


# ---- the pool message ----


class PoolEvent(str, Enum):
    """The first field of a pool message."""

    JOINED = "joined"
    LEFT = "left"
    EVICTED = "evicted"
    ELECTED = "elected"
    RELEASED = "released"
    RESIGN = "resign"
    """A request (``leaderpool-cli resign``): the leader hands its lead over."""


class PoolMessage(NamedTuple):
    """One message on a pool's events channel."""

    event: PoolEvent
    term: int = 0
    detail: str = ""
    """``elected``: ``handoff:<ms>:<run>`` for a hand-over; ``released``/``left``: the reason."""
    member: str = ""

    def encode(self) -> str:
        return SEPARATOR.join((self.event.value, str(self.term), self.detail, self.member))

    @classmethod
    def parse(cls, raw: Any) -> PoolMessage | None:
        """The message, or None for one this version does not know (a newer peer's)."""
        head, _, rest = text(raw).partition(SEPARATOR)
        try:
            event = PoolEvent(head)
        except ValueError:
            report("pool_message_ignored", text(raw)[:100], hint="an event this version does not know")
            return None
        term, _, rest = rest.partition(SEPARATOR)
        detail, _, member = rest.partition(SEPARATOR)
        handoff = detail.removeprefix(HANDOFF_PREFIX) if detail.startswith(HANDOFF_PREFIX) else "0"
        if not is_number(term or "0") or not is_number(handoff.partition(HANDOFF_RUN)[0]):
            report("pool_message_ignored", text(raw)[:100], hint="not a message leaderpool sends")
            return None
        return cls(event, int(term or 0), detail, member)

    @property
    def handoff_ms(self) -> int | None:
        """For a hand-over, the Redis time (unix ms) at which the lead was granted."""
        if self.event is PoolEvent.ELECTED and self.detail.startswith(HANDOFF_PREFIX):
            return int(self.detail[len(HANDOFF_PREFIX) :].partition(HANDOFF_RUN)[0])
        return None

    @property
    def handoff_run(self) -> str:
        """For a hand-over, the run (incarnation) of the member it was granted to: a message that
        reaches another run under that id is stale for it. "" when it names none (an earlier
        version's leader, or a record without one)."""
        if self.event is PoolEvent.ELECTED and self.detail.startswith(HANDOFF_PREFIX):
            return self.detail[len(HANDOFF_PREFIX) :].partition(HANDOFF_RUN)[2]
        return ""


# ---- script replies ----


class BeatStatus(IntEnum):
    OK = 1
    """The member's lease is refreshed (and the lead renewed, when leading)."""
    NOT_OURS = 0
    """Leading, but the leader key no longer holds our value."""
    UNKNOWN_MEMBER = -1
    """No record for the member: Redis lost it, or the member was evicted."""


class ClaimStatus(IntEnum):
    ELECTED = 1
    HELD = 0
    """Someone holds the lead."""
    NOT_MEMBER = -1
    """The claimant is not a live member of the pool."""
    RECOVERING = -2
    """Claims wait while Redis recovers lost terms (``leader_pttl_ms`` says how long)."""
    NOT_BURIED = -3
    """Fast failover: the dead leader's lead or registration changed, so nothing was done."""
    STILL_SUBSCRIBED = -4
    """Fast failover: the dead leader's registered connection is still subscribed to its channel
    (Redis has not read its close yet, or the process lives), or Redis refused to say: nothing
    was done, the death is to be confirmed another way."""


class Joined(NamedTuple):
    """The register script's answer: joined, or refused because the member id is held."""

    joined: bool
    now_ms: int
    holder: MemberInfo | None = None
    """Refused: the record under the id (None: none, or one leaderpool did not write); its
    ``lease_ms`` is what is left of its lease (0 or less: lapsed)."""
    lead_pttl_ms: int = -2
    """Refused: how long a lead held under the id still runs (-2: none; the id is held by the record)."""

    @property
    def holder_deadline_ms(self) -> int | None:
        """The holder's lease deadline on Redis's clock: it moves on when (and only when) the holder beats."""
        return None if self.holder is None else self.now_ms + self.holder.lease_ms


def parse_joined(reply: Sequence[Any], member: str) -> Joined:
    now = int(reply[1])
    if int(reply[0]) == 1:
        return Joined(True, now)
    lease = int(reply[3])
    holder = member_info(member, reply[2], lease) if reply[2] else None
    return Joined(False, now, holder, int(reply[4]))


class Beat(NamedTuple):
    status: BeatStatus
    now_ms: int
    leader: LeaderValue | None
    leader_pttl_ms: int
    resigned: str | None
    """With ``want_members``: the member that just resigned (ranked last), if any."""
    free_in_us: int
    """Microseconds from the reply until the lead can be claimed if not renewed (-1: none)."""
    members: list[MemberInfo]
    leader_conn: str = ""
    """The leader's registered connection as stored, ``"<term>|<client id>"`` ("" none)."""
    live_count: int = -1
    """How many members are live: a change from the last read means someone left or lapsed."""
    first: str | None = None
    """Who ranks first by the default ranking (Redis's ranking zset), None if unknown."""
    next: str | None = None
    """Who ranks first after the leader (the next in line), None if none or unknown."""
    ranked: bool = False
    """This beat read the ranking's head (``first`` and ``next`` say something)."""


class Observation(NamedTuple):
    now_ms: int
    leader: LeaderValue | None
    leader_pttl_ms: int
    resigned: str | None
    free_in_us: int
    """Microseconds from the reply until the lead can be claimed if not renewed (-1: none)."""
    members: list[MemberInfo]
    leader_conn: str = ""
    """The leader's registered connection as stored, ``"<term>|<client id>"`` ("" none)."""
    watching: dict[str, str] = {}  # noqa: RUF012  # a NamedTuple default, never mutated
    """With ``watch_reports``: member -> the leader value whose endpoint it is connected to."""

    def member(self, member_id: str) -> MemberInfo | None:
        return next((m for m in self.members if m.member == member_id), None)


class Glance(NamedTuple):
    """A follower's O(log N) look at its pool (the ``glance`` script): the lead, the ranking's
    head, the leader's record, and whether the member itself is still live."""

    now_ms: int
    leader: LeaderValue | None
    leader_pttl_ms: int
    resigned: str | None
    free_in_us: int
    leader_conn: str
    first: str | None
    next: str | None
    leader_info: MemberInfo | None
    lease_ms: int | None
    """The member's own lease left (None: it is no member any more, or its record is not one
    leaderpool wrote: it registers again, as it would on missing from a listing)."""
    live_count: int = -1
    """How many members are live (for the live-members gauge)."""


class ClaimResult(NamedTuple):
    status: ClaimStatus
    term: int
    leader: LeaderValue | None
    leader_pttl_ms: int
    free_in_us: int


class Released(NamedTuple):
    released: bool
    """False when the leader key no longer held the value (compare-and-set failed)."""
    handed_term: int
    """The successor's new term, 0 when the lead was simply freed."""


class Left(NamedTuple):
    was_member: bool
    released_term: int
    """The term the member led and gave up, 0 when it did not lead."""
    handed_term: int


class LeaderRecord(NamedTuple):
    value: LeaderValue
    pttl_ms: int
    """The leader key's time to live when read: the lead's lease left."""
    info: MemberInfo | None


class HistoryEntry(NamedTuple):
    entry_id: str
    event: str
    term: int
    member: str
    reason: str
    t_ms: int


def member_info(member: str, record: Any, lease_ms: int) -> MemberInfo | None:
    """A member record parsed; None for one leaderpool did not write (reported once): not JSON,
    not an object, fields of the wrong kind, or over :data:`~leaderpool.backend.baddata.MAX_RECORD_BYTES`."""
    if len(record) > MAX_RECORD_BYTES:
        report("member_record_skipped", member, problem=f"{len(record)} bytes, over {MAX_RECORD_BYTES}")
        return None
    try:
        return MemberInfo.from_record(member, record, lease_ms)
    except (ValueError, TypeError) as exc:  # from_record's only errors
        report("member_record_skipped", member, problem=f"{type(exc).__name__}: {str(exc)[:100]}")
        return None


def same_run(info: MemberInfo, incarnation: str) -> bool:
    """Whether ``info`` is the record of ``incarnation`` ("": not checked, as tools read)."""
    return not incarnation or info.incarnation == incarnation


def _members(flat: Sequence[Any], now_ms: int) -> list[MemberInfo]:
    out = []
    for i in range(0, len(flat) - 2, 3):
        deadline = int(float(text(flat[i + 2])))
        info = member_info(text(flat[i]), flat[i + 1], deadline - now_ms)
        if info is not None:
            out.append(info)
    return out


def _optional(raw: Any) -> str | None:
    return text(raw) if raw else None


def parse_beat(reply: Sequence[Any]) -> Beat:
    status, now = BeatStatus(int(reply[0])), int(reply[1])
    unranked = isinstance(reply[8], int) and reply[8] == -1 if len(reply) > 8 else True
    if status is BeatStatus.UNKNOWN_MEMBER:
        return Beat(status, now, None, -2, None, -1, [], "", -1)
    return Beat(
        status,
        now,
        LeaderValue.parse(reply[2]),
        int(reply[3]),
        _optional(reply[4]),
        int(reply[5]),
        _members(reply[10:], now),
        _optional(reply[6]) or "",
        int(reply[7]),
        None if unranked else _optional(reply[8]),
        None if unranked else _optional(reply[9]),
        not unranked,
    )


def parse_glance(reply: Sequence[Any], member: str, incarnation: str = "") -> Glance:
    """``incarnation``: ours; a record of another (the same id run by another process) is not
    ours, so the glance says we are no member (we rejoin, and are refused while it lives)."""
    now = int(reply[0])
    leader, pttl = LeaderValue.parse(reply[1]), int(reply[2])
    info = member_info(leader.member, reply[8], pttl) if leader is not None and reply[8] else None
    lease = int(float(text(reply[9]))) - now if reply[9] and reply[10] else None
    mine: MemberInfo | None = None
    if lease is not None and leader is not None and leader.member == member:
        mine = info
    elif lease is not None:
        mine = member_info(member, reply[10], lease)
    if lease is not None and (mine is None or not same_run(mine, incarnation)):
        lease = None
    return Glance(
        now, leader, pttl, _optional(reply[3]), int(reply[4]), _optional(reply[5]) or "",
        _optional(reply[6]), _optional(reply[7]), info, lease, int(reply[11]) if len(reply) > 11 else -1,
    )  # fmt: skip


def parse_observation(reply: Sequence[Any]) -> Observation:
    now = int(reply[0])
    return Observation(
        now,
        LeaderValue.parse(reply[1]),
        int(reply[2]),
        _optional(reply[3]),
        int(reply[4]),
        _members(reply[7:], now),
        _optional(reply[5]) or "",
        _pairs(reply[6]),
    )


def _pairs(flat: Any) -> dict[str, str]:
    """A flat HGETALL reply (or false) as a dict."""
    if not flat:
        return {}
    items = list(flat.items()) if isinstance(flat, dict) else list(zip(flat[::2], flat[1::2], strict=True))
    return {text(k): text(v) for k, v in items}


def parse_claim(reply: Sequence[Any], member: str, ttl_ms: int) -> ClaimResult:
    status = ClaimStatus(int(reply[0]))
    if status is ClaimStatus.ELECTED:
        term = int(text(reply[1]))
        return ClaimResult(status, term, LeaderValue(term, member), ttl_ms, ttl_ms * 1000)
    if status is ClaimStatus.HELD:
        return ClaimResult(status, 0, LeaderValue.parse(reply[1]), int(reply[2]), int(reply[3]))
    if status is ClaimStatus.RECOVERING:
        return ClaimResult(status, 0, None, int(reply[1]), -1)
    return ClaimResult(status, 0, None, -2, -1)


def parse_released(reply: Sequence[Any]) -> Released:
    return Released(bool(int(reply[0])), int(reply[1]))


def parse_left(reply: Sequence[Any]) -> Left:
    return Left(bool(int(reply[0])), int(text(reply[1])), int(reply[2]))


def parse_leader_record(reply: Sequence[Any]) -> LeaderRecord | None:
    if not reply:
        return None
    value = LeaderValue.parse(reply[0])
    assert value is not None
    pttl = int(reply[1])
    info = member_info(value.member, reply[2], pttl) if reply[2] else None
    return LeaderRecord(value, pttl, info)


def _number(raw: str) -> int:
    return int(raw) if is_number(raw) else 0


def parse_history(entries: Sequence[Any] | None) -> list[HistoryEntry]:
    """XREVRANGE entries (newest first) as history entries, oldest first."""
    out = []
    for entry_id, fields in reversed(entries or []):
        f = {text(a): text(b) for a, b in fields.items()}
        out.append(
            HistoryEntry(
                text(entry_id),
                f.get("event", ""),
                _number(f.get("term", "")),
                f.get("member", ""),
                f.get("reason", ""),
                _number(f.get("t_ms", "")),
            )
        )
    return out


class FenceResult(NamedTuple):
    written: bool
    """Always True when returned: a refused write raises :class:`~leaderpool.errors.StaleTerm`."""
    term: int
    """The writer's term."""
