"""Child processes for the names and locks tests: run as ``python -m tests.support.names_locks_procs``.

``register URL POOL MEMBER GO_KEY NAME...``: joins POOL, waits for its turn on the list GO_KEY
(so every process registers at the same moment), registers each NAME and prints
``{"event": "registered", "member": M, "results": {NAME: bool}}``; then holds them until SIGTERM.

``count URL RESOURCE TIMES sync|async``: TIMES read-modify-write increments of the key
``counter:{RESOURCE}``, each inside ``trans``/``atrans`` (a sleep between the read and the
write invites a lost update); prints ``{"event": "counted"}``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import time
from typing import Any

import redis
import redis.asyncio

from leaderpool import Election, MemberConfig
from leaderpool.locks.async_lock import atrans
from leaderpool.locks.blocking_lock import trans

GAP_S = 0.002
"""Between the read and the write of an increment: long enough that unlocked writers collide."""


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def register(url: str, pool: str, member: str, go_key: str, names: list[str]) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Election(MemberConfig(pool=pool, member_id=member, ttl_s=2.0), url) as election:
        client = redis.Redis.from_url(url)
        while member not in {m.member for m in election.members()}:
            time.sleep(0.01)
        emit("joined", member=member)
        client.blpop([go_key], timeout=60)
        results = {name: election.register_name(name, member) for name in names}
        emit("registered", member=member, results=results)
        stop.wait()
        client.close()


def count(url: str, resource: str, times: int, face: str) -> None:
    key = f"counter:{{{resource}}}"
    if face == "sync":
        client = redis.Redis.from_url(url)

        def bump() -> None:
            value = int(client.get(key) or 0)
            time.sleep(GAP_S)
            client.set(key, value + 1)

        for _ in range(times):
            trans(client, resource, bump, ttl_s=5)
        client.close()
    else:

        async def main() -> None:
            aclient = redis.asyncio.Redis.from_url(url)

            async def bump() -> None:
                value = int(await aclient.get(key) or 0)
                await asyncio.sleep(GAP_S)
                await aclient.set(key, value + 1)

            for _ in range(times):
                await atrans(aclient, resource, bump, ttl_s=5)
            await aclient.aclose()

        asyncio.run(main())
    emit("counted")


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "register":
        register(rest[0], rest[1], rest[2], rest[3], rest[4:])
    else:
        count(rest[0], rest[1], int(rest[2]), rest[3])
