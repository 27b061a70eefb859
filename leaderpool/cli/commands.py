"""The commands of ``leaderpool-cli``: the parser, one function per command, and the one place
that turns a failure into one line and an exit code.

One-shot commands (``status``, ``history``, ``resign``, ``evict``, ``forget``, ``doctor``, and
``whereis``, ``names``, ``unregister`` for unique names) run
on a blocking redis-py client through :mod:`leaderpool.console.oneshot`, with no event loop and no log set-up
(the library is silent unless configured); ``status --watch``, ``demo`` and ``dashboard`` run on
asyncio; ``lock`` runs a command under a cluster-wide lock (:mod:`.lock`).

Exit codes: 0 done; 1 a command could not do what was asked, or Redis is unreachable; 2 bad
input, or a Redis that refuses the configuration (credentials, ACL permissions, TLS: see
:mod:`leaderpool.console.preflight`); 130 Ctrl-C. ``lock`` exits with its command's exit code (127: it could not
be started).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from leaderpool.backend.keys import DEFAULT_PREFIX, Keyspace
from leaderpool.backend.pool_store import HistoryEntry, PoolStore
from leaderpool.cli import status
from leaderpool.console import credentials, preflight
from leaderpool.console.args import (
    EXIT_FAILURE,
    EXIT_USAGE,
    Failure,
    OneLineParser,
    Options,
    UsageError,
    VersionAction,
    fail,
    positive_integer,
    seconds,
)
from leaderpool.console.oneshot import Blocking, run
from leaderpool.util.naming import validate_name

PROG = "leaderpool-cli"
DEFAULT_URL = "redis://localhost:6379/0"  # leaderpool.backend.clients.DEFAULT_URL, without importing redis.asyncio
POSITIONAL_COMMANDS = (
    "history", "resign", "evict", "forget", "submit", "call", "multicall", "jobs", "requeue", "drop",
    "whereis", "unregister", "lock",
)  # fmt: skip


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    default = None if top else argparse.SUPPRESS  # a subcommand's flag only overrides when given
    parser.add_argument(
        "--redis", metavar="URL", default=default, help=f"Redis URL [LEADERPOOL_REDIS_URL] ({DEFAULT_URL})"
    )
    parser.add_argument(
        "--prefix", metavar="PREFIX", default=default, help=f"key prefix [LEADERPOOL_PREFIX] ({DEFAULT_PREFIX})"
    )
    credentials.add_arguments(parser, default=default)


def build_parser() -> OneLineParser:
    p = OneLineParser(prog=PROG, description="Inspect and operate leaderpool pools.")
    _common(p, top=True)
    p.add_argument("--version", action=VersionAction)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=OneLineParser)

    s = sub.add_parser("status", help="pools, leaders and members")
    _common(s, top=False)
    s.add_argument(
        "--pool",
        metavar="NAME",
        action="append",
        help="only this pool (repeatable); a pool Redis holds no key of is exit 1, except with --watch",
    )
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument(
        "--all",
        action="store_true",
        help=f"also pools stale (no leader, no live member) for over {status.STALE_HIDDEN_AFTER_S // 60} minutes",
    )
    s.add_argument("--watch", action="store_true", help="redraw on every change until Ctrl-C")
    s.add_argument("--count", metavar="N", help="with --watch: stop after N frames")
    s.add_argument("--for", dest="duration", metavar="SECONDS", help="with --watch: stop after SECONDS")
    s.add_argument("--interval", metavar="SECONDS", help="with --watch: refresh at least this often (1)")

    h = sub.add_parser("history", help="the last leadership transitions of a pool")
    _common(h, top=False)
    h.add_argument("pool", metavar="POOL")
    h.add_argument("--count", metavar="N", help="how many stored transitions to read (20)")
    h.add_argument("--json", action="store_true", help='print JSON (no reason: "", as in the table)')

    r = sub.add_parser(
        "resign",
        help="ask the leader to hand over, and report who leads now",
        description="Ask POOL's leader to hand over, wait for the new leader, then wait (up to the new "
        "leader's lease) for it to renew its lease, which shows it is acting. Exit 1 if it does not.",
    )
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

    f = sub.add_parser(
        "forget",
        help="delete a pool whose members are gone (its keys, history included)",
        description="Delete every key of POOL. Refused while the pool has a leader or a live member, "
        "unless --force (live members then register again at their next heartbeat).",
    )
    _common(f, top=False)
    f.add_argument("pool", metavar="POOL")
    f.add_argument("--force", action="store_true", help="forget it even with live members")

    d = sub.add_parser("doctor", help="check that Redis is set up for leaderpool")
    _common(d, top=False)
    d.add_argument("--json", action="store_true", help="print JSON")
    d.add_argument("--strict", action="store_true", help="exit non-zero on warnings too")

    sc = sub.add_parser("schedules", help="periodic schedules: last run, by whom, next slot")
    _common(sc, top=False)
    sc.add_argument("--pool", metavar="NAME", action="append", help="only this pool (repeatable)")
    sc.add_argument("--json", action="store_true", help="print JSON")
    _names_parsers(sub)

    a = sub.add_parser(
        "acl",
        help="print the ACL SETUSER line giving a user exactly what leaderpool needs under the prefix",
        description="Print the minimal Redis ACL rules for a leaderpool user of PREFIX, as one ACL SETUSER "
        "line for redis-cli (PASSWORD is a placeholder: replace it). Talks to no Redis.",
    )
    _common(a, top=False)
    a.add_argument("--user", metavar="NAME", help="the ACL user's name (leaderpool)")
    a.add_argument("--cluster", action="store_true", help="for a Redis Cluster: also CLUSTER SLOTS and COMMAND")

    m = sub.add_parser("demo", help="an embedded Redis and three workers replay the failover experiments")
    _common(m, top=False)
    m.add_argument("--ttl", metavar="SECONDS", help="the workers' lease (2)")
    m.add_argument("--pool", metavar="NAME", help="pool name (demo; demo-XXXX with --redis)")
    m.add_argument("--keep-logs", action="store_true", help="keep the workers' logs and say where")

    w = sub.add_parser(
        "dashboard",
        help="a live web page of every pool (needs leaderpool[dashboard])",
        description="Serve a web page showing every pool, its leader, members and history, updated live. "
        "Resign and evict buttons work only with --allow-actions.",
    )
    _common(w, top=False)
    w.add_argument("--host", metavar="HOST", help="address to listen on (127.0.0.1)")
    w.add_argument("--port", metavar="PORT", help="port to listen on (8765; 0 picks a free one)")
    w.add_argument("--allow-actions", action="store_true", help="let the page resign leaders and evict members")

    from leaderpool.cli import work

    work.add_parsers(sub, _common)
    return p


def _names_parsers(sub: Any) -> None:
    """Unique names and cluster-wide locks (leaderpool.names.registry, leaderpool.locks.blocking_lock)."""
    w = sub.add_parser("whereis", help="who holds a unique name (exit 1 when nobody does)")
    _common(w, top=False)
    w.add_argument("name", metavar="NAME")
    w.add_argument("--json", action="store_true", help='print {"name", "member", "pool", "node", "value"}')

    n = sub.add_parser("names", help="every unique name held, with its holder")
    _common(n, top=False)
    n.add_argument("--json", action="store_true", help="print JSON")

    u = sub.add_parser(
        "unregister",
        help="remove a unique name from whoever holds it (an operator's action)",
        description="Remove NAME from its holder; a standby takes it at once, the holder learns at its next "
        "heartbeat. Exit 1 when nobody holds it.",
    )
    _common(u, top=False)
    u.add_argument("name", metavar="NAME")

    lk = sub.add_parser(
        "lock",
        usage=f"{PROG} lock RESOURCE [--ttl S] [--timeout S] -- COMMAND [ARGS...]",
        help="run a command holding a cluster-wide lock (flock(1) across machines)",
        description="Take the lock on RESOURCE, run COMMAND with LEADERPOOL_LOCK_TOKEN (a fencing token that "
        "grows with every acquisition) in its environment, renew the lock while it runs, release it when it "
        "exits, and exit with its exit code. SIGTERM, SIGINT and SIGHUP are passed on to it.",
    )
    _common(lk, top=False)
    lk.add_argument("resource", metavar="RESOURCE")
    lk.add_argument("--ttl", metavar="S", help="lock ttl in whole seconds: a holder that dies frees it within it (10)")
    lk.add_argument("--timeout", metavar="S", help="give up (exit 1) when the lock is not free within S seconds")


def split_command(args: list[str]) -> tuple[list[str], list[str] | None]:
    """``lock ... -- COMMAND ARGS``: the CLI's own arguments and the command (None: the
    subcommand is not ``lock``, whose ``--`` argparse handles as usual)."""
    i = 0
    while i < len(args) and args[i].startswith("-"):  # the top-level --redis URL, --prefix P
        i += 1 if "=" in args[i] or args[i] not in ("--redis", "--prefix") else 2
    if i >= len(args) or args[i] != "lock" or "--" not in args[i:]:
        return args, None
    cut = args.index("--", i)
    return args[:cut], args[cut + 1 :]


def cmd_lock(url: str, o: Options, command: list[str] | None) -> int:
    from leaderpool.cli.lock import run_locked

    resource = _as("RESOURCE", _name("lock resource"), o.ns.resource)
    ttl = o.get("ttl", "--ttl", None, seconds, default=10.0)
    if not ttl.is_integer() or ttl < 1:
        raise UsageError(
            "--ttl", f"must be a whole number of seconds, at least 1 (python-redis-lock's unit), got {ttl:g}"
        )
    timeout: float | None = o.get("timeout", "--timeout", None, seconds, default=None)
    if not command:
        raise UsageError(None, "lock needs a command to run after '--': lock RESOURCE -- COMMAND [ARGS...]")
    from leaderpool.errors import RedisAuthFailed, RedisUnavailable

    try:
        return run_locked(url, resource, int(ttl), timeout, command)
    except (RedisUnavailable, RedisAuthFailed) as exc:  # the backend's error: the CLI's usual line for it
        if exc.__cause__ is None:
            raise
        raise exc.__cause__ from None


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and its subcommands' parsers."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # argparse has no public walk
    return [parser, *(p for a in subs for p in a.choices.values())]


def set_hint(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Every error line of ``parser`` ends with :func:`dash_hint`'s hint, if ``argv`` needs one."""
    parsers = _parsers(parser)
    takes_value = {f for p in parsers for a in p._actions if a.nargs != 0 for f in a.option_strings}
    hint = dash_hint(argv, takes_value)
    for p in parsers:
        if isinstance(p, OneLineParser):
            p.hint = hint


