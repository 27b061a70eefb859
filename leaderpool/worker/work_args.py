"""The worker's flags for periodic schedules (``--every``, ``--cron``, ``--catch-up``,
``--overlap``, ``--jitter``, ``--schedule-grace``, ``--schedule-name``) and the leader-only
command (``--exec -- COMMAND``, for the whole lead, or once per slot with a schedule), validated
into :class:`LeaderWork`.
:mod:`leaderpool.worker.settings` adds them to its parser and calls :func:`parse_leader_work`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass

from leaderpool.console.args import Options, UsageError, choice, seconds
from leaderpool.console.credentials import PASS_ENV_HELP, pass_env
from leaderpool.errors import ConfigError
from leaderpool.schedules.schedule import CatchUp, Overlap, Schedule

EXEC_USAGE = "--exec -- COMMAND [ARGS...]"


@dataclass(frozen=True)
class LeaderWork:
    """What the leader runs besides a plain task: a schedule for it, or a command instead."""

    schedule: Schedule | None = None
    schedule_grace_s: float = 0.0
    exec_argv: tuple[str, ...] = ()
    pass_env: tuple[str, ...] = ()
    """``--pass-env``: the credential variables the command inherits after all."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("periodic schedules and leader-only commands")
    g.add_argument(
        "--every", metavar="SECONDS",
        help="run the task once per slot, every SECONDS (on the epoch's grid) [LEADERPOOL_EVERY]",
    )  # fmt: skip
    g.add_argument(
        "--cron", metavar="EXPR", help='run the task once per slot of a cron expression, UTC ("*/5 * * * *"; '
        'a 6th field is the seconds: "* * * * * */10" is every 10 s) [LEADERPOOL_CRON]',
    )  # fmt: skip
    g.add_argument(
        "--catch-up", metavar="once|skip|all|SECONDS",
        help="missed slots (later than the grace) run once, are skipped, or each run, newest first (all; "
        "SECONDS: those of the last SECONDS) (once) [LEADERPOOL_CATCH_UP]",
    )  # fmt: skip
    g.add_argument(
        "--overlap", metavar="|".join(o.value for o in Overlap),
        help="slots that come due while a run goes on: each runs after it, late (buffer_all); the latest "
        "does, the others are skipped (buffer_one); all skipped (skip); each starts on time beside it "
        "(allow: an async task); or it is cancelled (cancel_other: an async task) [LEADERPOOL_OVERLAP]",
    )  # fmt: skip
    g.add_argument(
        "--jitter", metavar="SECONDS",
        help="start each slot's run up to SECONDS late, by the same amount on every member (0) [LEADERPOOL_JITTER]",
    )  # fmt: skip
    g.add_argument(
        "--schedule-grace", metavar="SECONDS",
        help="how late a slot may start before it counts as missed (2 x ttl) [LEADERPOOL_SCHEDULE_GRACE]",
    )  # fmt: skip
    g.add_argument(
        "--schedule-name", metavar="NAME", help="the schedule's name in Redis (the --task) [LEADERPOOL_SCHEDULE_NAME]"
    )
    g.add_argument(
        "--exec", action="store_true", default=None,
        help=f"{EXEC_USAGE}: run a program while this member leads (with --every/--cron: once per slot) "
        "[LEADERPOOL_EXEC='COMMAND ARGS', split as a shell would]",
    )  # fmt: skip
    g.add_argument(
        "--pass-env", metavar="NAME", action="append", help=f"with --exec: {PASS_ENV_HELP} [LEADERPOOL_PASS_ENV]"
    )


