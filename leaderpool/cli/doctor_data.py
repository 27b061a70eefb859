"""The doctor's ``pool data`` check: every pool under the prefix, scanned for data leaderpool
did not write (see :mod:`leaderpool.backend.baddata`): a pool key of the wrong type, a leader value that
is not ``<term>|<member>``, a term counter that is no number, a member record, schedule record
or leader state that does not parse (or a member record over the size limit). Members skip such
data and log it once; this names each key, so an operator can delete it."""

from __future__ import annotations

from typing import Any

from leaderpool.backend.baddata import MAX_RECORD_BYTES
from leaderpool.backend.keys import DEFAULT_PREFIX
from leaderpool.backend.protocol import SEPARATOR, text
from leaderpool.backend.scan import scan_keys
from leaderpool.cli.doctor import Check
from leaderpool.members import MemberInfo

EXPECTED_TYPES = {
    "leader": "string", "term": "string", "members": "hash", "leases": "zset", "resigned": "string",
    "recovery": "string", "history": "stream", "state": "hash", "schedules": "hash",
    "singletons": "set", "singleton_assign": "hash", "singleton_epoch": "string", "singleton_pins": "hash",
    "singleton_version": "string",
    "singleton_owners": "hash", "singleton_terms": "hash", "singleton_state": "hash", "singleton_members": "hash",
}  # fmt: skip
"""What each pool key must hold (keys :mod:`leaderpool.backend.keys` builds; others are not checked)."""

SHOWN = 5
"""Problems named in the message; the count covers the rest."""


def _split(key: str, prefix: str) -> tuple[str, str] | None:
    """(pool, kind) of a pool key ``PREFIX:{POOL}:KIND``, None for any other key."""
    head = f"{prefix}:{{"
    if not key.startswith(head):
        return None
    pool, sep, kind = key[len(head) :].rpartition("}:")
    return (pool, kind) if sep and kind in EXPECTED_TYPES else None


async def _problems_of(client: Any, key: str, kind: str) -> list[str]:
    found = text(await client.type(key))
    wanted = EXPECTED_TYPES[kind]
    if found == "none":
        return []
    if found != wanted:
        return [f"{key} holds a {found}, not a {wanted}"]
    if kind == "leader":
        value = text(await client.get(key))
        term, sep, member = value.partition(SEPARATOR)
        if not (sep and member and term.isdigit()):
            return [f"{key} holds {value[:40]!r}, not TERM|MEMBER: no member can claim until it expires or is deleted"]
    elif kind == "term":
        value = text(await client.get(key))
        if not value.isdigit():
            return [f"{key} holds {value[:40]!r}, not a number"]
    elif kind == "members":
        out = []
        for member, record in (await client.hgetall(key)).items():
            name = text(member)
            if len(record) > MAX_RECORD_BYTES:
                out.append(f"{key} member {name[:40]!r}: record of {len(record)} bytes, over {MAX_RECORD_BYTES}")
                continue
            try:
                MemberInfo.from_record(name, record, 0)
            except (ValueError, TypeError, AttributeError, RecursionError):
                out.append(f"{key} member {name[:40]!r}: record {text(record)[:40]!r} is not a member record")
        return out
    elif kind == "schedules":
        from leaderpool.schedules.schedule_store import ScheduleRecord

        out = []
        for name, record in (await client.hgetall(key)).items():
            try:
                ScheduleRecord.parse(name, record)
            except (ValueError, TypeError, AttributeError, RecursionError):
                out.append(f"{key} schedule {text(name)[:40]!r}: record {text(record)[:40]!r} is not a schedule record")
        return out
    elif kind == "state":
        from leaderpool.state import STATE_FIELDS, parse_state

        if (
            await client.hget(key, "version") is not None
            and parse_state(list(await client.hmget(key, list(STATE_FIELDS)))) is None
        ):
            return [f"{key} is not a leader state leaderpool saved"]
    return []


async def check_pool_data(client: Any, prefix: str = DEFAULT_PREFIX) -> Check:
    """Scan every key under ``prefix``; ``fail`` naming the keys whose data leaderpool skips."""
    pools: set[str] = set()
    problems: list[str] = []
    async for raw in scan_keys(client, f"{prefix}:{{*}}:*"):  # every master of a cluster
        parts = _split(text(raw), prefix)
        if parts is not None:
            pools.add(parts[0])
            problems += await _problems_of(client, text(raw), parts[1])
    if not problems:
        return Check("pool data", "ok", f"{len(pools)} pool(s) under {prefix}:, nothing foreign")
    more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
    return Check(
        "pool data",
        "fail",
        f"{len(problems)} problem(s) members skip: "
        + "; ".join(problems[:SHOWN])
        + more
        + ": delete those keys/fields",
    )
