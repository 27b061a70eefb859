"""tooz with its Redis driver, as its documentation shows: ``get_coordinator(url, member,
timeout=ttl)``, ``start()``, ``create_group``/``join_group``, ``watch_elected_as_leader``, then a
loop of ``run_watchers()`` (every 0.1 s: each call tries the group's leader lock with SET NX PX)
and ``heartbeat()`` (paced like tooz's own ``Heart``: half the interval it returns).

tooz has no "you lost leadership" callback, and its Redis driver implements neither
``get_leader`` nor ``stand_down_group_leader``: a member knows it stopped leading only when it
stops. SIGTERM: ``stop()`` (leaves the group, releases the leader lock)."""

from __future__ import annotations

import contextlib
import time
from typing import Any
from urllib.parse import urlsplit

from tooz import coordination

from benchmarks.contenders.common import Emitter, Shutdown, parse_args, raise_on_sigterm, sleep

POLL_S = 0.1


def leader_key(pool: str) -> str:
    """The driver's lock key for the group's leader (its value is an opaque token)."""
    return f"_tooz_leader_of_{pool}_lock"


def tooz_url(redis_url: str) -> str:
    parts = urlsplit(redis_url)
    return f"redis://{parts.hostname}:{parts.port}"


def main() -> int:
    args = parse_args(__doc__ or "")
    emit = Emitter(args.pool, args.member_id)
    raise_on_sigterm()
    if args.ttl != int(args.ttl):
        raise SystemExit("tooz's Redis driver takes whole seconds (it does int(timeout))")
    coordinator = coordination.get_coordinator(tooz_url(args.redis), args.member_id.encode(), timeout=int(args.ttl))
    return play(coordinator, args, emit, watch_timeout=None)


def play(coordinator: coordination.CoordinationDriver, args: Any, emit: Emitter, *, watch_timeout: float | None) -> int:
    """The member's life through tooz's API, whichever driver is under it: join the group, stand
    for leader, then ``run_watchers()`` every :data:`POLL_S` and ``heartbeat()`` at the pace of
    tooz's ``Heart``, until SIGTERM (``stop()``)."""
    group = args.pool.encode()
    leading = False

    def on_elected(event: coordination.LeaderElected) -> None:
        nonlocal leading
        leading = True
        emit.elected()

    started = False
    try:
        coordinator.start()
        started = True
        with contextlib.suppress(coordination.GroupAlreadyExist):
            coordinator.create_group(group).get()
        with contextlib.suppress(coordination.MemberAlreadyExist):
            coordinator.join_group(group).get()
        coordinator.watch_elected_as_leader(group, on_elected)
        emit.ready()
        next_beat = 0.0
        while True:
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + (coordinator.heartbeat() or args.ttl) / 2
            coordinator.run_watchers(timeout=watch_timeout)
            sleep(POLL_S)
    except Shutdown:
        pass
    finally:
        if leading:
            emit.revoked("shutdown")
        if started:
            coordinator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
