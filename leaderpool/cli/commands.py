"""Run one parsed ``leaderpool-cli`` command: hand it to the module that runs it, and the one
place that turns a failure into one line and an exit code.

One-shot commands (``status``, ``history``, ``resign``, ``evict``, ``forget``, ``doctor``, and
``whereis``, ``names``, ``unregister`` for unique names: :mod:`.oneshot_commands`) run on a
blocking redis-py client through :mod:`leaderpool.console.oneshot`, with no event loop and no log
set-up (the library is silent unless configured); ``status --watch``, ``demo`` and ``dashboard``
run on asyncio; ``lock`` runs a command under a cluster-wide lock (:mod:`.lock`).

Exit codes: 0 done; 1 a command could not do what was asked, or Redis is unreachable; 2 bad
input, or a Redis that refuses the configuration (credentials, ACL permissions, TLS: see
:mod:`leaderpool.console.preflight`); 130 Ctrl-C. ``lock`` exits with its command's exit code
(127: it could not be started).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from leaderpool.backend.keys import DEFAULT_PREFIX
from leaderpool.console import credentials, preflight
from leaderpool.console.args import (
    EXIT_FAILURE,
    EXIT_USAGE,
    Failure,
    Options,
    UsageError,
    checked_arg,
    fail,
    name_arg,
    seconds,
)

PROG = "leaderpool-cli"
DEFAULT_URL = "redis://localhost:6379/0"  # leaderpool.backend.clients.DEFAULT_URL, without importing redis.asyncio


def interrupts_raise() -> None:
    """Ctrl-C raises KeyboardInterrupt again (Python's default), for commands that clean up."""
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)


def permit_count(text: str) -> int:
    """``-n N``: a whole number of permits, at least 1."""
    try:
        count = int(text)
    except ValueError:
        raise ValueError(f"must be a whole number of permits, at least 1, got {text!r}") from None
    if count < 1:
        raise ValueError(f"must be a whole number of permits, at least 1, got {text!r}")
    return count


def cmd_lock(url: str, o: Options, prefix: str, command: list[str] | None) -> int:
    from leaderpool.cli.lock import DEFAULT_GRACE_S, run_locked
    from leaderpool.console.credentials import pass_env

    resource = checked_arg("RESOURCE", name_arg("lock resource"), o.ns.resource)
    ttl = o.get("ttl", "--ttl", None, seconds, default=10.0)
    if not ttl.is_integer() or ttl < 1:
        raise UsageError(
            "--ttl", f"must be a whole number of seconds, at least 1 (python-redis-lock's unit), got {ttl:g}"
        )
    timeout: float | None = o.get("timeout", "--timeout", None, seconds, default=None)
    grace = o.get("grace", "--grace", None, seconds, default=DEFAULT_GRACE_S)
    passed: tuple[str, ...] = o.get("pass_env", "--pass-env", None, pass_env, default=())
    permits: int | None = o.get("permits", "-n", None, permit_count, default=None)
    if not command:
        raise UsageError(None, "lock needs a command to run after '--': lock RESOURCE -- COMMAND [ARGS...]")
    from leaderpool.errors import RedisAuthFailed, RedisUnavailable

    try:
        return run_locked(
            url, resource, int(ttl), timeout, command, prefix, grace_s=grace, pass_env=passed, permits=permits
        )
    except (RedisUnavailable, RedisAuthFailed) as exc:  # the backend's error: the CLI's usual line for it
        if exc.__cause__ is None:
            raise
        raise exc.__cause__ from None


def _one_shot(command: str, url: str, o: Options, prefix: str) -> int:
    """Run a one-shot command on :mod:`.resp`'s small client where it can take the URL (redis-py,
    and its start-up time, only for ``rediss://``, URL options and ``doctor``)."""
    from leaderpool.cli import oneshot_commands, resp
    from leaderpool.console.oneshot import Blocking

    sync: Any
    if command != "doctor" and resp.handles(url):
        sync = resp.Client(url, connect_timeout_s=5, timeout_s=10)
    else:
        mismatch = preflight.tls_mismatch(url)
        if mismatch is not None:
            fail(PROG, mismatch.message)
        from leaderpool.backend.connect import blocking_client

        sync = blocking_client(url, socket_connect_timeout=5, socket_timeout=10)
    try:
        client = Blocking(sync)
        if command == "doctor":
            return oneshot_commands.cmd_doctor(client, o, prefix, sys.stdout, preflight.redact(url))
        return oneshot_commands.ONE_SHOT[command](client, o, prefix, sys.stdout)
    finally:
        sync.close()


def run(ns: argparse.Namespace, command: list[str] | None) -> int:
    """Run the command ``ns`` names (``command``: what ``lock`` runs); its exit code. A failure
    is one line on stderr and exit 1 or 2 (:func:`~leaderpool.console.args.fail`)."""
    o = Options(ns)
    url = DEFAULT_URL
    try:
        url = credentials.redis_url(o, DEFAULT_URL)
        prefix = o.get("prefix", "--prefix", "LEADERPOOL_PREFIX", name_arg("prefix"), default=DEFAULT_PREFIX)
        if ns.command == "acl":
            from leaderpool.backend.acl import setuser_line

            user = checked_arg("--user", name_arg("user"), ns.user or "leaderpool")
            sys.stdout.write(setuser_line(user, prefix, cluster=bool(ns.cluster)) + "\n")
            return 0
        if ns.command == "demo" or (ns.command == "status" and ns.watch):
            interrupts_raise()  # these clean up (workers, a redis-server, subscriptions) on Ctrl-C
        if ns.command == "demo":
            from leaderpool.cli import demo
            from leaderpool.console.logs import configure_logging

            configure_logging("console", "warning")  # the library's events go to stderr, never stdout
            given = any(o.source(d, f, None) for d, f in (("redis", "--redis"), ("redis_url_file", "--redis-url-file")))
            return demo.main(ns, o, redis_url=url if given else None, prefix=prefix)
        if ns.command == "lock":
            return cmd_lock(url, o, prefix, command)
        if ns.command == "status" and ns.watch:
            from leaderpool.cli.watch import watch

            pools = [checked_arg("--pool", name_arg("pool"), p) for p in (ns.pool or [])]
            return watch(url, o, pools, prefix, sys.stdout)
        if ns.command == "dashboard":
            from leaderpool.cli.dashboard.command import dashboard

            return dashboard(url, o, prefix)
        from leaderpool.cli import work

        if ns.command in work.COMMANDS:
            return work.run_command(ns, o, url, checked_arg("POOL", name_arg("pool"), ns.pool), prefix, sys.stdout)
        return _one_shot(ns.command, url, o, prefix)
    except UsageError as exc:
        fail(PROG, str(exc))
    except Failure as exc:
        fail(PROG, str(exc), EXIT_FAILURE)
    except Exception as exc:
        from leaderpool.errors import LeaderpoolError

        if isinstance(exc, LeaderpoolError):
            fail(PROG, str(exc), EXIT_FAILURE)
        problem = preflight.classify(exc, url)
        if problem is not None:
            fail(PROG, problem.message, EXIT_USAGE if problem.is_config else EXIT_FAILURE)
        import redis.exceptions

        from leaderpool.cli.resp import ReplyError

        if isinstance(exc, (redis.exceptions.RedisError, ReplyError)):
            fail(PROG, f"Redis at {preflight.redact(url)} refused: {exc}", EXIT_FAILURE)
        raise
