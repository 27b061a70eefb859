"""``leaderpool-cli dashboard [--host H] [--port P] [--allow-actions] [--token T] [--allow-host NAME]``:
serve the page until Ctrl-C (exit 130) or SIGTERM (exit 0).

Off loopback it needs a token (``--token`` or ``LEADERPOOL_DASHBOARD_TOKEN``, at least
:data:`MIN_TOKEN_CHARS` characters): without one it refuses to
start, with one line and exit 2 (see :mod:`leaderpool.cli.dashboard.access`).

It reads Redis once before it listens, so a wrong URL or password is one line at once (exit 1
or 2, as for every command); once serving, a lost Redis is shown on the page and the server
keeps going. A port that is taken, or a host it cannot listen on, is one line and exit 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from leaderpool.console.args import Options, UsageError, integer, positive_integer

TOKEN_ENV = "LEADERPOOL_DASHBOARD_TOKEN"
MIN_TOKEN_CHARS = 16
"""A token shorter than this is refused: it could be guessed over the network."""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_MAX_STREAMS = 64
"""Event streams open at once, at most (:data:`leaderpool.cli.dashboard.server.MAX_STREAMS`)."""
INSTALL_HINT = "pip install 'leaderpool[dashboard]'"
EXIT_INTERRUPTED = 130


def port_number(raw: object) -> int:
    value = integer(raw)
    if not 0 <= value <= 65535:
        raise ValueError(f"must be a port from 0 to 65535, got {raw!r}")
    return value


def host_text(raw: object) -> str:
    value = str(raw).strip()
    if not value:
        raise ValueError("must be an address or host name, got ''")
    return value


def dashboard(url: str, o: Options, prefix: str, out: TextIO = sys.stdout) -> int:
    host = o.get("host", "--host", None, host_text, default=DEFAULT_HOST)
    port = o.get("port", "--port", None, port_number, default=DEFAULT_PORT)
    token = o.get("token", "--token", TOKEN_ENV, token_text, default=None)
    allowed = tuple(host_text(name) for name in (o.ns.allow_host or []))
    max_streams = o.get("max_streams", "--max-streams", None, positive_integer, default=DEFAULT_MAX_STREAMS)
    try:
        import aiohttp  # noqa: F401  (only to say what is missing, in one line)
    except ImportError:
        raise UsageError(None, f"the dashboard needs aiohttp, which is not installed: {INSTALL_HINT}") from None
    from leaderpool.cli.dashboard.access import is_loopback

    if token is None and not is_loopback(host):
        raise UsageError(
            "--host", f"{host} is not a loopback address: the dashboard needs a token there (--token or {TOKEN_ENV})"
        )
    from leaderpool.console.logs import configure_logging

    configure_logging("console", "info")  # events (actions, dropped browsers, Redis lost) on stderr
    access = AccessOptions(token=token, allowed_hosts=allowed, max_streams=max_streams)
    return asyncio.run(_serve(url, prefix, host, port, allow_actions=bool(o.ns.allow_actions), access=access, out=out))


def token_text(raw: object) -> str:
    value = str(raw)
    if len(value) < MIN_TOKEN_CHARS:
        raise ValueError(f"must be at least {MIN_TOKEN_CHARS} characters (got {len(value)})")
    return value


@dataclass(frozen=True)
class AccessOptions:
    """What the command line says about access (the token is never printed)."""

    token: str | None
    allowed_hosts: tuple[str, ...]
    max_streams: int


async def _serve(
    url: str, prefix: str, host: str, port: int, *, allow_actions: bool, access: AccessOptions, out: TextIO
) -> int:
    from aiohttp import web

    from leaderpool.backend.clients import async_client
    from leaderpool.backend.connect import blocking_client
    from leaderpool.cli.dashboard.server import IDLE_TIMEOUT_S, MAX_CONNECTIONS, Dashboard, cap_connections
    from leaderpool.console.preflight import redact

    client = async_client(url, socket_connect_timeout=5, socket_timeout=5)
    blocking = blocking_client(url, socket_connect_timeout=5, socket_timeout=10)  # for resign, in a thread
    runner: Any = None
    try:
        await client.ping()  # a wrong URL or password: one line now, not a page that never fills
        dash = Dashboard(
            client, blocking, prefix, host=host, allow_actions=allow_actions, redis_shown=redact(url),
            token=access.token, allowed_hosts=access.allowed_hosts, max_streams=access.max_streams,
        )  # fmt: skip
        runner = web.AppRunner(dash.app(), access_log=None, handle_signals=False, keepalive_timeout=IDLE_TIMEOUT_S)
        await runner.setup()
        cap_connections(runner, MAX_CONNECTIONS + access.max_streams)
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            raise UsageError(*_bind_problem(exc, host, port)) from None
        bound = runner.addresses[0]
        shown_host = f"[{bound[0]}]" if ":" in str(bound[0]) else bound[0]
        actions = "actions on" if allow_actions else "actions off (--allow-actions turns resign and evict on)"
        token = "; token required: open /?token=TOKEN once" if access.token else ""
        out.write(
            f"leaderpool dashboard on http://{shown_host}:{bound[1]}/ ({redact(url)}, {actions}{token}); Ctrl-C stops\n"
        )
        out.flush()
        return await _until_stopped()
    finally:
        if runner is not None:
            await runner.cleanup()
        with contextlib.suppress(Exception):
            await client.aclose()
        with contextlib.suppress(Exception):
            blocking.close()


async def _until_stopped() -> int:
    """Wait for SIGINT (exit 130, as every command on Ctrl-C) or SIGTERM (exit 0)."""
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[int] = loop.create_future()

    def stop(code: int) -> None:
        if not stopped.done():
            stopped.set_result(code)

    loop.add_signal_handler(signal.SIGINT, stop, EXIT_INTERRUPTED)
    loop.add_signal_handler(signal.SIGTERM, stop, 0)
    try:
        return await stopped
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _bind_problem(exc: OSError, host: str, port: int) -> tuple[str, str]:
    """(the flag to name, the problem) for a failed listen."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return "--port", f"{where} is already in use: pick another port with --port (0 picks a free one)"
    if exc.errno == errno.EACCES:
        return "--port", f"not allowed to listen on {where} (ports below 1024 need privileges)"
    return "--host", f"cannot listen on {where}: {exc.strerror or exc}"
