"""The singletons' wire format and Redis calls: one typed call per script, replies parsed here.

No asyncio import: the CLI's one-shot commands use it on a blocking client
(:mod:`leaderpool.console.oneshot`). Layout: see :mod:`leaderpool.backend.keys` (``singleton_*``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import Any, NamedTuple

from leaderpool.backend.keys import DEFAULT_PREFIX, Keyspace
from leaderpool.backend.protocol import LeaderValue, text
from leaderpool.backend.script_registry import ScriptHost
from leaderpool.singletons.singleton_scripts import SingletonScripts
from leaderpool.util.naming import validate_name

SEP = "|"


class Owner(NamedTuple):
    """Who owns a singleton: ``"<term>|<incarnation>|<member>"`` in the owners hash."""

    term: int
    incarnation: str
    member: str

    def encode(self) -> str:
        return f"{self.term}{SEP}{self.incarnation}{SEP}{self.member}"

    @classmethod
    def parse(cls, raw: Any) -> Owner | None:
        term, _, rest = text(raw).partition(SEP)
        run, sep, member = rest.partition(SEP)
        if not sep or not member or not term.isdigit():
            return None
        return cls(int(term), run, member)


class SavedState(NamedTuple):
    """A singleton's saved state: what its owner of ``term`` (``member``) saved last."""

    term: int
    member: str
    data: Any

    def encode(self) -> str:
        return json.dumps({"term": self.term, "member": self.member, "data": self.data}, separators=(",", ":"))

    @classmethod
    def parse(cls, raw: Any) -> SavedState | None:
        if raw is None or raw is False:
            return None
        try:
            record = json.loads(text(raw))
            return cls(int(record["term"]), str(record["member"]), record.get("data"))
        except (ValueError, KeyError, TypeError):
            return None  # garbage under the key: start as if nothing was saved


class SyncReply(NamedTuple):
    live: bool
    """False: the member's lease lapsed (or its id is another run's): it holds nothing."""
    left_ms: int
    """What was left of its lease when Redis answered."""
    epoch: str
    assigned: list[str] | None
    """The names assigned to the member, None when the epoch is the one it sent (unchanged)."""
    lost: list[str]
    """Names it sent (believing it held them) and does not hold."""
    version: str
    """The singletons' version when Redis answered: an owner record changes only with it."""


class ClaimStatus(IntEnum):
    CLAIMED = 1
    HELD = 0
    """Another live owner holds it: it will hand it over (or its lease will end)."""
    REFUSED = -2
    """Not a singleton of the pool, or not assigned to us."""


class Claim(NamedTuple):
    name: str
    status: ClaimStatus
    term: int
    state: SavedState | None
    holder: str
    """HELD: who holds it."""


class SurveyMember(NamedTuple):
    member: str
    priority: int
    weight: float
    liveness: str


class OwnerSeen(NamedTuple):
    owner: Owner
    live: bool


class Survey(NamedTuple):
    """What the placer places from: the live members running singletons, the names, who each is
    assigned to, who owns each (and whether that owner is live), the operators' pins; and the
    fingerprint of all that (the same fingerprint: nothing to place anew)."""

    members: list[SurveyMember]
    names: list[str]
    assign: dict[str, str]
    owners: dict[str, OwnerSeen]
    pins: dict[str, str]
    fingerprint: str = ""


class SingletonInfo(NamedTuple):
    """One singleton of a pool as Redis has it now (``leaderpool-cli singletons`` prints these)."""

    name: str
    member: str | None
    """Its live owner; None when nobody runs it now."""
    term: int
    """The term of its current (or last) owner; 0 never owned."""
    assigned: str | None
    """The member the placer gave it to."""

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "member": self.member, "term": self.term}


