"""The argparse tree of ``leaderpool-cli``: every command and flag, ``lock``'s ``-- COMMAND``
split, and the hint for a name that starts with '-'.

Only the entry point (:mod:`.main`) imports this module: a command reads its flags through
:class:`~leaderpool.console.args.Options`, never through the parser. Subcommands take the
shared flags (``--redis``, ``--prefix``, the credentials' files) too, and there they only
override the top-level ones when given.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from leaderpool.backend.keys import DEFAULT_PREFIX
from leaderpool.cli import status
from leaderpool.cli.commands import DEFAULT_URL, PROG
from leaderpool.console import credentials
from leaderpool.console.args import OneLineParser, VersionAction

POSITIONAL_COMMANDS = (
    "history", "resign", "evict", "forget", "submit", "call", "multicall", "jobs", "requeue", "drop",
    "whereis", "unregister", "lock", "singletons", "move",
)  # fmt: skip


NO_COMMAND_HINT = f"`{PROG} --help` lists the commands; `{PROG} status` shows every pool"


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str] | None]:
    """The parsed command line, and ``lock``'s command (None for every other command); a bad
    one is one line on stderr and exit 2.

    A command line that names one command (and asks for no top-level help) is parsed by a tree
    holding that command's parser alone: building all twenty took about a tenth of ``status``'s
    start-up. Should that parse fail, the whole tree parses again, for the error line it gives
    (an invalid choice lists every command)."""
    args, command = split_command(list(argv))
    named = set(args) & set(COMMANDS)
    if len(named) == 1 and not {"-h", "--help"} & set(args[: args.index(next(iter(named)))]):
        lean = build_parser(only=next(iter(named)))
        assert isinstance(lean, _LeanParser)
        lean.retry_on_error = True  # the top level only: a command's own errors are the same in both trees
        set_hint(lean, args)
        try:
            return lean.parse_args(args), command
        except _ParseAgain:
            pass
    parser = build_parser()
    set_hint(parser, args)
    if not _command_names(parser) & set(args):  # no command at all: say where the list is
        parser.hint = NO_COMMAND_HINT
    return parser.parse_args(args), command


COMMANDS = (
    "status", "history", "resign", "evict", "forget", "doctor", "schedules", "whereis", "names", "unregister",
    "singletons", "move", "lock", "acl", "demo", "dashboard", "submit", "call", "multicall", "jobs", "requeue", "drop",
)  # fmt: skip
"""Every command, in the order ``--help`` lists them (a test checks it against the parser)."""


class _ParseAgain(Exception):
    """The one-command tree could not parse the line: the whole tree will say why."""


class _LeanParser(OneLineParser):
    retry_on_error = False

    def error(self, message: str) -> NoReturn:
        if self.retry_on_error:
            raise _ParseAgain(message)
        super().error(message)


class _OnlyOne:
    """``add_parser`` for one command only; every other command's parser is a sink."""

    def __init__(self, sub: Any, name: str) -> None:
        self._sub = sub
        self._name = name

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        return self._sub.add_parser(name, **kwargs) if name == self._name else _Sink()


class _Sink:
    """Takes a parser's ``add_argument`` calls and keeps nothing."""

    def add_argument(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    default = None if top else argparse.SUPPRESS  # a subcommand's flag only overrides when given
    parser.add_argument(
        "--redis", metavar="URL", default=default, help=f"Redis URL [LEADERPOOL_REDIS_URL] ({DEFAULT_URL})"
    )
    parser.add_argument(
        "--prefix", metavar="PREFIX", default=default, help=f"key prefix [LEADERPOOL_PREFIX] ({DEFAULT_PREFIX})"
    )
    credentials.add_arguments(parser, default=default)


def build_parser(only: str | None = None) -> OneLineParser:
    """The whole tree, or (``only``) the top level and that command's parser alone."""
    cls = OneLineParser if only is None else _LeanParser
    p = cls(prog=PROG, description="Inspect and operate leaderpool pools.")
    _common(p, top=True)
    p.add_argument("--version", action=VersionAction)
    whole = p.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=cls)
    sub: Any = whole if only is None else _OnlyOne(whole, only)

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
    s.add_argument("--count", metavar="N", help="with --watch: stop after N refreshes (printed or not)")
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

    sc = sub.add_parser(
        "schedules",
        help="periodic schedules: last run, by whom, next slot; pause, resume, each slot's outcome",
        description="List each periodic schedule (its last run, by whom, the next slot); pause or "
        "resume one: 'schedules pause POOL NAME' skips its slots, whoever leads, until "
        "'schedules resume POOL NAME' (held in Redis); 'schedules history POOL [NAME]': how each "
        "recent slot ended (run, skipped while paused, missed).",
    )
    _common(sc, top=False)
    sc.add_argument(
        "action", nargs="?", choices=("pause", "resume", "history"), help="pause or resume a schedule, or its history"
    )
    sc.add_argument("target", nargs="*", metavar="POOL NAME", help="the pool and the schedule (history: NAME optional)")
    sc.add_argument("--count", metavar="N", default=None, help="history: the latest N slots (default 20)")
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
    w.add_argument(
        "--token",
        metavar="TOKEN",
        help="require this token (at least 16 characters; required off loopback) [LEADERPOOL_DASHBOARD_TOKEN]",
    )
    w.add_argument(
        "--allow-host",
        metavar="NAME",
        action="append",
        help="a host name the page may be reached by, besides loopback names, addresses and this machine's name "
        "(repeatable)",
    )
    w.add_argument("--max-streams", metavar="N", help="event streams open at once, at most; one more is 503 (64)")

    from leaderpool.cli import work

    work.add_parsers(sub, _common)
    return p


