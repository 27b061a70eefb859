"""``leaderpool-cli status --watch``: redraw the pools whenever they change, on asyncio (the
watcher's notifications need an event loop; every other command runs without one)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, TextIO

from leaderpool.cli import status
from leaderpool.cli.args import Options, positive_integer, seconds
from leaderpool.cli.logs import configure_logging
from leaderpool.clients import async_client
from leaderpool.keys import Keyspace
from leaderpool.redis_errors import REDIS_FAILURES
from leaderpool.watcher import Watcher


def watch(url: str, o: Options, pools: list[str], prefix: str, out: TextIO) -> int:
    """Redraw until ``--count`` frames, ``--for`` seconds, or Ctrl-C."""
    count = o.get("count", "--count", None, positive_integer, default=0)
    duration = o.get("duration", "--for", None, seconds, default=0.0)
    interval = o.get("interval", "--interval", None, seconds, default=1.0)
    configure_logging("console", "warning")  # the library's events go to stderr, never stdout
    show_all = bool(o.ns.all)

    async def main() -> None:
        client = async_client(url, socket_connect_timeout=5, socket_timeout=10)
        try:
            await watch_status(
                client, pools, prefix, as_json=bool(o.ns.json), count=count, duration=duration,
                interval=interval, out=out, show_all=show_all,
            )  # fmt: skip
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    asyncio.run(main())
    return 0


async def watch_status(
    client: Any,
    pools: list[str],
    prefix: str,
    *,
    as_json: bool,
    count: int,
    duration: float,
    interval: float,
    out: TextIO,
    show_all: bool = False,
) -> None:
    """Redraw whenever the watcher reports a change in a shown pool, and every ``interval``.

    On a terminal every refresh redraws (lease countdowns move); elsewhere (a pipe, a test) a
    frame is printed only when a pool's leader, term or members changed.
    """
    from leaderpool.cli.commands import print_status

    changed = asyncio.Event()
    watcher = Watcher.shared(client)
    watched: set[str] = set()
    tty = out.isatty()
    frames = 0
    shown: tuple[Any, ...] | None = None
    deadline = time.monotonic() + duration if duration else None

    def listener(source: str, payload: str) -> None:
        if not (source == "keyspace" and payload == "expire"):  # "expire" is only a lease renewal
            changed.set()

    try:
        while True:
            changed.clear()
            found = await status.read_status(client, pools, prefix)
            statuses = found if pools or show_all else [s for s in found if not s.hidden]
            for s in statuses:
                if s.pool not in watched:
                    await watcher.watch(Keyspace(s.pool, prefix), listener)
                    watched.add(s.pool)
            identity = tuple(s.identity() for s in statuses)
            if tty or identity != shown:
                if tty and not as_json:
                    out.write("\x1b[H\x1b[2J")
                    out.write(f"leaderpool status  {time.strftime('%H:%M:%S')}  (Ctrl-C to stop)\n\n")
                elif frames and not as_json:
                    out.write(f"\n--- {time.strftime('%H:%M:%S')} ---\n")
                print_status(statuses, as_json, out, hidden=len(found) - len(statuses))
                shown = identity
                frames += 1
                if count and frames >= count:
                    return
            wait = interval if deadline is None else min(interval, deadline - time.monotonic())
            if wait <= 0:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), wait)
            if changed.is_set():
                await asyncio.sleep(0.05)  # let a burst (left, released, elected) settle into one frame
    finally:
        for pool in watched:
            with contextlib.suppress(*REDIS_FAILURES):
                await watcher.unwatch(Keyspace(pool, prefix), listener)
