"""``leaderpool-cli``: look at pools and act on them from a shell.

Commands: ``status``, ``history``, ``resign``, ``evict``, ``forget``, ``schedules``, ``doctor``,
``demo``, ``dashboard``, and those for unique names, locks and a pool's work (``--help`` lists
them): :mod:`.parser` reads the command line, :mod:`.commands` runs it. Bad input or a Redis that
refuses the configuration (credentials, ACL, TLS) is one line on stderr and exit 2; an
unreachable Redis or a command that could not be done is one line and exit 1; Ctrl-C is exit 130;
never a traceback.

This module is what the console script imports first, so it (and the two packages above it)
import only what the interpreter has loaded already, and :func:`main`'s first statement puts the
Ctrl-C handler in place. What remains before it is the interpreter's own start (``site``, an
editable install's path finder) and these three small modules: a Ctrl-C in those few
milliseconds is Python's own KeyboardInterrupt, which no program can catch.
"""

from __future__ import annotations

import os
import signal
import sys

TYPE_CHECKING = False  # not typing's: every module loaded before main() widens the Ctrl-C window
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType

EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; ``argv`` None reads ``sys.argv`` (and means this is the whole process)."""
    if argv is None:
        signal.signal(signal.SIGINT, _exit_interrupted)  # first: see _exit_interrupted
    try:
        from leaderpool.cli import commands
        from leaderpool.cli.parser import parse

        ns, command = parse(sys.argv[1:] if argv is None else argv)
        return commands.run(ns, command)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        if argv is None:
            _ignore_interrupts()  # the command is over: a Ctrl-C now must not print a traceback on exit


def _exit_interrupted(_signum: int, _frame: FrameType | None) -> None:
    """Ctrl-C ends the process at once, exit 130: while modules load, a KeyboardInterrupt can be
    raised anywhere, even inside a destructor, where Python prints it as a traceback. One-shot
    commands have nothing to clean up (each change is one atomic script); the commands that do
    (``status --watch``, ``demo``) call :func:`.commands.interrupts_raise` first."""
    os._exit(EXIT_INTERRUPTED)


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":
    sys.exit(main())
