"""What ``leaderpool-cli status`` shows: every pool's leader and members, read from Redis.

Pools are discovered by SCAN over every pool's lasting keys
(:func:`~leaderpool.backend.keys.pool_keys_pattern`), so a pool whose members all left cleanly
(no members hash, its term and history still there) is listed as ``status --pool`` shows it;
each pool is read with the core's one-script observation, so a pool's leader and members are
seen at one instant. ``started_at`` in the JSON is unix seconds (a float, Redis's clock).
Each member shows its incarnation: which process runs the id (token, host, pid, since when).

A pool with no leader and no live member is *stale* (its members died without leaving): it is
shown with ``(stale since ...)``, and ``stale_since`` (unix seconds) in the JSON, from its last
sign of life (the latest member lease deadline, or the last transition) for
:data:`STALE_HIDDEN_AFTER_S` (10 minutes); after that it is left out unless ``--all`` is given
or the pool is named. ``leaderpool-cli forget POOL`` deletes one.

A key that matches a pool's pattern but names a pool leaderpool could never have written (a space,
a brace: ``leaderpool:{bad pool}:members``) is not leaderpool's: it is skipped, and counted in
:class:`Foreign` (a last line of the table, ``foreign_keys`` in the JSON), so one stranger's key
cannot hide every pool (issue 23).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from leaderpool.backend.keys import Keyspace, pool_from_key, pool_keys_pattern
from leaderpool.backend.pool_store import LeaderValue, PoolStore, text
from leaderpool.backend.scan import scan_keys
from leaderpool.election.succession import next_in_line
from leaderpool.errors import BadPoolData
from leaderpool.jobs.job_store import Backlog, JobStore
from leaderpool.members import MemberInfo, by_priority_then_age
from leaderpool.singletons.singleton_store import SingletonInfo, SingletonStore
from leaderpool.util.naming import validate_name
from leaderpool.util.printable import printable

STALE_HIDDEN_AFTER_S = 600
"""A stale pool (no leader, no live member) is listed this long after its last sign of life."""
FOREIGN_SHOWN = 10
"""Keys that are not leaderpool's named in a listing at most (the rest are only counted)."""


@dataclass(frozen=True)
class Foreign:
    """Keys that look like a pool's but are not leaderpool's: the first :data:`FOREIGN_SHOWN`, and how many."""

    keys: tuple[str, ...] = ()
    count: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "keys": list(self.keys)}

    def line(self) -> str:
        shown = ", ".join(repr(k) for k in self.keys) + (", ..." if self.count > len(self.keys) else "")
        return f"({self.count} key(s) skipped, not leaderpool's: {shown})"


NO_FOREIGN = Foreign()


class Listing(list["PoolStatus"]):
    """The pools read, and the :class:`Foreign` keys skipped while finding them."""

    foreign: Foreign = NO_FOREIGN


