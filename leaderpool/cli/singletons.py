"""``leaderpool-cli singletons POOL`` and ``move POOL NAME MEMBER``: a pool's singletons
(:mod:`leaderpool.singletons`) from a shell, on a one-shot client (no asyncio, no redis-py).

``move`` pins the singleton to the member (the pool's placer then hands it over kindly: the old
owner stops and saves, the new one resumes) and waits until it runs there: exit 0 once it does,
1 when refused (no such singleton, a member that runs no singletons) or not there in time. It
waits on the claim's message (``claimed|NAME`` on the pool's singletons channel, subscribed
before the pin so none is missed) and then reads where it runs; a message is a hint, so it also
reads every :data:`FALLBACK_POLL_S` (a message lost with a dropped connection costs that much).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import TextIO

from leaderpool.cli import resp, status
from leaderpool.console.args import Failure
from leaderpool.console.oneshot import Blocking, run
from leaderpool.singletons.singleton_store import SingletonInfo, SingletonStore
from leaderpool.util.printable import printable, printable_lines

POLL_S = 0.01
"""How often ``move`` reads where the singleton runs when it cannot subscribe (a client that has
no pub/sub): a hand-off takes milliseconds."""
FALLBACK_POLL_S = 0.5
"""How often ``move`` reads where the singleton runs while no claim of it is announced."""


def _store(client: Blocking, pool: str, prefix: str) -> SingletonStore:
    return SingletonStore(client, pool, prefix)


def _read(client: Blocking, pool: str, prefix: str) -> list[SingletonInfo]:
    run(status.require_pool(client, pool, prefix))
    found: list[SingletonInfo] = run(_store(client, pool, prefix).list())
    if not found:
        raise Failure(f"no singletons in pool {pool} (prefix {prefix}): workers add them (--singletons)")
    return found


def list_singletons(client: Blocking, pool: str, prefix: str, as_json: bool, out: TextIO) -> int:
    found = _read(client, pool, prefix)
    if as_json:
        out.write(json.dumps({"singletons": [s.as_json() for s in found]}, separators=(",", ":")) + "\n")
        return 0
    per_member = Counter(s.member for s in found if s.member is not None)
    idle = sum(1 for s in found if s.member is None)
    spread = ", ".join(f"{m} {n}" for m, n in sorted(per_member.items())) or "none running"
    head = f"{len(found)} singleton(s) in pool {pool} on {len(per_member)} member(s): {spread}"
    out.write(printable(head + (f"; {idle} not running" if idle else "")) + "\n")
    table = [["NAME", "MEMBER", "TERM", "ASSIGNED"]]
    for s in found:
        table.append([s.name, s.member or "-", str(s.term), s.assigned or "-"])
    out.write(printable_lines("\n".join("  " + line for line in status.table(table))) + "\n")
    return 0


def move(client: Blocking, pool: str, name: str, member: str, prefix: str, timeout_s: float, out: TextIO) -> int:
    """Pin ``name`` to ``member`` and wait (at most ``timeout_s``) until it runs there."""
    store = _store(client, pool, prefix)
    before = {s.name: s for s in _read(client, pool, prefix)}
    if name not in before:
        raise Failure(f"no singleton {name!r} in pool {pool} (prefix {prefix}): `leaderpool-cli singletons {pool}`")
    live = {m.member for m in run(store.survey()).members}
    if member not in live:
        raise Failure(f"member {member} of pool {pool} is not live or runs no singletons (live: "
                      f"{', '.join(sorted(live)) or 'none'})")  # fmt: skip
    claims = _Claims.open(client.sync, store.keys.singleton_events, name)  # before the pin: none missed
    try:
        began = time.monotonic()
        if not run(store.pin(name, member)):
            raise Failure(f"no singleton {name!r} in pool {pool} (prefix {prefix}): removed meanwhile")
        old = before[name]
        while True:
            now = {s.name: s for s in run(store.list())}.get(name)
            if now is not None and now.member == member and (old.member == member or now.term > old.term):
                took_ms = (time.monotonic() - began) * 1000
                was = f"from {old.member} " if old.member and old.member != member else ""
                out.write(printable(f"moved {name} {was}to {member} (term {now.term}) in {took_ms:.0f} ms; "
                                    f"it stays there while {member} is live") + "\n")  # fmt: skip
                return 0
            left = timeout_s - (time.monotonic() - began)
            if left < 0:
                where = f"still on {now.member}" if now is not None and now.member else "running nowhere yet"
                raise Failure(
                    f"{name} is pinned to {member} but {where} after {timeout_s:g}s (does the pool have a leader?)"
                )
            if claims is None:
                time.sleep(min(POLL_S, left))
            else:
                claims.wait(min(FALLBACK_POLL_S, left))
    finally:
        if claims is not None:
            claims.close()


class _Claims:
    """The announcements of ``name``'s claims, on a subscriber connection of its own."""

    def __init__(self, subscriber: resp.Client, name: str) -> None:
        self._subscriber = subscriber
        self._wanted = f"claimed|{name}".encode()

    @classmethod
    def open(cls, sync: object, channel: str, name: str) -> _Claims | None:
        """Subscribed to ``channel``; None when the client cannot (redis-py's, for ``rediss://``:
        ``move`` polls then) or the subscription fails (the polls still find the move)."""
        if not isinstance(sync, resp.Client):
            return None
        subscriber = sync.another()
        try:
            subscriber.subscribe(channel)
        except (resp.ConnectionFailed, resp.ReplyError):
            subscriber.close()
            return None
        return cls(subscriber, name)

    def wait(self, timeout_s: float) -> None:
        """Return once ``name``'s claim is announced, or after ``timeout_s``."""
        end = time.monotonic() + timeout_s
        while (left := end - time.monotonic()) > 0:
            try:
                message = self._subscriber.next_message(left)
            except resp.ConnectionFailed:  # a hint lost: sleep out the fallback's interval
                time.sleep(max(0.0, end - time.monotonic()))
                return
            if message is not None and message[1] == self._wanted:
                return

    def close(self) -> None:
        self._subscriber.close()
