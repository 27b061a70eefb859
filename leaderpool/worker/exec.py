"""``leaderpool-worker --exec -- COMMAND [ARGS...]``: any program as the leader's work, like
``consul lock`` or ``etcdctl elect``.

The command is started each time the member is elected, with ``LEADERPOOL_POOL``,
``LEADERPOOL_MEMBER`` and ``LEADERPOOL_TERM`` added to the worker's environment. (With
``--every``/``--cron`` it is run to completion once per slot instead, with ``LEADERPOOL_SLOT``
too: exit 0 is a run done, another exit a crash; see :func:`exec_per_slot_task`.) If it
exits while this member leads, whatever its exit code, that is a task crash: the member steps
down and rejoins as the youngest (the worker's crash policy).

The command runs as a contained process tree (:mod:`leaderpool.proctree`): under a small
supervisor, in a session of its own, and in a cgroup of its own where one can be made. Leader
work stops entirely: when the lead ends, SIGTERM goes to every process of the tree and SIGKILL
to what is left after ``--task-grace``, and the lead is released only once every process of the
tree is gone; when the command exits, its leftover helpers are stopped the same way. If the
worker dies -- SIGKILL, the OOM killer -- the supervisor kills the whole tree within
milliseconds, before the next leader's command can start (helpers that double-fork into a new session
included: see docs/guide/exec.md). The command does not inherit the Redis credentials
(:data:`~leaderpool.console.credentials.CREDENTIAL_VARIABLES`) unless ``--pass-env`` names them.

Its stdin is ``/dev/null``; its stdout and stderr are the worker's, unprefixed -- except with
``--json-events``, where stdout belongs to the events: the command's stdout then goes to the
worker's stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence

from leaderpool.console.credentials import CREDENTIAL_VARIABLES
from leaderpool.proctree.environment import command_environment
from leaderpool.proctree.launch import AsyncProcessTree, TreeSpec, astart_tree
from leaderpool.util.timeouts import within
from leaderpool.worker.task_context import AsyncTaskContext
from leaderpool.worker.tasks import Task

KILL_WAIT_S = 0.9
"""After SIGKILL, how long to wait for the tree to be gone (the runner waits at most 1 s)."""


class CommandExited(RuntimeError):
    """The leader's command exited while this member led: a task crash."""

    def __init__(self, argv: Sequence[str], returncode: int) -> None:
        super().__init__(f"the leader's command {argv[0]!r} {_how(returncode)} while leading")
        self.returncode = returncode


class CommandFailed(RuntimeError):
    """A scheduled run of the command exited non-zero while this member led: a task crash."""

    def __init__(self, argv: Sequence[str], returncode: int) -> None:
        super().__init__(f"the scheduled command {argv[0]!r} {_how(returncode)}")
        self.returncode = returncode


def _how(returncode: int) -> str:
    return f"killed by {signal.Signals(-returncode).name}" if returncode < 0 else f"exited with code {returncode}"


def command_env(ctx: AsyncTaskContext, pass_env: Sequence[str] = ()) -> dict[str, str]:
    """The worker's environment less the credentials not passed, plus this lead's (and, in a
    schedule, this slot's) variables."""
    added = {"LEADERPOOL_POOL": ctx.pool, "LEADERPOOL_MEMBER": ctx.member, "LEADERPOOL_TERM": str(ctx.term)}
    if ctx.name is not None:  # a singleton's command: its own name, and LEADERPOOL_TERM is its term
        added["LEADERPOOL_SINGLETON"] = ctx.name
    if ctx.slot is not None:
        added["LEADERPOOL_SLOT"] = f"{ctx.slot:.3f}"
    return command_environment(os.environ, added=added, withheld=CREDENTIAL_VARIABLES, passed=pass_env)