@dataclass(frozen=True)
class PoolStatus:
    pool: str
    now_ms: int
    """Redis's clock when read (unix ms): uptimes are measured on it."""
    leader: LeaderValue | None
    leader_pttl_ms: int
    members: list[MemberInfo]
    """Live members, ranked as the default ranker would (priority, then the longest running)."""
    stale_since_ms: int | None = None
    """For a stale pool (no leader, no live member): its last sign of life (unix ms)."""
    watching: dict[str, str] = field(default_factory=dict)
    """Fast failover: member -> the leader value whose liveness endpoint it reports being
    connected to (as of its last heartbeat)."""
    next_in_line: str | None = None
    """Who takes over next if the leader dies (the default ranking)."""

    @property
    def next_connected(self) -> bool:
        """The next in line is connected to the leader's liveness endpoint (the fast path is armed)."""
        leader = self.leader
        return (
            leader is not None
            and self.next_in_line is not None
            and (self.watching.get(self.next_in_line) == leader.encode())
        )

    backlog: Backlog | None = None
    """Its work (leaderpool.jobs): None for a pool that never had a job."""

    singletons: tuple[SingletonInfo, ...] = ()
    """Its singletons (leaderpool.singletons), with the live member running each: the placement."""

    problem: str | None = None
    """A pool key holds what leaderpool did not write (:class:`~leaderpool.errors.BadPoolData`):
    the pool could not be read; the rest of the listing goes on."""

    @property
    def hidden(self) -> bool:
        """Stale for longer than :data:`STALE_HIDDEN_AFTER_S`: left out of a listing of every pool."""
        return self.stale_since_ms is not None and self.now_ms - self.stale_since_ms > STALE_HIDDEN_AFTER_S * 1000

    def to_json(self) -> dict[str, Any]:
        leader = self.leader
        out: dict[str, Any] = {
            "pool": self.pool,
            "leader": (
                None
                if leader is None
                else {"member": leader.member, "term": leader.term, "lease_ms": max(self.leader_pttl_ms, 0)}
            ),
            "members": [
                {
                    "member": m.member,
                    "node": m.node,
                    "host": m.host,
                    "pid": m.pid,
                    "started_at": m.started_at_ms / 1000,
                    "priority": m.priority,
                    "lease_ms": max(m.lease_ms, 0),
                    "leader": leader is not None and leader.member == m.member,
                    "meta": dict(m.meta),
                    "liveness": endpoint_text(m.liveness) or None,
                    "incarnation": incarnation_json(m),
                    **self._placement_of(m.member),
                }
                for m in self.members
            ],
        }
        if self.singletons:
            out["singletons"] = [s.as_json() for s in self.singletons]
        if leader is not None and self.next_in_line is not None:
            out["next_in_line"] = {"member": self.next_in_line, "connected": self.next_connected}
        if self.stale_since_ms is not None:
            out["stale_since"] = self.stale_since_ms / 1000
        if self.backlog is not None:
            b = self.backlog
            out["backlog"] = {"jobs": b.jobs, "pending": b.pending, "waiting": b.waiting, "dead": b.dead}
        if self.problem is not None:
            out["problem"] = self.problem
        return out

    def _placement_of(self, member: str) -> dict[str, Any]:
        """``{"singletons": [{"name", "term"}]}``: what ``member`` runs (nothing for a pool without any)."""
        if not self.singletons:
            return {}
        return {"singletons": [{"name": s.name, "term": s.term} for s in self.singletons if s.member == member]}

    def identity(self) -> tuple[Any, ...]:
        """What a redraw cares about, without the lease countdowns."""
        return (
            self.pool,
            self.leader,
            tuple((m.member, m.priority, m.started_at_ms, m.incarnation) for m in self.members),
            tuple((s.name, s.member, s.term) for s in self.singletons),
        )


async def discover_pools(client: Any, prefix: str, foreign: list[str] | None = None) -> list[str]:
    """Every pool with a key under ``prefix``, sorted (keys not leaderpool's go to ``foreign``)."""
    return await scan_pools(client, pool_keys_pattern(prefix), lambda key: pool_from_key(key, prefix), foreign)


async def scan_pools(
    client: Any, pattern: str, pool_of: Callable[[str], str | None], foreign: list[str] | None = None
) -> list[str]:
    """The pools of every key matching ``pattern`` (``pool_of`` names a key's pool, or None),
    sorted; a key naming a pool leaderpool could not have written is skipped (and appended to
    ``foreign``)."""
    found: set[str] = set()
    async for key in scan_keys(client, pattern):  # every master of a cluster
        pool = pool_of(text(key))
        if pool is None:
            continue
        try:
            found.add(validate_name("pool", pool))
        except ValueError:
            if foreign is not None:
                foreign.append(text(key))
    return sorted(found)


def pool_keys(keys: Keyspace) -> list[str]:
    """Every key a pool stores (its channel is not a key)."""
    every = [keys.leader, keys.term, keys.members, keys.leases, keys.resigned, keys.recovery, keys.history]
    every += [keys.ranking]  # the default ranking, best first
    every += [keys.state, keys.schedules]  # the leader state and the periodic schedules
    every += [keys.leader_conn, keys.lead_until, keys.watching]  # fast failover, the lead's deadline, watch reports
    every += [keys.jobs, keys.dead, keys.handlers]  # the pool's work
    every += [keys.singletons, keys.singleton_assign, keys.singleton_epoch, keys.singleton_pins]  # singletons
    every += [keys.singleton_version]
    every += [keys.singleton_owners, keys.singleton_terms, keys.singleton_state, keys.singleton_members]
    return every


async def pool_exists(client: Any, pool: str, prefix: str) -> bool:
    """Whether Redis holds any key of ``pool``."""
    return int(await client.exists(*pool_keys(Keyspace(pool, prefix)))) > 0


