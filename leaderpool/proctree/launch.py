"""Starting a command as a contained process tree, under its :mod:`supervisor <.supervisor>`, from
a blocking program (:func:`start_tree`, ``leaderpool-cli lock``) or an asyncio one
(:func:`astart_tree`, the worker's ``--exec``).

The supervisor runs in a session of its own and is handed one end of a socket pair, the
lifeline; this process keeps the other. What each end means:

- :meth:`stop` (SIGTERM to the supervisor): SIGTERM to every process of the tree, SIGKILL to what
  is left after the grace;
- :meth:`forward` (SIGINT, SIGHUP): passed to the command's process group;
- :meth:`kill`, or this process dying however it dies: the lifeline closes, and the supervisor
  kills the whole tree at once;
- ``wait()`` returns once every process of the tree is gone, with the command's exit status
  (negative: the signal that killed it). Should the supervisor itself be killed (by hand), the
  tree's cgroup, if it had one, is killed and removed from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from leaderpool.util.timeouts import within

SUPERVISOR = Path(__file__).with_name("supervisor.py")
START_TIMEOUT_S = 10.0
"""How long the supervisor may take to report that the command started (it takes milliseconds)."""
MAX_REPORT = 4096
CGROUP_CLEANUP_S = 1.0
"""How long a left-over cgroup may take to empty after ``cgroup.kill``."""


@dataclass(frozen=True)
class TreeSpec:
    """What to run and how: ``grace_s`` between SIGTERM and SIGKILL for what is left of the tree
    (after a stop, or after the command exits); ``cgroup`` False keeps to the subreaper alone;
    ``label`` prefixes the supervisor's one line when the command cannot be started."""

    argv: tuple[str, ...]
    grace_s: float
    cgroup: bool = True
    label: str = "leaderpool"

    def supervisor_argv(self, lifeline_fd: int) -> list[str]:
        # -I -S: no site-packages, no PYTHON* variables: the supervisor starts in a few ms
        mode = "auto" if self.cgroup else "off"
        grace = repr(float(self.grace_s))
        return [sys.executable, "-I", "-S", str(SUPERVISOR), str(os.getpid()), str(lifeline_fd), grace, mode,
                self.label, "--", *self.argv]  # fmt: skip


class Started(NamedTuple):
    """The supervisor's report: the command's pid, how its tree is held (``cgroup``,
    ``subreaper``, or ``group`` where neither is available), and the cgroup's directory."""

    pid: int
    containment: str
    cgroup: str | None = None


def parse_started(report: bytes) -> Started | None:
    """``started PID MODE CGROUP`` (``-``: none), or None (the command was not started)."""
    parts = report.decode("utf-8", "replace").rstrip("\n").split(" ", 3)
    if len(parts) == 4 and parts[0] == "started" and parts[1].isdigit():
        return Started(int(parts[1]), parts[2], None if parts[3] == "-" else parts[3])
    return None


def clean_up_cgroup(path: str | None) -> bool:
    """After the supervisor exited: if its cgroup is still there (the supervisor was killed
    before it could empty and remove it), SIGKILL what is in it and remove it. True if it did."""
    if path is None or not os.path.isdir(path):
        return False
    with contextlib.suppress(OSError), open(os.path.join(path, "cgroup.kill"), "w") as f:
        f.write("1")
    deadline = time.monotonic() + CGROUP_CLEANUP_S
    while time.monotonic() < deadline:
        try:
            os.rmdir(path)  # refused while a process is still in it
            break
        except FileNotFoundError:
            break
        except OSError:
            time.sleep(0.005)
    return True


class _Tree:
    """What both faces share: the supervisor's pid, the lifeline and the report."""

    def __init__(self, pid: int, lifeline: socket.socket, started: Started | None) -> None:
        self.pid = pid
        self.lifeline: socket.socket | None = lifeline
        self.started = started

    @property
    def command_pid(self) -> int | None:
        return self.started.pid if self.started else None

    @property
    def containment(self) -> str | None:
        return self.started.containment if self.started else None

    def stop(self) -> None:
        """SIGTERM to the tree now, SIGKILL to what is left after the grace."""
        self.forward(signal.SIGTERM)

    def forward(self, signum: int) -> None:
        """SIGTERM: :meth:`stop`; SIGINT and SIGHUP: to the command's process group."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def kill(self) -> None:
        """SIGKILL to every process of the tree, now (the lifeline closes)."""
        if self.lifeline is not None:
            self.lifeline.close()
            self.lifeline = None


def _lifeline() -> tuple[socket.socket, socket.socket]:
    ours, theirs = socket.socketpair()  # both close-on-exec: only the supervisor gets ``theirs``
    return ours, theirs


class ProcessTree(_Tree):
    """A running tree, for blocking code."""

    def __init__(self, process: subprocess.Popen[bytes], lifeline: socket.socket, started: Started | None) -> None:
        super().__init__(process.pid, lifeline, started)
        self.process = process

    def wait(self, timeout: float | None = None) -> int:
        """Wait until every process of the tree is gone: the command's return code."""
        code = self.process.wait(timeout)
        self.kill()
        clean_up_cgroup(self.started.cgroup if self.started else None)
        return code


def start_tree(spec: TreeSpec, *, env: Mapping[str, str], **popen: Any) -> ProcessTree:
    """Start ``spec`` (``popen``: stdin, stdout, stderr for the supervisor and the command)."""
    ours, theirs = _lifeline()
    try:
        process = subprocess.Popen(
            spec.supervisor_argv(theirs.fileno()), env=dict(env), pass_fds=(theirs.fileno(),),
            start_new_session=True, **popen,
        )  # fmt: skip
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    ours.settimeout(START_TIMEOUT_S)
    report = b""
    with contextlib.suppress(OSError):
        while not report.endswith(b"\n") and len(report) < MAX_REPORT:
            chunk = ours.recv(MAX_REPORT)
            if not chunk:
                break
            report += chunk
    ours.settimeout(None)
    return ProcessTree(process, ours, parse_started(report))


class AsyncProcessTree(_Tree):
    """A running tree, for asyncio code."""

    def __init__(self, process: asyncio.subprocess.Process, lifeline: socket.socket, started: Started | None) -> None:
        super().__init__(process.pid, lifeline, started)
        self.process = process

    async def wait(self) -> int:
        """Wait until every process of the tree is gone: the command's return code."""
        code = await self.process.wait()
        self.kill()
        cgroup = self.started.cgroup if self.started else None
        if cgroup is not None and os.path.isdir(cgroup):  # rare: the supervisor was killed
            await asyncio.to_thread(clean_up_cgroup, cgroup)
        return code


async def astart_tree(spec: TreeSpec, *, env: Mapping[str, str], **popen: Any) -> AsyncProcessTree:
    """:func:`start_tree` for asyncio."""
    ours, theirs = _lifeline()
    try:
        process = await asyncio.create_subprocess_exec(
            *spec.supervisor_argv(theirs.fileno()), env=dict(env), pass_fds=(theirs.fileno(),),
            start_new_session=True, **popen,
        )  # fmt: skip
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    ours.setblocking(False)
    report = b""
    with contextlib.suppress(OSError, asyncio.TimeoutError):
        report = await within(_read_report(ours), START_TIMEOUT_S)
    return AsyncProcessTree(process, ours, parse_started(report))


async def _read_report(lifeline: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    report = b""
    while not report.endswith(b"\n") and len(report) < MAX_REPORT:
        chunk = await loop.sock_recv(lifeline, MAX_REPORT)
        if not chunk:
            break
        report += chunk
    return report
