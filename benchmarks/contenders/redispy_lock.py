"""redis-py's ``Lock`` as a leader election: a blocking ``acquire()`` (it retries SET NX PX every
``sleep`` = 0.1 s, the default), then ``reacquire()`` every ttl/3 to keep the lease; a failed
reacquire (``LockNotOwnedError``) is the moment it knows it lost. SIGTERM: ``release()``."""

from __future__ import annotations

import contextlib

import redis
from redis.exceptions import LockError, LockNotOwnedError

from benchmarks.contenders.common import Emitter, Shutdown, parse_args, raise_on_sigterm, sleep


def leader_key(pool: str) -> str:
    return f"redispy:{{{pool}}}:leader"


def main() -> int:
    args = parse_args(__doc__ or "")
    emit = Emitter(args.pool, args.member_id)
    raise_on_sigterm()
    client = redis.Redis.from_url(args.redis, socket_timeout=args.ttl)
    lock = client.lock(leader_key(args.pool), timeout=args.ttl, sleep=0.1, thread_local=False)
    leading = False
    try:
        client.ping()
        emit.ready()
        while True:
            lock.acquire(blocking=True)
            leading = True
            emit.elected()
            while leading:
                sleep(args.ttl / 3)
                try:
                    lock.reacquire()
                except LockNotOwnedError:
                    leading = False
                    emit.revoked("lease_lost")
    except Shutdown:
        pass
    finally:
        if leading:
            emit.revoked("shutdown")
            with contextlib.suppress(LockError):
                lock.release()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