def no_such_pools(pools: Iterable[str], prefix: str, hint: str = "") -> str:
    """The one line every command gives for pools Redis holds no key of (a typo, most often)."""
    return f"no pool named {', '.join(pools)} (prefix {prefix}): `leaderpool-cli status` lists the pools{hint}"


async def require_pool(client: Any, pool: str, prefix: str, hint: str = "") -> None:
    """The rule of every command that takes a pool: one Redis holds no key of is a
    :class:`~leaderpool.console.args.Failure` (one line, exit 1), never an empty answer."""
    from leaderpool.console.args import Failure

    if not await pool_exists(client, pool, prefix):
        raise Failure(no_such_pools([pool], prefix, hint))


async def last_sign_of_life_ms(client: Any, keys: Keyspace) -> int:
    """The latest member lease deadline or recorded transition of a pool (unix ms; 0: none)."""
    latest = 0
    for _member, deadline in await client.zrange(keys.leases, -1, -1, withscores=True):
        latest = max(latest, int(float(deadline)))
    for entry_id, _fields in await client.xrevrange(keys.history, count=1):
        latest = max(latest, int(text(entry_id).partition("-")[0]))
    return latest


async def _read_or_report(client: Any, pool: str, prefix: str) -> PoolStatus:
    """The pool, or, when one of its keys holds foreign data, a status naming the problem."""
    try:
        return await read_pool(client, pool, prefix)
    except BadPoolData as exc:
        return PoolStatus(pool, 0, None, -2, [], problem=str(exc))


async def read_pool(client: Any, pool: str, prefix: str) -> PoolStatus:
    keys = Keyspace(pool, prefix)
    obs = await PoolStore(client, keys).observe(prune=False, watch_reports=True)
    stale = None
    if obs.leader is None and not obs.members:
        stale = await last_sign_of_life_ms(client, keys)
    following = None
    if obs.leader is not None:
        following = next_in_line(obs.members, obs.leader.member, None, resigned=obs.resigned, anti_affinity=False)
    backlog = await JobStore(client, keys).backlog()
    singletons = await SingletonStore(client, pool, prefix).list() if await client.exists(keys.singletons) else []
    return PoolStatus(
        pool, obs.now_ms, obs.leader, obs.leader_pttl_ms, by_priority_then_age(obs.members), stale,
        obs.watching, following, backlog if backlog.exists else None, tuple(singletons),
    )  # fmt: skip


def singletons_text(singletons: Iterable[SingletonInfo]) -> str:
    """``6 (a 2, b 2, c 2)``: how many, and how many each member runs (and how many none does)."""
    every = list(singletons)
    per: dict[str, int] = {}
    for s in every:
        if s.member is not None:
            per[s.member] = per.get(s.member, 0) + 1
    idle = len(every) - sum(per.values())
    spread = ", ".join(f"{m} {n}" for m, n in sorted(per.items())) + (f", {idle} not running" if idle else "")
    return f"{len(every)} ({spread.lstrip(', ')})"


def incarnation_json(m: MemberInfo) -> dict[str, Any] | None:
    """Which run of the member id this is: its token, host, pid and when it first joined (unix
    seconds, Redis's clock); None for a record of a version that wrote none."""
    if not m.incarnation:
        return None
    return {"id": m.incarnation, "host": m.host, "pid": m.pid, "since": (m.since_ms or m.started_at_ms) / 1000}


def incarnation_text(m: MemberInfo) -> str:
    """The table's INCARNATION cell: the token's first 8 characters, and since when it runs."""
    if not m.incarnation:
        return "-"
    return f"{m.incarnation[:8]} since {clock_text(m.since_ms or m.started_at_ms)}"


def endpoint_text(advertised: str) -> str:
    """A liveness endpoint without its nonce: ``HOST:PORT``."""
    return advertised.rpartition("/")[0] if "/" in advertised else advertised


async def read_status(client: Any, pools: Iterable[str], prefix: str, *, show_all: bool = True) -> Listing:
    """The named pools (or, given none, every pool found) in name order; unless ``show_all``,
    pools found (never pools named) that have been stale too long are left out."""
    named = sorted(set(pools))
    skipped: list[str] = []
    found = named or await discover_pools(client, prefix, skipped)
    statuses = Listing(
        s for s in [await _read_or_report(client, pool, prefix) for pool in found] if named or show_all or not s.hidden
    )
    statuses.foreign = Foreign(tuple(sorted(skipped)[:FOREIGN_SHOWN]), len(skipped))
    return statuses