def dash_hint(argv: Sequence[str], takes_value: set[str]) -> str | None:
    """For ``history -dash``: a pool or member name that starts with '-' reads as a flag, so
    argparse cannot accept it; say how to pass it (after ``--``). ``takes_value``: the flags
    whose next argument is their value (``--count -1`` is a bad count, not a name)."""
    args = list(argv)
    command = next((a for a in args if a in POSITIONAL_COMMANDS), None)
    if command is None or "--" in args:
        return None
    after = args[args.index(command) + 1 :]
    for i, arg in enumerate(after):
        flag_value = i > 0 and after[i - 1] in takes_value
        if arg.startswith("-") and not arg.startswith("--") and arg not in ("-", "-h") and not flag_value:
            rest = [a for a in after if a != arg]
            return f"a name that starts with '-' goes after '--': {PROG} {' '.join([command, *rest, '--', arg])}"
    return None


def _name(kind: str) -> Callable[[object], str]:
    def convert(raw: object) -> str:
        try:
            return validate_name(kind, str(raw))
        except ValueError as exc:  # ConfigError, without importing leaderpool.errors (and redis-py)
            raise ValueError(str(exc)) from None

    return convert


def _as(where: str, convert: Callable[[object], Any], value: object) -> Any:
    try:
        return convert(value)
    except ValueError as exc:
        raise UsageError(where, str(exc)) from None


