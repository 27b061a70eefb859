"""``leaderpool-cli lock RESOURCE [--ttl S] [--timeout S] -- COMMAND [ARGS...]``: ``flock(1)``
across machines.

Takes the cluster-wide lock (:class:`~leaderpool.locks.blocking_lock.Lock`), runs COMMAND with
``LEADERPOOL_LOCK_TOKEN`` (the fencing token) and ``LEADERPOOL_LOCK_RESOURCE`` in its
environment, renews the lock while it runs, releases it when it exits, and exits with its exit
code (128 + N when a signal N ended it, as a shell reports it).

Signals: SIGTERM, SIGINT and SIGHUP reach the command (forwarded once, to its process group: it
runs in a group of its own, so a terminal's Ctrl-C reaches it through us only, and a shell
script's children get it too), and the lock is released after it exits. Before the lock is
taken, they end the wait (128 + N). If this process dies (SIGKILL), the command is killed with
it (Linux parent-death signal): nothing keeps running unlocked; the lock itself expires within
its ttl. (The command is not in the terminal's foreground group: one that reads the terminal
stops; give it its input through a pipe or a file.)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

from leaderpool.console.args import Failure
from leaderpool.util.constants import DEFAULT_PREFIX

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
EXIT_CANNOT_RUN = 127
"""A command that cannot be started (not found, not executable), as a shell exits."""
PR_SET_PDEATHSIG = 1


class _Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Signals:
    """Before the command runs, a signal ends the wait; while it runs, it is forwarded."""

    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self.previous: dict[int, Any] = {}

    def install(self) -> None:
        for signum in FORWARDED:
            self.previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        child = self.child
        if child is None:
            raise _Interrupted(signum)
        if child.poll() is None:  # to its whole group, as a terminal signals a foreground job
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signum)


def _child_setup() -> None:
    """In the child, before exec: a process group of its own (our forwarding is its only
    source of these signals), and SIGKILL when its parent dies."""
    parent = os.getppid()
    os.setpgid(0, 0)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(EXIT_CANNOT_RUN)


def exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def run_locked(
    url: str, resource: str, ttl_s: int, timeout_s: float | None, command: Sequence[str], prefix: str = DEFAULT_PREFIX
) -> int:
    """Run ``command`` holding the lock; its exit code. Raises :class:`Failure` on a timeout."""
    from leaderpool.backend.connect import blocking_client
    from leaderpool.locks.blocking_lock import Lock

    client = blocking_client(url, socket_connect_timeout=5)  # Sentinel and Cluster URLs too
    signals = _Signals()
    signals.install()
    try:
        lock = Lock(client, resource, ttl_s=ttl_s, timeout=timeout_s, auto_renew=False, prefix=prefix)
        try:
            taken = lock.acquire()
        except _Interrupted as stop:
            lock.release()  # in case the signal came right after the lock was taken
            return 128 + stop.signum
        if not taken:
            raise Failure(f"timed out after {timeout_s:g}s waiting for lock {resource} (another holder has it)")
        try:
            env = {**os.environ, "LEADERPOOL_LOCK_TOKEN": str(lock.token), "LEADERPOOL_LOCK_RESOURCE": resource}
            try:
                # the renewal thread starts after the fork: no other thread runs during _child_setup
                signals.child = subprocess.Popen(list(command), env=env, preexec_fn=_child_setup)
            except OSError as exc:
                sys.stderr.write(f"leaderpool-cli: error: cannot run {command[0]}: {exc.strerror or exc}\n")
                return EXIT_CANNOT_RUN
            lock.start_renewal()
            returncode = signals.child.wait()
        except _Interrupted as stop:  # between taking the lock and starting the command
            return 128 + stop.signum
        finally:
            lock.release()
            if lock.lost:
                why = lock.lost_why or "this process was paused past its ttl?"
                sys.stderr.write(
                    f"leaderpool-cli: warning: lock {resource} was lost while the command ran ({why}): "
                    "another holder may have overlapped\n"
                )
        return exit_code(returncode)
    finally:
        signals.restore()
        client.close()
