"""``leaderpool-cli``: look at pools and act on them from a shell.

Commands: ``status``, ``history``, ``resign``, ``evict``, ``doctor`` and ``demo``. Bad input is
one line on stderr and exit 2; an unreachable Redis is one line and exit 1; never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TextIO

import redis.exceptions

from leaderpool.cli import doctor, status
from leaderpool.cli.args import (
    EXIT_FAILURE,
    OneLineParser,
    Options,
    UsageError,
    fail,
    positive_integer,
    redis_url_arg,
    seconds,
)
from leaderpool.cli.logs import configure_logging
from leaderpool.clients import DEFAULT_URL, async_client, describe
from leaderpool.errors import REDIS_FAILURES, ConfigError, LeaderpoolError
from leaderpool.keys import DEFAULT_PREFIX, Keyspace, validate_name
from leaderpool.store import HistoryEntry, PoolStore
from leaderpool.watcher import Watcher

PROG = "leaderpool-cli"


class Failure(Exception):
    """A command could not do what was asked: one line, exit 1."""


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    default = None if top else argparse.SUPPRESS  # a subcommand's flag only overrides when given
    parser.add_argument(
        "--redis", metavar="URL", default=default, help=f"Redis URL [LEADERPOOL_REDIS_URL] ({DEFAULT_URL})"
    )
    parser.add_argument(
        "--prefix", metavar="PREFIX", default=default, help=f"key prefix [LEADERPOOL_PREFIX] ({DEFAULT_PREFIX})"
    )


def build_parser() -> OneLineParser:
    p = OneLineParser(prog=PROG, description="Inspect and operate leaderpool pools.")
    _common(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=OneLineParser)

    s = sub.add_parser("status", help="pools, leaders and members")
    _common(s, top=False)
    s.add_argument("--pool", metavar="NAME", action="append", help="only this pool (repeatable)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("--watch", action="store_true", help="redraw on every change until Ctrl-C")
    s.add_argument("--count", metavar="N", help="with --watch: stop after N frames")
    s.add_argument("--for", dest="duration", metavar="SECONDS", help="with --watch: stop after SECONDS")
    s.add_argument("--interval", metavar="SECONDS", help="with --watch: refresh at least this often (1)")

    h = sub.add_parser("history", help="the last leadership transitions of a pool")
    _common(h, top=False)
    h.add_argument("pool", metavar="POOL")
    h.add_argument("--count", metavar="N", help="how many stored transitions to read (20)")
    h.add_argument("--json", action="store_true", help="print JSON")

    r = sub.add_parser("resign", help="ask the leader to hand over, and report who leads now")
    _common(r, top=False)
    r.add_argument("pool", metavar="POOL")
    r.add_argument("--timeout", metavar="SECONDS", help="how long to wait for the hand-over (twice the lease)")

    e = sub.add_parser(
        "evict",
        help="remove a (stuck) member; a live member rejoins at its next heartbeat",
        description="Remove MEMBER and its lead, if it has it, from POOL. A member that is still alive "
        "rejoins at its next heartbeat, as the youngest member; a dead one is gone for good.",
    )
    _common(e, top=False)
    e.add_argument("pool", metavar="POOL")
    e.add_argument("member", metavar="MEMBER")

    d = sub.add_parser("doctor", help="check that Redis is set up for leaderpool")
    _common(d, top=False)
    d.add_argument("--json", action="store_true", help="print JSON")
    d.add_argument("--strict", action="store_true", help="exit non-zero on warnings too")

    m = sub.add_parser("demo", help="an embedded Redis and three workers replay the failover experiments")
    _common(m, top=False)
    m.add_argument("--ttl", metavar="SECONDS", help="the workers' lease (2)")
    m.add_argument("--pool", metavar="NAME", help="pool name (demo; demo-XXXX with --redis)")
    m.add_argument("--keep-logs", action="store_true", help="keep the workers' logs and say where")
    return p


def _name(kind: str) -> Callable[[object], str]:
    def convert(raw: object) -> str:
        try:
            return validate_name(kind, str(raw))
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    return convert


# ---- commands ----


async def cmd_status(client: Any, o: Options, prefix: str, out: TextIO) -> int:
    pools = [_as(o, "--pool", _name("pool"), p) for p in (o.ns.pool or [])]
    as_json = bool(o.ns.json)
    if not o.ns.watch:
        for flag, dest in (("--count", "count"), ("--for", "duration"), ("--interval", "interval")):
            if getattr(o.ns, dest) is not None:
                raise UsageError(flag, "only applies with --watch")
        statuses = await status.read_status(client, pools, prefix)
        _print_status(statuses, as_json, out)
        return 0
    count = o.get("count", "--count", None, positive_integer, default=0)
    duration = o.get("duration", "--for", None, seconds, default=0.0)
    interval = o.get("interval", "--interval", None, seconds, default=1.0)
    await watch_status(
        client, pools, prefix, as_json=as_json, count=count, duration=duration, interval=interval, out=out
    )
    return 0


def _print_status(statuses: list[status.PoolStatus], as_json: bool, out: TextIO) -> None:
    if as_json:
        out.write(json.dumps(status.status_json(statuses), separators=(",", ":")) + "\n")
    else:
        out.write(status.render(statuses) + "\n")
    out.flush()


async def watch_status(
    client: Any,
    pools: list[str],
    prefix: str,
    *,
    as_json: bool,
    count: int,
    duration: float,
    interval: float,
    out: TextIO,
) -> None:
    """Redraw whenever the watcher reports a change in a shown pool, and every ``interval``.

    On a terminal every refresh redraws (lease countdowns move); elsewhere (a pipe, a test) a
    frame is printed only when a pool's leader, term or members changed.
    """
    changed = asyncio.Event()
    watcher = Watcher.shared(client)
    watched: set[str] = set()
    tty = out.isatty()
    frames = 0
    shown: tuple[Any, ...] | None = None
    deadline = time.monotonic() + duration if duration else None

    def listener(source: str, payload: str) -> None:
        if not (source == "keyspace" and payload == "expire"):  # "expire" is only a lease renewal
            changed.set()

    try:
        while True:
            changed.clear()
            statuses = await status.read_status(client, pools, prefix)
            for s in statuses:
                if s.pool not in watched:
                    await watcher.watch(Keyspace(s.pool, prefix), listener)
                    watched.add(s.pool)
            identity = tuple(s.identity() for s in statuses)
            if tty or identity != shown:
                if tty and not as_json:
                    out.write("\x1b[H\x1b[2J")
                    out.write(f"leaderpool status  {time.strftime('%H:%M:%S')}  (Ctrl-C to stop)\n\n")
                elif frames and not as_json:
                    out.write(f"\n--- {time.strftime('%H:%M:%S')} ---\n")
                _print_status(statuses, as_json, out)
                shown = identity
                frames += 1
                if count and frames >= count:
                    return
            wait = interval if deadline is None else min(interval, deadline - time.monotonic())
            if wait <= 0:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), wait)
            if changed.is_set():
                await asyncio.sleep(0.05)  # let a burst (left, released, elected) settle into one frame
    finally:
        for pool in watched:
            with contextlib.suppress(*REDIS_FAILURES):
                await watcher.unwatch(Keyspace(pool, prefix), listener)


def history_rows(entries: list[HistoryEntry]) -> list[dict[str, Any]]:
    """The stored transitions, oldest first, plus an inferred ``expired`` row wherever an
    ``elected`` follows an ``elected`` with no release between (the earlier lease ran out; its
    time is unknown, so ``t`` is null)."""
    rows: list[dict[str, Any]] = []
    open_term: HistoryEntry | None = None
    for e in entries:
        if e.event == "elected":
            if open_term is not None and open_term.term != e.term:
                rows.append(
                    {"id": None, "event": "expired", "term": open_term.term, "member": open_term.member,
                     "reason": "lease_expired", "t": None}
                )  # fmt: skip
            open_term = e
        elif e.event == "released" and open_term is not None and open_term.term == e.term:
            open_term = None
        rows.append(
            {"id": e.entry_id, "event": e.event, "term": e.term, "member": e.member, "reason": e.reason,
             "t": e.t_ms / 1000}
        )  # fmt: skip
    return rows


async def cmd_history(client: Any, o: Options, prefix: str, out: TextIO) -> int:
    pool = _as(o, "POOL", _name("pool"), o.ns.pool)
    count = o.get("count", "--count", None, positive_integer, default=20)
    rows = history_rows(await PoolStore(client, Keyspace(pool, prefix)).history(count))
    if o.ns.json:
        out.write(json.dumps({"pool": pool, "transitions": rows}, separators=(",", ":")) + "\n")
        return 0
    if not rows:
        out.write(f"pool {pool}: no leadership transitions recorded\n")
        return 0
    table = [["TIME", "EVENT", "TERM", "MEMBER", "REASON"]]
    for r in rows:
        when = "-" if r["t"] is None else status.clock_text(int(r["t"] * 1000)) + f".{int(r['t'] * 1000) % 1000:03d}"
        table.append([when, r["event"], str(r["term"]), r["member"], r["reason"] or "-"])
    out.write(f"pool {pool}: last {len(rows)} transition(s), oldest first\n")
    out.write("\n".join("  " + line for line in status.table(table)) + "\n")
    return 0


async def cmd_resign(client: Any, o: Options, prefix: str, out: TextIO) -> int:
    pool = _as(o, "POOL", _name("pool"), o.ns.pool)
    given: float | None = o.get("timeout", "--timeout", None, seconds, default=None)
    store = PoolStore(client, Keyspace(pool, prefix))
    found = await store.leader_record()
    if found is None:
        raise Failure(f"pool {pool} has no leader: nothing to resign")
    before, pttl_ms, _info = found
    timeout = given if given is not None else max(2 * pttl_ms / 1000, 1.0) + 0.5
    started = time.monotonic()
    if await store.request_resign() == 0:
        raise Failure(f"nobody is listening on pool {pool}: its leader {before.member} cannot be asked to resign")
    now = None
    while time.monotonic() - started < timeout:
        record = await store.leader_record()
        now = record[0] if record else None
        if now is not None and now != before:
            break
        await asyncio.sleep(0.02)
    took = f"{(time.monotonic() - started) * 1000:.0f} ms"
    if now is None or now == before:
        state = "the lead is vacant" if now is None else f"{before.member} still leads term {before.term}"
        raise Failure(f"pool {pool}: no hand-over within {timeout:g}s ({state})")
    if now.member == before.member:
        raise Failure(
            f"pool {pool}: {before.member} resigned but was elected again (term {now.term}): no other member could lead"
        )
    out.write(
        f"pool {pool}: {before.member} (term {before.term}) handed over to {now.member} (term {now.term}) in {took}\n"
    )
    return 0


async def cmd_evict(client: Any, o: Options, prefix: str, out: TextIO) -> int:
    pool = _as(o, "POOL", _name("pool"), o.ns.pool)
    member = _as(o, "MEMBER", _name("member id"), o.ns.member)
    was_member, released, _ = await PoolStore(client, Keyspace(pool, prefix)).leave(member, "evicted", event="evicted")
    if not was_member and not released:
        raise Failure(f"{member} is not a member of pool {pool}")
    lead = f"; it led term {released}: the lead is free and the next member takes over" if released else ""
    out.write(
        f"evicted {member} from pool {pool}{lead}\n"
        "(if that member is still alive, it rejoins at its next heartbeat as the youngest member)\n"
    )
    return 0


async def cmd_doctor(client: Any, o: Options, prefix: str, out: TextIO, where: str) -> int:
    checks = await doctor.run_checks(client)
    if o.ns.json:
        payload = {"redis": where, "checks": [c.__dict__ for c in checks]}
        out.write(json.dumps(payload, separators=(",", ":")) + "\n")
    else:
        out.write(doctor.render(where, checks) + "\n")
    bad = {"fail", "warn"} if o.ns.strict else {"fail"}
    return EXIT_FAILURE if any(c.level in bad for c in checks) else 0


def _as(o: Options, where: str, convert: Callable[[object], Any], value: object) -> Any:
    try:
        return convert(value)
    except ValueError as exc:
        raise UsageError(where, str(exc)) from None


# ---- entry point ----


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    o = Options(ns)
    configure_logging("console", "warning")  # the library's events go to stderr, never stdout
    try:
        url = o.get("redis", "--redis", "LEADERPOOL_REDIS_URL", redis_url_arg, default=DEFAULT_URL)
        prefix = o.get("prefix", "--prefix", "LEADERPOOL_PREFIX", _name("prefix"), default=DEFAULT_PREFIX)
        if ns.command == "demo":
            from leaderpool.cli import demo

            given = o.source("redis", "--redis", None) is not None
            return demo.main(ns, o, redis_url=url if given else None, prefix=prefix)
        commands: dict[str, Callable[[Any, Options, str, TextIO], Coroutine[Any, Any, int]]] = {
            "status": cmd_status,
            "history": cmd_history,
            "resign": cmd_resign,
            "evict": cmd_evict,
            "doctor": lambda c, o_, p, out: cmd_doctor(c, o_, p, out, describe(url)),
        }
        return asyncio.run(_run(commands[ns.command], url, o, prefix))
    except UsageError as exc:
        fail(PROG, str(exc))
    except Failure as exc:
        fail(PROG, str(exc), EXIT_FAILURE)
    except REDIS_FAILURES as exc:
        fail(PROG, f"cannot reach Redis at {describe(url)}: {exc or type(exc).__name__}", EXIT_FAILURE)
    except redis.exceptions.RedisError as exc:
        fail(PROG, f"Redis at {describe(url)} refused: {exc}", EXIT_FAILURE)
    except LeaderpoolError as exc:
        fail(PROG, str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        return 130


async def _run(
    command: Callable[[Any, Options, str, TextIO], Coroutine[Any, Any, int]], url: str, o: Options, prefix: str
) -> int:
    client = async_client(url, socket_connect_timeout=5, socket_timeout=10)
    try:
        return await command(client, o, prefix, sys.stdout)
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()


if __name__ == "__main__":
    sys.exit(main())