# ---- one-shot commands: a Blocking client, no event loop ----


def cmd_status(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    pools = [_as("--pool", _name("pool"), p) for p in (o.ns.pool or [])]
    for flag, dest in (("--count", "count"), ("--for", "duration"), ("--interval", "interval")):
        if getattr(o.ns, dest) is not None:
            raise UsageError(flag, "only applies with --watch")
    missing = [p for p in sorted(set(pools)) if not run(status.pool_exists(client, p, prefix))]
    if missing:
        raise Failure(f"no pool named {', '.join(missing)} (prefix {prefix}): status without --pool lists them")
    found = run(status.read_status(client, pools, prefix))
    shown = found if pools or o.ns.all else [s for s in found if not s.hidden]
    print_status(shown, bool(o.ns.json), out, hidden=len(found) - len(shown))
    return EXIT_FAILURE if any(s.problem for s in shown) else 0  # a pool that could not be read


def print_status(statuses: list[status.PoolStatus], as_json: bool, out: TextIO, hidden: int = 0) -> None:
    if as_json:
        out.write(json.dumps(status.status_json(statuses), separators=(",", ":")) + "\n")
    else:
        out.write(status.render(statuses, hidden) + "\n")
    out.flush()


def history_rows(entries: list[HistoryEntry]) -> list[dict[str, Any]]:
    """The stored transitions, oldest first, plus an inferred ``expired`` row wherever an
    ``elected`` follows an ``elected`` with no release between (the earlier lease ran out; its
    time is unknown, so ``t`` is null). A transition without a reason (an election by claim) has
    ``reason`` ``""``, in the JSON and in the table alike (a blank last column)."""
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


def cmd_history(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    pool = _as("POOL", _name("pool"), o.ns.pool)
    count = o.get("count", "--count", None, positive_integer, default=20)
    rows = history_rows(run(PoolStore(client, Keyspace(pool, prefix)).history(count)))
    if o.ns.json:
        out.write(json.dumps({"pool": pool, "transitions": rows}, separators=(",", ":")) + "\n")
        return 0
    if not rows:
        out.write(f"pool {pool}: no leadership transitions recorded\n")
        return 0
    table = [["TIME", "EVENT", "TERM", "MEMBER", "REASON"]]
    for r in rows:
        when = "-" if r["t"] is None else status.clock_text(int(r["t"] * 1000)) + f".{int(r['t'] * 1000) % 1000:03d}"
        table.append([when, r["event"], str(r["term"]), r["member"], r["reason"]])
    out.write(f"pool {pool}: last {len(rows)} transition(s), oldest first\n")
    out.write("\n".join("  " + line for line in status.table(table)) + "\n")
    return 0


def cmd_resign(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    from leaderpool.cli.resign import resign

    pool = _as("POOL", _name("pool"), o.ns.pool)
    given: float | None = o.get("timeout", "--timeout", None, seconds, default=None)
    out.write(resign(PoolStore(client, Keyspace(pool, prefix)), given) + "\n")
    return 0


def cmd_evict(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    pool = _as("POOL", _name("pool"), o.ns.pool)
    member = _as("MEMBER", _name("member id"), o.ns.member)
    out.write(run(evict(PoolStore(client, Keyspace(pool, prefix)), member)) + "\n")
    return 0


async def evict(store: PoolStore, member: str) -> str:
    """Remove ``member`` (and its lead) from the pool; the lines to print, or :class:`Failure`.
    A coroutine, so that the dashboard awaits it on its asyncio client and the CLI runs it on a
    :class:`Blocking` one."""
    from leaderpool.names.registry import NameStore

    pool, names = store.keys.pool, NameStore(store.client, store.keys.prefix)
    # Read before the leave: a live member drops its own names at its first beat after the
    # eviction, which can come before our drop_owner below; they are freed all the same.
    held = {owner.name for owner in await names.read() if (owner.pool, owner.member) == (pool, member)}
    was_member, released, _ = await store.leave(member, "evicted", event="evicted")
    if not was_member and not released:
        raise Failure(f"{member} is not a member of pool {pool}")
    lead = f"; it led term {released}: the lead is free and the next member takes over" if released else ""
    freed = sorted(held | set(await names.drop_owner(pool, member)))  # no member, no names
    if freed:
        lead += f"; its names are free: {', '.join(freed)}"
    return (
        f"evicted {member} from pool {pool}{lead}\n"
        "(if that member is still alive, it rejoins at its next heartbeat as the youngest member)"
    )


def cmd_forget(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    from leaderpool.cli.forget import forget

    pool = _as("POOL", _name("pool"), o.ns.pool)
    out.write(forget(client, Keyspace(pool, prefix), force=bool(o.ns.force)) + "\n")
    return 0


def cmd_doctor(client: Blocking, o: Options, prefix: str, out: TextIO, where: str) -> int:
    from leaderpool.cli import doctor
    from leaderpool.cli.doctor_data import check_pool_data

    checks = run(doctor.run_checks(client))
    checks.append(run(check_pool_data(client, prefix)))  # hostile or broken data in the pools
    if o.ns.json:
        payload = {"redis": where, "checks": [c.__dict__ for c in checks]}
        out.write(json.dumps(payload, separators=(",", ":")) + "\n")
    else:
        out.write(doctor.render(where, checks) + "\n")
    bad = {"fail", "warn"} if o.ns.strict else {"fail"}
    return EXIT_FAILURE if any(c.level in bad for c in checks) else 0


def cmd_schedules(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    from leaderpool.cli import schedules

    pools = [_as("--pool", _name("pool"), p) for p in (o.ns.pool or [])]
    found = schedules.read(client, pools, prefix)
    empty = [p.pool for p in found if not p.schedules]
    if empty:
        raise Failure(f"no schedules in pool {', '.join(empty)} (prefix {prefix})")
    if o.ns.json:
        out.write(json.dumps({"pools": [p.to_json() for p in found]}, separators=(",", ":")) + "\n")
    else:
        out.write(schedules.render(found) + "\n")
    return 0


def cmd_whereis(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    from leaderpool.cli import names

    return names.whereis(client, _as("NAME", _name("name"), o.ns.name), prefix, bool(o.ns.json), out)


def cmd_names(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    from leaderpool.cli import names

    return names.list_names(client, prefix, bool(o.ns.json), out)


def cmd_unregister(client: Blocking, o: Options, prefix: str, out: TextIO) -> int:
    from leaderpool.cli import names

    return names.unregister(client, _as("NAME", _name("name"), o.ns.name), prefix, out)


ONE_SHOT: dict[str, Callable[[Blocking, Options, str, TextIO], int]] = {
    "status": cmd_status,
    "history": cmd_history,
    "resign": cmd_resign,
    "evict": cmd_evict,
    "forget": cmd_forget,
    "schedules": cmd_schedules,
    "whereis": cmd_whereis,
    "names": cmd_names,
    "unregister": cmd_unregister,
}


def _one_shot(command: str, url: str, o: Options, prefix: str) -> int:
    """Run a one-shot command on :mod:`.resp`'s small client where it can take the URL (redis-py,
    and its start-up time, only for ``rediss://``, URL options and ``doctor``)."""
    from leaderpool.cli import resp

    sync: Any
    if command != "doctor" and resp.handles(url):
        sync = resp.Client(url, connect_timeout_s=5, timeout_s=10)
    else:
        mismatch = preflight.tls_mismatch(url)
        if mismatch is not None:
            fail(PROG, mismatch.message)
        from leaderpool.backend.connect import blocking_client

        sync = blocking_client(url, socket_connect_timeout=5, socket_timeout=10)
    try:
        client = Blocking(sync)
        if command == "doctor":
            return cmd_doctor(client, o, prefix, sys.stdout, preflight.redact(url))
        return ONE_SHOT[command](client, o, prefix, sys.stdout)
    finally:
        sync.close()


# ---- entry point ----


def main(argv: Sequence[str] | None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    args, command = split_command(args)
    parser = build_parser()
    set_hint(parser, args)
    ns = parser.parse_args(args)
    o = Options(ns)
    url = DEFAULT_URL
    try:
        url = credentials.redis_url(o, DEFAULT_URL)
        prefix = o.get("prefix", "--prefix", "LEADERPOOL_PREFIX", _name("prefix"), default=DEFAULT_PREFIX)
        if ns.command == "acl":
            from leaderpool.backend.acl import setuser_line

            user = _as("--user", _name("user"), ns.user or "leaderpool")
            sys.stdout.write(setuser_line(user, prefix, cluster=bool(ns.cluster)) + "\n")
            return 0
        if ns.command == "demo" or (ns.command == "status" and ns.watch):
            from leaderpool.cli.main import interrupts_raise

            interrupts_raise()  # these clean up (workers, a redis-server, subscriptions) on Ctrl-C
        if ns.command == "demo":
            from leaderpool.cli import demo
            from leaderpool.console.logs import configure_logging

            configure_logging("console", "warning")  # the library's events go to stderr, never stdout
            given = any(o.source(d, f, None) for d, f in (("redis", "--redis"), ("redis_url_file", "--redis-url-file")))
            return demo.main(ns, o, redis_url=url if given else None, prefix=prefix)
        if ns.command == "lock":
            return cmd_lock(url, o, command)
        if ns.command == "status" and ns.watch:
            from leaderpool.cli.watch import watch

            pools = [_as("--pool", _name("pool"), p) for p in (ns.pool or [])]
            return watch(url, o, pools, prefix, sys.stdout)
        if ns.command == "dashboard":
            from leaderpool.cli.dashboard.command import dashboard

            return dashboard(url, o, prefix)
        from leaderpool.cli import work

        if ns.command in work.COMMANDS:
            return work.run_command(ns, o, url, _as("POOL", _name("pool"), ns.pool), prefix, sys.stdout)
        return _one_shot(ns.command, url, o, prefix)
    except UsageError as exc:
        fail(PROG, str(exc))
    except Failure as exc:
        fail(PROG, str(exc), EXIT_FAILURE)
    except Exception as exc:
        from leaderpool.errors import LeaderpoolError

        if isinstance(exc, LeaderpoolError):
            fail(PROG, str(exc), EXIT_FAILURE)
        problem = preflight.classify(exc, url)
        if problem is not None:
            fail(PROG, problem.message, EXIT_USAGE if problem.is_config else EXIT_FAILURE)
        import redis.exceptions

        from leaderpool.cli.resp import ReplyError

        if isinstance(exc, (redis.exceptions.RedisError, ReplyError)):
            fail(PROG, f"Redis at {preflight.redact(url)} refused: {exc}", EXIT_FAILURE)
        raise
