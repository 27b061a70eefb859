"""tooz's API on the leaderpool driver (``leaderpool://``): the tooz contender's very loop
(``create_group``/``join_group``, ``watch_elected_as_leader``, then ``run_watchers()`` every 0.1 s
and ``heartbeat()`` at the pace tooz's ``Heart`` keeps), with only the URL changed.

Under it, leaderpool keeps the lead in the background and fails over on its own (fast failover,
a hand-over on ``stop()``); the application learns it leads at its next ``run_watchers()``, so
the time to "elected" includes up to one poll. SIGTERM: ``stop()`` (hands the lead over, leaves
the group)."""

from __future__ import annotations

from urllib.parse import urlsplit

from tooz import coordination

from benchmarks.contenders.common import Emitter, parse_args, raise_on_sigterm
from benchmarks.contenders.tooz_redis import POLL_S, play
from leaderpool.backend.keys import Keyspace


def leader_key(pool: str) -> str:
    """The pool's leader key: the driver's election is leaderpool's."""
    return Keyspace(pool).leader


def tooz_url(redis_url: str, ttl: float) -> str:
    parts = urlsplit(redis_url)
    return f"leaderpool://{parts.hostname}:{parts.port}/0?timeout={ttl}"


def main() -> int:
    args = parse_args(__doc__ or "")
    emit = Emitter(args.pool, args.member_id)
    raise_on_sigterm()
    coordinator = coordination.get_coordinator(tooz_url(args.redis, args.ttl), args.member_id.encode())
    return play(coordinator, args, emit, watch_timeout=POLL_S)


if __name__ == "__main__":
    raise SystemExit(main())