def _pairs(flat: Sequence[Any]) -> dict[str, str]:
    return {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


def _weight(raw: Any) -> float:
    try:
        weight = float(text(raw))
    except ValueError:
        return 1.0
    return weight if weight > 0 else 1.0


class SingletonStore:
    """The Redis I/O of one pool's singletons (the asyncio client, or a one-shot blocking one)."""

    def __init__(self, client: ScriptHost, pool: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.keys = Keyspace(pool, prefix)
        self._scripts = SingletonScripts.on(client)

    async def sync(
        self, member: str, incarnation: str, registration: str, epoch: str, held: Mapping[str, int]
    ) -> SyncReply:
        """The member's one call per beat (see ``singleton_sync``): ``held``, the names (and
        terms) to check, only when the version moved since it last checked."""
        k = self.keys
        args: list[str | int] = [member, incarnation, registration, epoch]
        for name, term in held.items():
            args += [name, term]
        reply = await self._scripts.singleton_sync(
            keys=[k.leases, k.members, k.singleton_members, k.singleton_assign, k.singleton_epoch,
                  k.singleton_owners, k.singleton_events, k.singleton_terms, k.singleton_version],
            args=args,
        )  # fmt: skip
        if int(reply[0]) != 1:
            return SyncReply(False, 0, epoch, None, list(held), "")
        # Lua's false arrives as None (unchanged), an empty table as []
        assigned = None if reply[3] is None else [text(n) for n in reply[3]]
        return SyncReply(True, int(reply[1]), text(reply[2]), assigned, [text(n) for n in reply[4]], text(reply[5]))

    async def claim(self, member: str, incarnation: str, names: Sequence[str]) -> list[Claim] | None:
        """Claim ``names`` (assigned to ``member``); None when the member is not live."""
        k = self.keys
        reply = await self._scripts.singleton_claim(
            keys=[k.leases, k.members, k.singleton_members, k.singletons, k.singleton_assign,
                  k.singleton_owners, k.singleton_terms, k.singleton_state, k.singleton_events, k.singleton_version],
            args=[member, incarnation, *names],
        )  # fmt: skip
        if int(reply[0]) != 1:
            return None
        claims = []
        for name, status, term, detail in reply[1]:
            st = ClaimStatus(int(status))
            state = SavedState.parse(detail) if st is ClaimStatus.CLAIMED else None
            holder = text(detail) if st is ClaimStatus.HELD else ""
            claims.append(Claim(text(name), st, int(term), state, holder))
        return claims

    async def release(
        self, member: str, incarnation: str, handed: Sequence[tuple[str, int, SavedState | None]], *, leaving: bool
    ) -> list[str]:
        """Free the singletons ``handed`` (name, term, state to save or None to keep the saved
        one); ``leaving``: the member stops running singletons. Returns the names freed."""
        args: list[str | int] = [member, incarnation, "1" if leaving else "0"]
        for name, term, state in handed:
            args += [name, term, "" if state is None else state.encode()]
        k = self.keys
        reply = await self._scripts.singleton_release(
            keys=[k.singleton_owners, k.singleton_state, k.singleton_members, k.singleton_events, k.singleton_version],
            args=args,
        )
        return [text(n) for n in reply]

    async def save(self, member: str, incarnation: str, name: str, state: SavedState) -> bool:
        """Save ``state`` while ``member`` owns ``name`` at ``state.term`` (fenced)."""
        k = self.keys
        reply = await self._scripts.singleton_save(
            keys=[k.singleton_owners, k.singleton_state], args=[member, incarnation, name, state.term, state.encode()]
        )
        return int(reply) == 1

    async def survey(self) -> Survey:
        """Everything the placer places from (every name: O(singletons))."""
        return (await self.survey_if_changed(""))[1] or Survey([], [], {}, {}, {})  # "" is no fingerprint

    async def survey_if_changed(self, seen: str) -> tuple[list[SurveyMember], Survey | None]:
        """The live members running singletons, and the whole survey unless its fingerprint is
        ``seen`` (None then: nothing changed since, a few commands per member)."""
        k = self.keys
        reply = await self._scripts.singleton_survey(
            keys=[k.leases, k.members, k.singleton_members, k.singletons, k.singleton_assign,
                  k.singleton_owners, k.singleton_pins, k.singleton_version],
            args=[seen],
        )  # fmt: skip
        members = self._members(reply[1])
        if len(reply) == 2:
            return members, None
        fingerprint, _, names, assign, owners, pins = reply
        seen_owners: dict[str, OwnerSeen] = {}
        for i in range(0, len(owners) - 2, 3):
            owner = Owner.parse(owners[i + 1])
            if owner is not None:
                seen_owners[text(owners[i])] = OwnerSeen(owner, int(owners[i + 2]) == 1)
        return members, Survey(
            members, sorted(text(n) for n in names), _pairs(assign), seen_owners, _pairs(pins), text(fingerprint)
        )

    @staticmethod
    def _members(live: Sequence[Any]) -> list[SurveyMember]:
        members = []
        for member, record, weight in live:
            try:
                info = json.loads(text(record))
            except ValueError:
                info = {}
            priority = info.get("priority", 0) if isinstance(info, dict) else 0
            liveness = info.get("liveness", "") if isinstance(info, dict) else ""
            members.append(
                SurveyMember(text(member), int(priority) if isinstance(priority, int) else 0, _weight(weight), liveness)
            )
        return members

    async def assign(self, lead: LeaderValue, changes: Mapping[str, str]) -> bool:
        """Write the placer's ``changes`` (name -> member, "" to unassign), fenced by ``lead``."""
        k = self.keys
        args: list[str | int] = [lead.encode()]
        for name, member in changes.items():
            args += [name, member]
        reply = await self._scripts.singleton_assign(
            keys=[
                k.leader,
                k.singleton_assign,
                k.singleton_epoch,
                k.singleton_events,
                k.leases,
                k.singleton_members,
                k.singleton_version,
            ],
            args=args,
        )
        return int(reply) == 1

    async def add(self, names: Sequence[str]) -> int:
        """Add singletons to the pool; returns how many were new."""
        return await self._names("add", names)

    async def remove(self, names: Sequence[str]) -> int:
        """Remove singletons from the pool (their owners stop them); returns how many were there."""
        return await self._names("remove", names)

    async def _names(self, op: str, names: Sequence[str]) -> int:
        for name in names:
            validate_name("singleton", name)
        if not names:
            return 0
        k = self.keys
        reply = await self._scripts.singleton_names(
            keys=[
                k.singletons,
                k.singleton_assign,
                k.singleton_pins,
                k.singleton_epoch,
                k.singleton_events,
                k.singleton_version,
            ],
            args=[op, *names],
        )
        return int(reply)

    async def pin(self, name: str, member: str) -> bool:
        """Keep ``name`` on ``member`` while it is live ("" unpins); False: not a singleton here."""
        validate_name("singleton", name)
        if member:
            validate_name("member", member)
        k = self.keys
        reply = await self._scripts.singleton_pin(
            keys=[k.singletons, k.singleton_pins, k.singleton_events, k.singleton_version], args=[name, member]
        )
        return int(reply) == 1

    async def list(self) -> list[SingletonInfo]:
        """Every singleton of the pool: its live owner and term, and its assignment (read only)."""
        survey = await self.survey()
        out = []
        for name in survey.names:
            seen = survey.owners.get(name)
            member = seen.owner.member if seen is not None and seen.live else None
            out.append(SingletonInfo(name, member, seen.owner.term if seen else 0, survey.assign.get(name)))
        return out


async def list_singletons(client: ScriptHost, pool: str, *, prefix: str = DEFAULT_PREFIX) -> list[SingletonInfo]:
    """Every singleton of ``pool``: its live owner and term (read only; a blocking client works
    through :mod:`leaderpool.console.oneshot`). ``[s.as_json() for s in ...]`` is what
    ``leaderpool-cli singletons POOL --json`` prints."""
    return await SingletonStore(client, pool, prefix).list()


async def move_singleton(
    client: ScriptHost, pool: str, name: str, member: str, *, prefix: str = DEFAULT_PREFIX
) -> bool:
    """Pin singleton ``name`` of ``pool`` to ``member`` ("" unpins): the leader hands it over
    there while that member is live. False when ``name`` is not a singleton of the pool."""
    return await SingletonStore(client, pool, prefix).pin(name, member)