class Command:
    """Runs one program as leader work: a contained tree started with :func:`command_env`, its
    output as the module docstring says, stopped (SIGTERM to the tree, SIGKILL to what is left
    after ``grace_s``) when the lead ends, and killed at once when the worker cancels it."""

    def __init__(
        self, argv: Sequence[str], *, json_events: bool, grace_s: float = 5.0, pass_env: Sequence[str] = ()
    ) -> None:
        self.argv = list(argv)
        self.json_events = json_events
        self.spec = TreeSpec(tuple(argv), grace_s=grace_s, label="leaderpool-worker")
        self.pass_env = tuple(pass_env)

    async def run(self, ctx: AsyncTaskContext) -> int:
        """Run it until it exits (its return code), or until the lead ends and it then exits;
        either way, once every process of its tree is gone."""
        tree = await astart_tree(
            self.spec, env=command_env(ctx, self.pass_env), stdin=asyncio.subprocess.DEVNULL,
            stdout=sys.stderr.fileno() if self.json_events else None,
        )  # fmt: skip
        try:
            return await self._watch(ctx, tree)
        finally:
            tree.kill()  # a no-op once the tree is gone; otherwise (an error here) nothing outlives us

    async def _watch(self, ctx: AsyncTaskContext, tree: AsyncProcessTree) -> int:
        pid = tree.command_pid
        ctx.log.info(
            "command_started", pid=pid, command=self.argv[0], supervisor=tree.pid, containment=tree.containment
        )
        try:
            exited = asyncio.ensure_future(tree.wait())
            stopped = asyncio.ensure_future(ctx.stop.wait())
            try:
                await asyncio.wait({exited, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
            if not exited.done():  # the lead ended: ask the tree to stop, and wait (the runner's grace bounds it)
                ctx.log.info("command_stopping", pid=pid, signal="SIGTERM")
                tree.stop()
                await exited
            code = exited.result()
        except asyncio.CancelledError:  # --task-grace is over: SIGKILL to the whole tree
            ctx.log.warning("command_killed", pid=pid, signal="SIGKILL")
            tree.kill()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await within(asyncio.shield(tree.process.wait()), KILL_WAIT_S)
            raise
        ctx.log.info("command_exited", pid=pid, returncode=code)
        return code


def exec_task(argv: Sequence[str], *, json_events: bool, grace_s: float = 5.0, pass_env: Sequence[str] = ()) -> Task:
    """The leader task that runs ``argv`` for the whole lead: its exit while leading is a crash."""
    command = Command(argv, json_events=json_events, grace_s=grace_s, pass_env=pass_env)

    async def run_command(ctx: AsyncTaskContext) -> None:
        code = await command.run(ctx)
        if not ctx.stopping:
            raise CommandExited(command.argv, code)

    run_command.__qualname__ = f"exec:{command.argv[0]}"
    return run_command


def exec_per_slot_task(
    argv: Sequence[str], *, json_events: bool, grace_s: float = 5.0, pass_env: Sequence[str] = ()
) -> Task:
    """The task that runs ``argv`` to completion once per slot (``--exec`` with ``--every`` or
    ``--cron``): exit 0 is a run done (its leftover helpers are stopped before the slot counts
    as done); any other exit while leading is a crash."""
    command = Command(argv, json_events=json_events, grace_s=grace_s, pass_env=pass_env)

    async def run_command_once(ctx: AsyncTaskContext) -> None:
        code = await command.run(ctx)
        if code != 0 and not ctx.stopping:
            raise CommandFailed(command.argv, code)

    run_command_once.__qualname__ = f"exec:{command.argv[0]}"
    return run_command_once


def check_command(argv: Sequence[str]) -> list[str]:
    """``argv`` if it names a program that can be run (found on PATH, or a path that is an
    executable file); else ValueError saying what is wrong."""
    import shutil

    if not argv:
        raise ValueError("needs a command after '--': --exec -- COMMAND [ARGS...]")
    program = argv[0]
    if os.sep in program:
        if not (os.path.isfile(program) and os.access(program, os.X_OK)):
            raise ValueError(f"{program!r} is not an executable file")
    elif shutil.which(program) is None:
        raise ValueError(f"command {program!r} not found on PATH")
    return list(argv)
