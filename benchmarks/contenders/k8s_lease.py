"""A Kubernetes client-go-style lease on raw redis-py: the leader renews every ttl/3 and stops
acting when it has gone ``renew deadline`` (2/3 of the lease, client-go's 10 s of 15 s) without
a successful renewal; candidates try to take the lease every 2/15 of it (client-go's 2 s retry
period of a 15 s lease; client-go also adds up to 1.2x jitter, left out here).
The lease is a key holding the holder's id with PX = the lease. SIGTERM: release (delete the key
if still ours, like client-go's ``ReleaseOnCancel``)."""

from __future__ import annotations

import contextlib
import time

import redis

from benchmarks.contenders.common import Emitter, Shutdown, parse_args, raise_on_sigterm, sleep

# KEYS[1] lease key; ARGV[1] holder, ARGV[2] lease ms; returns 1 when renewed, 0 when not ours.
RENEW = """
local lease_key = KEYS[1]
local holder, lease_ms = ARGV[1], ARGV[2]
if redis.call('GET', lease_key) ~= holder then return 0 end
redis.call('PEXPIRE', lease_key, lease_ms)
return 1
"""

# KEYS[1] lease key; ARGV[1] holder; returns 1 when released, 0 when not ours.
RELEASE = """
local lease_key = KEYS[1]
local holder = ARGV[1]
if redis.call('GET', lease_key) ~= holder then return 0 end
return redis.call('DEL', lease_key)
"""


def leader_key(pool: str) -> str:
    return f"k8slease:{{{pool}}}:leader"


def main() -> int:
    args = parse_args(__doc__ or "")
    emit = Emitter(args.pool, args.member_id)
    raise_on_sigterm()
    key, lease_ms = leader_key(args.pool), max(1, round(args.ttl * 1000))
    renew_every, renew_deadline, retry_period = args.ttl / 3, args.ttl * 2 / 3, args.ttl * 2 / 15
    client = redis.Redis.from_url(args.redis, socket_timeout=renew_deadline / 2)
    renew, release = client.register_script(RENEW), client.register_script(RELEASE)
    leading = False
    try:
        client.ping()
        emit.ready()
        while True:
            sent = time.monotonic()
            if not leading:
                with contextlib.suppress(redis.RedisError):
                    leading = bool(client.set(key, args.member_id, nx=True, px=lease_ms))
                if leading:
                    emit.elected()
                    last_renewed = sent
                    sleep(renew_every - (time.monotonic() - sent))
                else:
                    sleep(retry_period - (time.monotonic() - sent))
                continue
            try:
                ours = bool(renew(keys=[key], args=[args.member_id, lease_ms]))
            except redis.RedisError:
                ours = time.monotonic() < last_renewed + renew_deadline
            else:
                last_renewed = sent if ours else last_renewed
            if not ours:
                leading = False
                emit.revoked("lease_lost")
                continue
            sleep(renew_every - (time.monotonic() - sent))
    except Shutdown:
        pass
    finally:
        if leading:
            emit.revoked("shutdown")
            with contextlib.suppress(redis.RedisError):
                release(keys=[key], args=[args.member_id])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
