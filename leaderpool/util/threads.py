"""The library's own threads, which never take the process's signals.

The kernel hands a signal sent to a process to any one of its threads that does not block it.
Python runs its handlers on the main thread only, at its next bytecode: if the kernel chose one
of our threads, a main thread blocked in a system call (``leaderpool-cli lock`` waiting for its
command in ``waitpid``) never learns of the signal, and a Ctrl-C or SIGTERM is lost until
something else wakes it (found as a hung ``lock`` test). So every thread leaderpool starts
blocks the signals a process is asked to stop or report with, leaving them to the main thread.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

PROCESS_SIGNALS = frozenset(
    {
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
        signal.SIGALRM,
        signal.SIGCHLD,
    }
)
"""Signals meant for the process as a whole (faults such as SIGSEGV are the thread's own)."""


def start_thread(target: Callable[[], object], name: str) -> threading.Thread:
    """Start a daemon thread running ``target`` with :data:`PROCESS_SIGNALS` blocked."""

    def run() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, PROCESS_SIGNALS)
        target()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