def _singletons_parsers(sub: Any) -> None:
    """A pool's singletons (leaderpool.singletons)."""
    s = sub.add_parser(
        "singletons", help="a pool's singletons: which member runs each, with its term (exit 1 when none)"
    )
    _common(s, top=False)
    s.add_argument("pool", metavar="POOL")
    s.add_argument("--json", action="store_true", help='print {"singletons": [{"name", "member", "term"}]}')

    m = sub.add_parser(
        "move",
        help="move a singleton to a member by a kind hand-off, and wait until it runs there",
        description="Pin singleton NAME of POOL to MEMBER: the pool's leader hands it over kindly (the old owner "
        "stops and saves its state, MEMBER resumes from it) and it stays there while MEMBER is live. Exit 0 once "
        "it runs on MEMBER; 1 when refused (no such singleton, MEMBER runs no singletons) or not there in time.",
    )
    _common(m, top=False)
    m.add_argument("pool", metavar="POOL")
    m.add_argument("name", metavar="NAME")
    m.add_argument("member", metavar="MEMBER")
    m.add_argument("--timeout", metavar="SECONDS", help="how long to wait for it to run there (10)")


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

    _singletons_parsers(sub)

    lk = sub.add_parser(
        "lock",
        usage=f"{PROG} lock RESOURCE [-n N] [--ttl S] [--timeout S] [--grace S] [--pass-env NAME] -- COMMAND [ARGS...]",
        help="run a command holding a cluster-wide lock (flock(1) across machines)",
        description="Take the lock on RESOURCE, run COMMAND with LEADERPOOL_LOCK_TOKEN (a fencing token that "
        "grows with every acquisition) in its environment, renew the lock while it runs, release it when it "
        "exits and every process it started is gone, and exit with its exit code. SIGTERM stops its whole "
        "process tree; SIGINT and SIGHUP are passed on to it. The Redis credentials are not passed to it "
        "unless --pass-env names them.",
    )
    _common(lk, top=False)
    lk.add_argument("resource", metavar="RESOURCE")
    lk.add_argument(
        "-n", "--permits", metavar="N", help="hold one of N permits of RESOURCE's semaphore (at most N commands run "
        "at once, served in arrival order; every user of RESOURCE must give the same N) instead of its lock",
    )  # fmt: skip
    lk.add_argument("--ttl", metavar="S", help="lock ttl in whole seconds: a holder that dies frees it within it (10)")
    lk.add_argument("--timeout", metavar="S", help="give up (exit 1) when the lock is not free within S seconds")
    lk.add_argument(
        "--grace", metavar="S", help="after SIGTERM, or once the command exits, what is left of its process tree "
        "gets SIGKILL after S seconds (10)",
    )  # fmt: skip
    lk.add_argument("--pass-env", metavar="NAME", action="append", help=credentials.PASS_ENV_HELP)


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


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and its subcommands' parsers."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # argparse has no public walk
    return [parser, *(p for a in subs for p in a.choices.values())]


def _command_names(parser: argparse.ArgumentParser) -> set[str]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name for a in subs for name in a.choices}


def set_hint(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Every error line of ``parser`` ends with :func:`dash_hint`'s hint, if ``argv`` needs one."""
    parsers = _parsers(parser)
    takes_value = {f for p in parsers for a in p._actions if a.nargs != 0 for f in a.option_strings}
    hint = lock_hint(argv, takes_value) or dash_hint(argv, takes_value)
    for p in parsers:
        if isinstance(p, OneLineParser):
            p.hint = hint


def lock_hint(argv: Sequence[str], takes_value: set[str]) -> str | None:
    """For ``lock res echo hi``: the command goes after ``--``; say so, with the line that works."""
    args = list(argv)
    if "lock" not in args or "--" in args:
        return None
    after = args[args.index("lock") + 1 :]
    own: list[str] = []
    positional: list[str] = []
    i = 0
    while i < len(after):
        arg = after[i]
        if arg.startswith("-") and not positional[1:]:
            own.append(arg)
            if arg in takes_value and "=" not in arg and i + 1 < len(after):
                own.append(after[i + 1])
                i += 1
        else:
            positional.append(arg)
        i += 1
    if len(positional) < 2:
        return None
    resource, command = positional[0], positional[1:]
    return f"the command goes after '--': {PROG} {' '.join(['lock', resource, *own, '--', *command])}"


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
