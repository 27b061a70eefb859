"""``python -m leaderpool.worker`` (``leaderpool-worker``): one member of one pool per process.

It joins the pool, runs the leader task (:mod:`leaderpool.worker.tasks`) while it leads, and prints one
JSON line per transition on stdout with ``--json-events``; logs go to stderr. Flags and variables
are read by :mod:`leaderpool.worker.settings`; :mod:`leaderpool.worker.worker_service` is the running worker.

Exit codes and signals:

- 0 after a kind shutdown: SIGTERM, SIGINT (Ctrl-C) or SIGHUP (its terminal closed) stops the
  task, hands the lead over and leaves the pool.
- 1 when a second signal cut that shutdown short (it stops waiting, whatever the task does), or
  when the election itself failed.
- 2 for bad input, or a Redis that refuses our credentials, permissions or TLS at start: one
  line on stderr, before anything starts (an unreachable Redis is retried, never fatal); and
  when another live process holds our member id in the pool (``MemberIdInUse``: one line naming
  the id and its holder's host, pid and start).
- Ctrl-C during start-up (before the worker has joined, e.g. while Python imports it) ends the
  process quietly, killed by SIGINT as Python itself would be but without a traceback; a shell
  shows exit status 130.

Redis being unreachable never ends the process: the election core retries with capped backoff.
A crashed task makes the member step down and rejoin as the youngest.

This module is the console script's entry point, imported before :func:`main` runs: its
module-level code is only ``sys`` (loaded already), so a Ctrl-C during start-up lands inside
:func:`main`'s guard. Import anything else inside :func:`main`, never at module level. (What comes
before is Python's own start-up and the import of the ``leaderpool`` package itself, which is
lazy: a few milliseconds.)
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

    from leaderpool.worker.http import HttpEndpoints
    from leaderpool.worker.settings import WorkerSettings

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        import signal

        previous = signal.getsignal(signal.SIGINT)
        if previous not in (signal.SIG_IGN, None):  # ignored (a background job of a shell): it stays so
            signal.signal(signal.SIGINT, _sigint_during_start_up)
        try:
            from leaderpool.console.args import UsageError, fail
            from leaderpool.console.logs import configure_logging
            from leaderpool.worker.settings import PROG, parse_settings
            from leaderpool.worker.worker_service import run

            try:
                settings = parse_settings(argv)
            except UsageError as exc:
                fail(PROG, str(exc))
            from leaderpool.backend.keys import Keyspace
            from leaderpool.console.preflight import exit_on_config_error
            from leaderpool.util.descriptors import raise_limit

            raise_limit()  # soft open-files limit to the hard one: strangers' connections must not starve Redis

            keys = Keyspace(settings.config.pool, settings.config.prefix)
            exit_on_config_error(PROG, settings.redis_url, keys)  # credentials, ACL, TLS: exit 2; unreachable: retry on
            http = _bind_http(settings)
            configure_logging(settings.log_format, settings.log_level)
            return run(settings, http)  # its loop handles SIGINT from before it joins until it is done
        finally:
            if previous not in (signal.SIG_IGN, None):
                signal.signal(signal.SIGINT, previous)
    except KeyboardInterrupt:  # a SIGINT before the handler above was in place
        _end_by_sigint()


def _bind_http(settings: WorkerSettings) -> HttpEndpoints | None:
    """Listen now, so a taken port is one line and exit 2 before the worker joins its pool."""
    if settings.http_port is None:
        return None
    from leaderpool.console.args import fail
    from leaderpool.worker.http import bind
    from leaderpool.worker.settings import PROG

    try:
        return bind(settings.http_host, settings.http_port)
    except OSError as exc:
        where = f"{settings.http_host}:{settings.http_port}"
        fail(PROG, f"--http-port: cannot listen on {where}: {exc.strerror or exc}")


def _sigint_during_start_up(signum: int, frame: object) -> None:
    """Ends the process at once, rather than raising KeyboardInterrupt: that can land in code that
    swallows it (a finalizer, a weakref callback inside the import system: "Exception ignored")
    and start-up would go on."""
    _end_by_sigint()


def _end_by_sigint() -> NoReturn:
    """End quietly as killed by SIGINT: what Python does on an uncaught KeyboardInterrupt, minus
    the traceback, so a calling shell sees the interrupt (status 130) and can stop too."""
    import contextlib
    import os
    import signal

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
    raise SystemExit(128 + signal.SIGINT)  # not reached: the signal ends the process


if __name__ == "__main__":
    sys.exit(main())