def status_json(statuses: Iterable[PoolStatus], foreign: Foreign = NO_FOREIGN) -> dict[str, Any]:
    doc: dict[str, Any] = {"pools": [s.to_json() for s in statuses]}
    if foreign.count:
        doc["foreign_keys"] = foreign.to_json()
    return doc


# ---- the human table ----


def seconds_text(ms: int) -> str:
    if ms < 0:
        return "-"
    if ms < 10_000:
        return f"{ms / 1000:.1f}s"
    return duration_text(ms / 1000)


def duration_text(s: float) -> str:
    s = int(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def clock_text(unix_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix_ms / 1000))


def table(rows: list[list[str]]) -> list[str]:
    """Aligned columns; every cell :func:`~leaderpool.util.printable.printable` (cells come from Redis)."""
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def render(statuses: list[PoolStatus], hidden: int = 0, foreign: Foreign = NO_FOREIGN) -> str:
    """The table; ``hidden`` stale pools left out, and ``foreign`` keys skipped, are counted in last lines."""
    note = f"\n\n({hidden} stale pool(s) not shown: --all lists them, forget deletes one)" if hidden else ""
    note += f"\n\n{foreign.line()}" if foreign.count else ""
    if not statuses:
        return "no pools found" + note
    blocks = []
    for s in statuses:
        if s.problem is not None:
            head = f"pool {s.pool}: unreadable: {s.problem} (leaderpool-cli doctor lists every such key)"
        elif s.leader is None:
            head = f"pool {s.pool}: no leader, {len(s.members)} member(s)"
            if s.stale_since_ms is not None:
                since = clock_text(s.stale_since_ms) if s.stale_since_ms else "unknown"
                head += f" (stale since {since}: no member is alive)"
        else:
            head = (
                f"pool {s.pool}: leader {s.leader.member}, term {s.leader.term}, "
                f"lease {seconds_text(s.leader_pttl_ms)} left, {len(s.members)} member(s)"
            )
            if s.next_in_line is not None:
                link = "connected to" if s.next_connected else "not connected to"
                head += f"; next in line {s.next_in_line}, {link} the leader's liveness endpoint"
        lines = [printable(head)]
        if s.backlog is not None:
            b = s.backlog
            lines.append(
                f"  backlog: {b.jobs} unfinished job(s) ({b.pending} pending, {b.waiting} waiting), "
                f"{b.dead} dead letter(s)"
            )
        if s.singletons:
            lines.append(
                printable(f"  singletons: {singletons_text(s.singletons)} (`leaderpool-cli singletons {s.pool}`)")
            )
        if s.members:
            columns = ["", "MEMBER", "NODE", "HOST", "PID", "STARTED", "UPTIME", "PRIO", "LEASE", "META", "LIVENESS"]
            rows = [[*columns, "INCARNATION"]]
            for m in s.members:
                mark = "*" if s.leader is not None and s.leader.member == m.member else ""
                meta = ",".join(f"{k}={v}" for k, v in sorted(m.meta.items())) or "-"
                rows.append(
                    [
                        mark,
                        m.member,
                        m.node,
                        m.host,
                        str(m.pid),
                        clock_text(m.started_at_ms),
                        duration_text(max(s.now_ms - m.started_at_ms, 0) / 1000),
                        str(m.priority),
                        seconds_text(m.lease_ms),
                        meta,
                        endpoint_text(m.liveness) or "-",
                        incarnation_text(m),
                    ]
                )
            lines += ["  " + line for line in table(rows)]
        blocks.append("\n".join(lines))
    return (
        "\n\n".join(blocks)
        + "\n\n(* = leader; members in the default ranking order: priority, then longest running)"
        + note
    )


def json_text(doc: Any) -> str:
    """A JSON document as ``--json`` prints it (compact, one line, a newline last): the CLI and
    the dashboard's API both write this, so their answers are the same bytes."""
    return json.dumps(doc, separators=(",", ":")) + "\n"


def print_status(
    statuses: list[PoolStatus], as_json: bool, out: TextIO, hidden: int = 0, foreign: Foreign = NO_FOREIGN
) -> None:
    """One frame of ``status`` (and of ``status --watch``): the JSON line or the table, flushed."""
    if as_json:
        out.write(json_text(status_json(statuses, foreign)))
    else:
        out.write(render(statuses, hidden, foreign) + "\n")
    out.flush()
