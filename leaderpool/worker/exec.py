"""``leaderpool-worker --exec -- COMMAND [ARGS...]``: any program as the leader's work, like
``consul lock`` or ``etcdctl elect``.

The command is started each time the member is elected, with ``LEADERPOOL_POOL``,
``LEADERPOOL_MEMBER`` and ``LEADERPOOL_TERM`` added to the worker's environment. (With
``--every``/``--cron`` it is run to completion once per slot instead, with ``LEADERPOOL_SLOT``
too: exit 0 is a run done, another exit a crash; see :func:`exec_per_slot_task`.) When the lead
ends it gets SIGTERM (its whole process group: it runs in a session of its own), then SIGKILL
after ``--task-grace``; on a kind hand-over the lead is released only after it exited. If it
exits while this member leads, whatever its exit code, that is a task crash: the member steps
down and rejoins as the youngest (the worker's crash policy).

No orphan keeps acting as leader: on Linux the command is started with a parent-death signal
(``prctl(PR_SET_PDEATHSIG, SIGKILL)``, set between fork and exec), so if the worker dies --
SIGKILL, the OOM killer -- the kernel kills the command at once. (It covers the command's own
process; a command that forks helpers should end them when it ends, or ``exec`` them.)

Its stdin is ``/dev/null``; its stdout and stderr are the worker's, unprefixed -- except with
``--json-events``, where stdout belongs to the events: the command's stdout then goes to the
worker's stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable, Sequence

from leaderpool.util.timeouts import within
from leaderpool.worker.tasks import AsyncTaskContext, Task

PR_SET_PDEATHSIG = 1
KILL_WAIT_S = 0.9
"""After SIGKILL, how long to wait for the command to be reaped (the runner waits at most 1 s)."""


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


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGKILL the child when the worker dies (Linux only;
    None elsewhere). libc and its ``prctl`` are looked up here, in the worker, so the child does
    no more between fork and exec than one system call and a check."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl
    worker_pid = os.getpid()

    def set_parent_death_signal() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(126)
        if os.getppid() != worker_pid:  # the worker died before the signal was armed
            os._exit(126)

    return set_parent_death_signal


def command_env(ctx: AsyncTaskContext) -> dict[str, str]:
    """The worker's environment plus this lead's (and, in a schedule, this slot's) variables."""
    env = {**os.environ, "LEADERPOOL_POOL": ctx.pool, "LEADERPOOL_MEMBER": ctx.member, "LEADERPOOL_TERM": str(ctx.term)}
    if ctx.slot is not None:
        env["LEADERPOOL_SLOT"] = f"{ctx.slot:.3f}"
    return env


class Command:
    """Runs one program as leader work: started with :func:`command_env`, its output as the
    module docstring says, stopped (SIGTERM) when the lead ends and killed (SIGKILL) when the
    worker cancels it after ``--task-grace``."""

    def __init__(self, argv: Sequence[str], *, json_events: bool) -> None:
        self.argv = list(argv)
        self.json_events = json_events
        self._preexec = _parent_death_signal()

    async def run(self, ctx: AsyncTaskContext) -> int:
        """Run it until it exits (its return code), or until the lead ends and it then exits."""
        process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sys.stderr.fileno() if self.json_events else None,
            env=command_env(ctx),
            start_new_session=True,  # its own process group: the stop reaches what it started too
            preexec_fn=self._preexec,
        )
        ctx.log.info("command_started", pid=process.pid, command=self.argv[0])
        try:
            exited = asyncio.ensure_future(process.wait())
            stopped = asyncio.ensure_future(ctx.stop.wait())
            try:
                await asyncio.wait({exited, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
            if not exited.done():  # the lead ended: ask it to stop, and wait (the runner's grace bounds it)
                ctx.log.info("command_stopping", pid=process.pid, signal="SIGTERM")
                _signal_group(process.pid, signal.SIGTERM)
                await exited
            code = exited.result()
        except asyncio.CancelledError:  # --task-grace is over: SIGKILL
            ctx.log.warning("command_killed", pid=process.pid, signal="SIGKILL")
            _signal_group(process.pid, signal.SIGKILL)
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await within(asyncio.shield(process.wait()), KILL_WAIT_S)
            raise
        ctx.log.info("command_exited", pid=process.pid, returncode=code)
        return code


def exec_task(argv: Sequence[str], *, json_events: bool) -> Task:
    """The leader task that runs ``argv`` for the whole lead: its exit while leading is a crash."""
    command = Command(argv, json_events=json_events)

    async def run_command(ctx: AsyncTaskContext) -> None:
        code = await command.run(ctx)
        if not ctx.stopping:
            raise CommandExited(command.argv, code)

    run_command.__qualname__ = f"exec:{command.argv[0]}"
    return run_command


def exec_per_slot_task(argv: Sequence[str], *, json_events: bool) -> Task:
    """The task that runs ``argv`` to completion once per slot (``--exec`` with ``--every`` or
    ``--cron``): exit 0 is a run done; any other exit while leading is a crash."""
    command = Command(argv, json_events=json_events)

    async def run_command_once(ctx: AsyncTaskContext) -> None:
        code = await command.run(ctx)
        if code != 0 and not ctx.stopping:
            raise CommandFailed(command.argv, code)

    run_command_once.__qualname__ = f"exec:{command.argv[0]}"
    return run_command_once


def _signal_group(pid: int, signum: int) -> None:
    """Signal the command's process group (it leads it), or the command alone if that fails."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        try:
            os.killpg(pid, signum)
        except (ProcessLookupError, PermissionError):
            os.kill(pid, signum)


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
