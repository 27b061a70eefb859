"""python-redis-lock as a leader election: ``Lock(conn, name, expire=ttl, auto_renewal=True,
id=member)`` and a blocking ``acquire()`` (SET NX EX, then BLPOP on the lock's signal list for
up to ``expire`` seconds: a release wakes a waiter at once, an expiry does not). The renewal
thread extends every 2/3 of the ttl; when an extend fails it dies with ``NotAcquired``, which is
the only way the process learns it lost (caught with ``threading.excepthook``).
SIGTERM: ``release()`` (DEL plus an RPUSH on the signal list, waking one waiter)."""

from __future__ import annotations

import contextlib
import threading

import redis
import redis_lock

from benchmarks.contenders.common import Emitter, Shutdown, parse_args, raise_on_sigterm


def leader_key(pool: str) -> str:
    return f"lock:prl:{{{pool}}}:leader"


def main() -> int:
    args = parse_args(__doc__ or "")
    emit = Emitter(args.pool, args.member_id)
    raise_on_sigterm()
    conn = redis.StrictRedis.from_url(args.redis)
    lost = threading.Event()

    def on_thread_error(hook: threading.ExceptHookArgs) -> None:
        if hook.exc_type is redis_lock.NotAcquired:
            lost.set()
        else:
            threading.__excepthook__(hook)

    threading.excepthook = on_thread_error
    leading = False
    lock = None
    try:
        conn.ping()
        emit.ready()
        while True:
            lost.clear()
            lock = redis_lock.Lock(conn, leader_key(args.pool)[len("lock:") :], expire=args.ttl,
                                   id=args.member_id, auto_renewal=True)  # fmt: skip
            lock.acquire(blocking=True)
            leading = True
            emit.elected()
            while not lost.wait(3600):
                pass
            leading = False
            emit.revoked("lease_lost")
    except Shutdown:
        pass
    finally:
        if leading and lock is not None:
            emit.revoked("shutdown")
            with contextlib.suppress(redis_lock.NotAcquired):
                lock.release()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
