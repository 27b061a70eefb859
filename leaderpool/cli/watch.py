"""``leaderpool-cli status --watch``: redraw the pools whenever they change, on asyncio (the
watcher's notifications need an event loop; every other command runs without one)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, TextIO

from leaderpool.backend.clients import async_client
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.listener import NotificationSource
from leaderpool.backend.redis_errors import REDIS_FAILURES
from leaderpool.backend.shared_watcher import shared_watcher
from leaderpool.cli import status
from leaderpool.console.args import Options, positive_integer, seconds
from leaderpool.console.logs import configure_logging
from leaderpool.util.timeouts import within


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


@dataclass(frozen=True)
class Frame:
    """One read of the shown pools."""

    statuses: list[status.PoolStatus]
    hidden: int
    """Stale pools left out (not named, and stale for too long without ``show_all``)."""
    changed: bool
    """A leader, term or member differs from the previous frame (always true for the first)."""
    foreign: status.Foreign = status.NO_FOREIGN
    """Keys skipped, not leaderpool's."""


COALESCE_S = 0.05
"""After a notification, wait this long so that a burst (left, released, elected) is read once."""


async def status_frames(
    client: Any,
    pools: list[str],
    prefix: str,
    *,
    interval: float,
    show_all: bool = False,
    deadline: float | None = None,
) -> AsyncGenerator[Frame, None]:
    """Read the pools now, then again whenever the watcher reports a change in a shown pool
    (coalesced over :data:`COALESCE_S`) and at least every ``interval``, until the
    ``time.monotonic()`` ``deadline`` if given. Driven by notifications, not by polling: the
    ``interval`` read only moves lease countdowns and notices members whose lease ran out.

    A Redis failure propagates (after the pools are unwatched); close the iterator with
    ``contextlib.aclosing`` to unwatch when leaving early. Shared by ``status --watch`` and the
    dashboard's event stream.
    """
    changed = asyncio.Event()
    watcher = shared_watcher(client)
    watched: set[str] = set()
    shown: tuple[Any, ...] | None = None

    def listener(source: NotificationSource, payload: str) -> None:
        if not (source is NotificationSource.KEYSPACE and payload == "expire"):  # "expire" is only a lease renewal
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
            identity = (tuple(s.identity() for s in statuses), found.foreign)
            yield Frame(statuses, len(found) - len(statuses), identity != shown, found.foreign)
            shown = identity
            wait = interval if deadline is None else min(interval, deadline - time.monotonic())
            if wait <= 0:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await within(changed.wait(), wait)
            if changed.is_set():
                await asyncio.sleep(COALESCE_S)
    finally:
        for pool in watched:
            with contextlib.suppress(*REDIS_FAILURES):
                await watcher.unwatch(Keyspace(pool, prefix), listener)


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
    frame is printed only when a pool's leader, term or members changed. ``count`` counts
    refreshes, printed or not, so ``--count N`` ends after N refreshes (about N times ``interval``
    at most) even in a pipe where nothing changes.
    """
    tty = out.isatty()
    frames = printed = 0
    deadline = time.monotonic() + duration if duration else None
    reads = status_frames(client, pools, prefix, interval=interval, show_all=show_all, deadline=deadline)
    async with contextlib.aclosing(reads):
        async for frame in reads:
            frames += 1  # every refresh counts, printed or not: --count bounds the run even when nothing changes
            if tty or frame.changed:
                if tty and not as_json:
                    out.write("\x1b[H\x1b[2J")
                    out.write(f"leaderpool status  {time.strftime('%H:%M:%S')}  (Ctrl-C to stop)\n\n")
                elif printed and not as_json:
                    out.write(f"\n--- {time.strftime('%H:%M:%S')} ---\n")
                status.print_status(frame.statuses, as_json, out, hidden=frame.hidden, foreign=frame.foreign)
                printed += 1
            if count and frames >= count:
                return
