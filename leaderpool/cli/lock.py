"""``leaderpool-cli lock RESOURCE [-n N] [--ttl S] [--timeout S] -- COMMAND [ARGS...]``: ``flock(1)``
across machines (with ``-n N``, one of N permits of the resource's semaphore, as ``consul lock -n``:
the command is stopped, as by SIGTERM below, once the permit is lost or its renewal deadline
passes, since another holder may then act).

Takes the cluster-wide lock (:class:`~leaderpool.locks.blocking_lock.Lock`), runs COMMAND with
``LEADERPOOL_LOCK_TOKEN`` (the fencing token) and ``LEADERPOOL_LOCK_RESOURCE`` in its
environment, renews the lock while it runs, releases it when it exits, and exits with its exit
code (128 + N when a signal N ended it, as a shell reports it).

The command runs as a contained process tree (:mod:`leaderpool.proctree`): under a small
supervisor, in a session of its own (and a cgroup of its own where one can be made), without the
Redis credentials (:data:`~leaderpool.console.credentials.CREDENTIAL_VARIABLES`) unless
``--pass-env`` names them. The lock is released only once every process of the tree is gone:
when the command exits, what it left running gets SIGTERM, and SIGKILL after ``--grace``.

Signals: SIGTERM stops the tree (SIGTERM to every process of it, SIGKILL after ``--grace``);
SIGINT and SIGHUP are forwarded to the command's process group, as a terminal would (its group is
its own, so a terminal's Ctrl-C reaches it through us only). Before the lock is taken, they end
the wait (128 + N). If this process dies (SIGKILL, the OOM killer), the supervisor kills the
whole tree within milliseconds: nothing keeps running unlocked; the lock itself expires within
its ttl. (The command is not in the terminal's foreground group: one that reads the terminal
stops; give it its input through a pipe or a file.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from leaderpool.console.args import Failure
from leaderpool.console.credentials import CREDENTIAL_VARIABLES
from leaderpool.proctree.environment import command_environment
from leaderpool.proctree.launch import ProcessTree, TreeSpec, start_tree
from leaderpool.util.constants import DEFAULT_PREFIX

if TYPE_CHECKING:
    from leaderpool.locks.semaphore import Semaphore

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
EXIT_CANNOT_RUN = 127
"""A command that cannot be started (not found, not executable), as a shell exits."""
DEFAULT_GRACE_S = 10.0


class _Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Signals:
    """Before the command runs, a signal ends the wait; while it runs, it is forwarded."""

    def __init__(self) -> None:
        self.tree: ProcessTree | None = None
        self.previous: dict[int, Any] = {}

    def install(self) -> None:
        for signum in FORWARDED:
            self.previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        tree = self.tree
        if tree is None:
            raise _Interrupted(signum)
        if tree.process.poll() is None:  # SIGTERM: the tree stops; SIGINT, SIGHUP: to the command's group
            tree.forward(signum)


def exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


HOLD_CHECK_S = 0.1
"""How often ``lock -n`` looks at its permit's renewal deadline (a local flag: no Redis command)."""


def wait_holding(tree: ProcessTree, permit: Semaphore, resource: str) -> int:
    """Wait until every process of the tree is gone, stopping the tree (SIGTERM, SIGKILL after
    the grace) once the permit is no longer ours (lost, or its renewal deadline passed: another
    holder may be acting): the command's return code."""
    while True:
        try:
            return tree.wait(HOLD_CHECK_S)
        except subprocess.TimeoutExpired:
            if permit.holding:
                continue
        why = permit.lost_why or "no renewal succeeded within its ttl"
        sys.stderr.write(f"leaderpool-cli: warning: permit of {resource} lost ({why}): stopping the command\n")
        tree.stop()
        return tree.wait()


def run_locked(
    url: str,
    resource: str,
    ttl_s: int,
    timeout_s: float | None,
    command: Sequence[str],
    prefix: str = DEFAULT_PREFIX,
    *,
    grace_s: float = DEFAULT_GRACE_S,
    pass_env: Sequence[str] = (),
    permits: int | None = None,
) -> int:
    """Run ``command`` holding the lock (with ``permits``: one of that many permits of the
    resource's semaphore); its exit code. Raises :class:`Failure` on a timeout."""
    from leaderpool.backend.connect import blocking_client
    from leaderpool.locks.blocking_lock import Lock
    from leaderpool.locks.semaphore import Semaphore

    client = blocking_client(url, socket_connect_timeout=5)  # Sentinel and Cluster URLs too
    signals = _Signals()
    signals.install()
    try:
        lock: Lock | Semaphore
        if permits is None:
            lock = Lock(client, resource, ttl_s=ttl_s, timeout=timeout_s, auto_renew=False, prefix=prefix)
        else:
            lock = Semaphore(
                client, resource, permits=permits, ttl_s=ttl_s, timeout=timeout_s, auto_renew=False, prefix=prefix
            )
        try:
            taken = lock.acquire()
        except _Interrupted as stop:
            lock.release()  # in case the signal came right after the lock was taken
            return 128 + stop.signum
        if not taken:
            held_by = "another holder has it" if permits is None else f"all {permits} permits are held"
            raise Failure(f"timed out after {timeout_s:g}s waiting for lock {resource} ({held_by})")
        try:
            added = {"LEADERPOOL_LOCK_TOKEN": str(lock.token), "LEADERPOOL_LOCK_RESOURCE": resource}
            if permits is not None:
                added["LEADERPOOL_LOCK_PERMITS"] = str(permits)
            env = command_environment(os.environ, added=added, withheld=CREDENTIAL_VARIABLES, passed=pass_env)
            spec = TreeSpec(tuple(command), grace_s=grace_s, label="leaderpool-cli")
            signals.tree = tree = start_tree(spec, env=env)
            if tree.started is None:  # it could not be started: the supervisor said why
                return exit_code(tree.wait())
            lock.start_renewal()
            # every process of its tree is gone (with -n, stopped first if the permit was lost)
            returncode = wait_holding(tree, lock, resource) if isinstance(lock, Semaphore) else tree.wait()
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