def split_command(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """The worker's own arguments, and the command after the first ``--`` (None without one)."""
    args = list(argv)
    if "--" not in args:
        return args, None
    cut = args.index("--")
    return args[:cut], args[cut + 1 :]


def parse_leader_work(
    o: Options,
    command: list[str] | None,
    *,
    task_spec: str,
    task_given: bool,
    ttl_s: float,
    task_is_async: bool = True,
) -> LeaderWork:
    """Validate the schedule and ``--exec`` flags; raises :class:`UsageError` naming the bad one."""
    exec_argv = _exec_command(o, command, task_given)
    passed: tuple[str, ...] = o.get("pass_env", "--pass-env", "LEADERPOOL_PASS_ENV", pass_env, default=())
    if passed and not exec_argv:
        raise UsageError(_where(o, "pass_env", "--pass-env", "LEADERPOOL_PASS_ENV"), "only applies with --exec")
    every = o.get("every", "--every", "LEADERPOOL_EVERY", seconds, default=None)
    cron = o.get("cron", "--cron", "LEADERPOOL_CRON", str, default=None)
    scheduled = every is not None or cron is not None
    for dest, flag, env in (
        ("catch_up", "--catch-up", "LEADERPOOL_CATCH_UP"),
        ("overlap", "--overlap", "LEADERPOOL_OVERLAP"),
        ("jitter", "--jitter", "LEADERPOOL_JITTER"),
        ("schedule_grace", "--schedule-grace", "LEADERPOOL_SCHEDULE_GRACE"),
        ("schedule_name", "--schedule-name", "LEADERPOOL_SCHEDULE_NAME"),
    ):
        found = o.source(dest, flag, env)
        if found is not None and not scheduled:
            raise UsageError(found[0], "only applies with --every or --cron")
    if not scheduled:
        return LeaderWork(exec_argv=tuple(exec_argv), pass_env=passed)
    where = (
        _where(o, "every", "--every", "LEADERPOOL_EVERY")
        if every is not None
        else _where(o, "cron", "--cron", "LEADERPOOL_CRON")
    )
    if every is not None and cron is not None:
        raise UsageError(where, "give one of --every or --cron, not both")
    if not task_given and not exec_argv:
        raise UsageError(where, "needs --task MODULE:FUNCTION (or --exec -- COMMAND), what to run each slot")
    no_window: tuple[CatchUp, float | None] = (CatchUp.ONCE, None)
    catch_up, window = o.get("catch_up", "--catch-up", "LEADERPOOL_CATCH_UP", catch_up_arg, default=no_window)
    overlap = o.get(
        "overlap", "--overlap", "LEADERPOOL_OVERLAP", choice(*(v.value for v in Overlap)), default="buffer_all"
    )
    jitter = o.get("jitter", "--jitter", "LEADERPOOL_JITTER", seconds, default=0.0)
    if overlap in ("allow", "cancel_other") and not exec_argv and not task_is_async:
        raise UsageError(
            _where(o, "overlap", "--overlap", "LEADERPOOL_OVERLAP"),
            f"{overlap} needs an async task (async def): a thread task runs one slot at a time",
        )
    grace = o.get("schedule_grace", "--schedule-grace", "LEADERPOOL_SCHEDULE_GRACE", seconds, default=2 * ttl_s)
    default_name = exec_schedule_name(exec_argv) if exec_argv else task_spec
    name = o.get("schedule_name", "--schedule-name", "LEADERPOOL_SCHEDULE_NAME", str, default=default_name).strip()
    try:
        schedule = Schedule(
            name, every_s=every, cron=cron, catch_up=catch_up, grace_s=grace, overlap=Overlap(overlap),
            catch_up_window_s=window, jitter_s=jitter,
        )  # fmt: skip
    except ConfigError as exc:
        bad = where if ("cron" in str(exc) or "every" in str(exc)) else "--schedule-name"
        raise UsageError(bad, str(exc)) from None
    return LeaderWork(schedule=schedule, schedule_grace_s=grace, exec_argv=tuple(exec_argv), pass_env=passed)


def exec_schedule_name(argv: Sequence[str]) -> str:
    """The default schedule name of ``--exec -- COMMAND ARGS``: ``exec:PROGRAM``, plus a hash of
    the whole command line when it has arguments, so ``sh -c 'a'`` and ``sh -c 'b'`` in one pool
    keep schedules of their own (``exec:sh:3f2a9c1d``)."""
    import hashlib

    name = f"exec:{os.path.basename(argv[0])}"
    if len(argv) == 1:
        return name
    digest = hashlib.sha256("\0".join(argv).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{name}:{digest}"


def catch_up_arg(raw: object) -> tuple[CatchUp, float | None]:
    """``once``, ``skip``, ``all``, or a window in seconds (``all`` within it)."""
    value = str(raw).strip().lower()
    if value in {c.value for c in CatchUp}:
        return CatchUp(value), None
    try:
        return CatchUp.ALL, seconds(value)
    except ValueError:
        raise ValueError(f"must be once, skip, all or a window in seconds, got {raw!r}") from None


def _exec_command(o: Options, command: list[str] | None, task_given: bool) -> list[str]:
    """The ``--exec`` command: the arguments after ``--``, or ``LEADERPOOL_EXEC`` split as a shell
    would (without ``--exec``); [] for none."""
    import shlex

    from leaderpool.worker.exec import check_command

    wants_exec = bool(getattr(o.ns, "exec", None))
    if command is not None and not wants_exec:
        raise UsageError("--", f"a command after '--' needs --exec ({EXEC_USAGE})")
    where = "--exec"
    if not wants_exec:
        if "LEADERPOOL_EXEC" not in o.env:
            return []
        where = "LEADERPOOL_EXEC"
        try:
            command = shlex.split(o.env[where])
        except ValueError as exc:
            raise UsageError(where, f"cannot be split into a command: {exc}") from None
    if task_given:
        raise UsageError(where, "runs a command instead of the task: give --exec or --task, not both")
    try:
        return check_command(command or [])
    except ValueError as exc:
        raise UsageError(where, str(exc)) from None


def _where(o: Options, dest: str, flag: str, env: str) -> str:
    found = o.source(dest, flag, env)
    return found[0] if found else flag
