"""Cluster-wide locks (``:global.set_lock`` / ``trans``) on python-redis-lock: exclusion across
processes and across the blocking and asyncio faces, fencing tokens, ``trans``, and
``leaderpool-cli lock`` (flock(1) across machines)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import fakeredis
import pytest
import redis
import redis.asyncio
import redis_lock

from leaderpool.backend.keys import LockKeys
from leaderpool.errors import ConfigError, LockNotAcquired
from leaderpool.locks.async_lock import AsyncLock, atrans
from leaderpool.locks.blocking_lock import Lock, next_wait, trans
from leaderpool.locks.lock_rules import wait_cap
from leaderpool.testing.processes import Child, ChildGroup
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.timeouts import MIN_BLOCK_S, within
from tests.support.worker_procs import PATIENCE, ROOT, clean_env, cli, eventually

# ---- rules, without Redis ----


def test_both_keys_and_the_token_counter_share_the_resources_hash_tag() -> None:
    """python-redis-lock's keys for the resource, on one Cluster slot."""
    keys = LockKeys("orders")
    assert ("leaderpool:lock:{orders}", "leaderpool:lock-signal:{orders}", "leaderpool:lock-token:{orders}") == (
        keys.lock, keys.signal, keys.token
    )  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ttl_s": 0}, "ttl_s"),
        ({"ttl_s": 1.5}, "ttl_s"),
        ({"timeout": -1}, "timeout"),
    ],
)
def test_bad_lock_settings_are_refused_with_the_reason(kwargs: dict[str, float], match: str) -> None:
    """ttl in whole seconds (python-redis-lock's unit), a timeout that is not negative."""
    with pytest.raises(ConfigError, match=match):
        Lock(fakeredis.FakeRedis(), "orders", **kwargs)  # type: ignore[arg-type]


def test_a_resource_with_braces_is_refused() -> None:
    """A brace would break the hash tag."""
    with pytest.raises(ConfigError, match="braces"):
        Lock(fakeredis.FakeRedis(), "{orders}")


def test_a_waiter_blocks_until_the_holders_lock_would_expire_at_the_latest() -> None:
    """A dead holder sends no release signal: the wait ends when its lock expires; it is
    capped by what is left of the timeout, and a freed lock is tried again at once."""
    assert 1.501 == pytest.approx(next_wait(1500, None))
    assert 0.25 == next_wait(1500, 0.25)
    assert 0.0 == next_wait(-2, None)
    assert 1.0 == next_wait(-1, None)  # held without expiry: look again every second
    assert MIN_BLOCK_S == next_wait(1500, 0.0004)  # Redis 6 would read 0.4 ms as "block for ever"
    assert 0.0 == next_wait(1500, -0.1)
    assert 2.5 == next_wait(9000, None, cap_s=2.5)


def test_a_wait_never_outlasts_the_clients_socket_timeout() -> None:
    """redis-py 8 gives every client a 5 s socket timeout: a BLPOP must end well before it."""
    assert 2.5 == wait_cap(redis.Redis(socket_timeout=5))
    assert 5.0 == wait_cap(redis.Redis(socket_timeout=None))


# ---- one process, both faces, real redis-server ----


def test_the_shortest_wait_ends_on_every_redis(redis_server: RedisServer) -> None:
    """A BLPOP of :data:`MIN_BLOCK_S` returns (Redis 6 reads 1 ms as 0, "block for ever")."""
    client = redis.Redis.from_url(redis_server.url, socket_timeout=3)
    try:
        assert client.blpop(["leaderpool:lock-signal:{nobody}"], timeout=MIN_BLOCK_S) is None
    finally:
        client.close()


def test_each_acquisition_gets_a_higher_token_and_a_timeout_raises(redis_server: RedisServer) -> None:
    """Tokens grow with every acquisition of a resource; a second taker with a timeout gets
    LockNotAcquired naming the resource."""
    client = redis.Redis.from_url(redis_server.url)
    tokens = []
    for _ in range(3):
        with Lock(client, "orders", ttl_s=2) as lock:
            tokens.append(lock.token)
            with pytest.raises(LockNotAcquired, match="'orders'") as caught, Lock(client, "orders", timeout=0.2):
                pass
            assert "orders" == caught.value.resource and caught.value.attempts >= 1
    assert [1, 2, 3] == tokens
    with Lock(client, "other", ttl_s=2) as lock:
        assert 1 == lock.token  # per resource
    client.close()


def test_held_locks_are_renewed_past_their_ttl(redis_server: RedisServer) -> None:
    """Two locks held at once (one renewal thread serves both) for over twice the shorter ttl:
    both still ours, both still exclude."""
    client = redis.Redis.from_url(redis_server.url)
    with Lock(client, "orders", ttl_s=2) as lock, Lock(client, "invoices", ttl_s=3) as other:
        time.sleep(4.2)
        assert lock.id.encode() == client.get("leaderpool:lock:{orders}")
        assert other.id.encode() == client.get("leaderpool:lock:{invoices}")
        assert not Lock(client, "orders").acquire(blocking=False)
        assert not lock.lost and not other.lost
    assert client.get("leaderpool:lock:{orders}") is None and client.get("leaderpool:lock:{invoices}") is None
    client.close()


def test_a_lock_taken_from_under_its_holder_is_reported_lost_not_raised(redis_server: RedisServer) -> None:
    """Its renewal finds it gone: ``lost`` turns true, renewal stops, and the release says
    nothing (the next holder's lock is left alone)."""
    client = redis.Redis.from_url(redis_server.url)
    with Lock(client, "orders", ttl_s=1) as lock:
        client.delete("leaderpool:lock:{orders}")
        other = Lock(client, "orders", ttl_s=5)
        assert other.acquire(blocking=False)
        eventually(lambda: lock.lost, timeout=10)
    assert other.id.encode() == client.get("leaderpool:lock:{orders}")
    other.release()
    client.close()


def test_a_sync_holder_and_an_async_holder_exclude_each_other(redis_server: RedisServer) -> None:
    """Either face waits for the other; a release on one face wakes a waiter on the other at
    once (python-redis-lock's signal), and tokens keep growing across faces; a plain
    python-redis-lock user of the name does not share our keys (ours are under the prefix)."""
    url = redis_server.url
    client = redis.Redis.from_url(url)

    async def scenario() -> None:
        aclient = redis.asyncio.Redis.from_url(url)
        try:
            with Lock(client, "orders", ttl_s=5) as held:
                with pytest.raises(LockNotAcquired):
                    async with AsyncLock(aclient, "orders", timeout=0.2):
                        pass
                waiter = asyncio.ensure_future(AsyncLock(aclient, "orders", ttl_s=5, timeout=10).acquire())
                await asyncio.sleep(0.2)
                assert not waiter.done()
                sync_token = held.token
                released = time.monotonic()
            # released: the waiter wakes on the signal, long before the 5 s ttl
            assert await within(waiter, 10)
            assert time.monotonic() - released < 2.5
            assert int(client.get("leaderpool:lock-token:{orders}") or 0) > (sync_token or 0)
            async_lock = AsyncLock(aclient, "orders", ttl_s=5)
            assert not await async_lock.acquire(timeout=0.1)  # the waiter above holds it
            # our keys are under the prefix: a plain python-redis-lock user of the name has its own
            # (lock:{orders}), and its scripts still work after ours ran in this process
            plain = redis_lock.Lock(client, "{orders}", expire=5)
            assert plain.acquire(blocking=False)
            await aclient.delete("leaderpool:lock:{orders}")
            async with AsyncLock(aclient, "orders", ttl_s=5) as alock:
                assert not Lock(client, "orders").acquire(blocking=False)
                assert alock.token is not None
            plain.release()
            assert not Lock(client, "orders", prefix="other").keys.lock.startswith("leaderpool:")
            last = Lock(client, "orders", ttl_s=5)
            assert last.acquire(blocking=False)
            last.release()
        finally:
            await aclient.aclose()

    asyncio.run(within(scenario(), 60))
    client.close()


def test_trans_returns_the_result_and_gives_up_with_a_clear_error(redis_server: RedisServer) -> None:
    """trans runs fn under the lock and returns its result; with the lock held elsewhere it
    raises LockNotAcquired after its retries; atrans likewise."""
    client = redis.Redis.from_url(redis_server.url)
    assert 42 == trans(client, "orders", lambda: 42)
    with Lock(client, "orders", ttl_s=5):
        with pytest.raises(LockNotAcquired, match="gave up after 0 retries"):
            trans(client, "orders", lambda: 1, retries=0)

        async def attempt() -> None:
            aclient = redis.asyncio.Redis.from_url(redis_server.url)

            async def fn() -> int:
                return 1

            try:
                with pytest.raises(LockNotAcquired, match="gave up after 1 retries"):
                    await atrans(aclient, "orders", fn, retries=1, ttl_s=1)
            finally:
                await aclient.aclose()

        asyncio.run(within(attempt(), 60))
    with pytest.raises(ConfigError, match="retries"):
        trans(client, "orders", lambda: 1, retries=-1)
    client.close()


# ---- several processes ----


@pytest.mark.slow
def test_trans_from_several_processes_loses_no_update(redis_server: RedisServer) -> None:
    """Four processes, two on each face, each do 15 read-modify-write increments under trans
    with a pause between the read and the write: the counter ends at exactly 60."""
    with ChildGroup() as group:
        argv = [sys.executable, "-m", "tests.support.names_locks_procs", "count", redis_server.url, "ctr", "15"]
        children = [
            group.start([*argv, face], name=f"{face}{i}", env=clean_env(), cwd=ROOT)
            for i, face in enumerate(["sync", "async", "sync", "async"])
        ]
        for child in children:
            child.wait_for(lambda e: e["event"] == "counted", PATIENCE * 3)
            assert 0 == child.wait(PATIENCE)
    client = redis.Redis.from_url(redis_server.url)
    assert 60 == int(client.get("counter:{ctr}") or 0)
    assert 60 == int(client.get("leaderpool:lock-token:{ctr}") or 0)
    client.close()


def _lock_child(group: ChildGroup, url: str, *args: str) -> Child:
    argv = [sys.executable, "-m", "leaderpool.cli", "--redis", url, "lock", *args]
    return group.add(Child(argv, name=f"lock-{len(group.started)}", env=clean_env(), cwd=ROOT))


@pytest.mark.slow
def test_the_lock_command_serialises_processes_with_growing_tokens(redis_server: RedisServer, tmp_path: Path) -> None:
    """Four concurrent ``lock`` runs: their commands never overlap (each writes start and end
    lines; no start comes between another's start and end), the tokens they got grow in the
    order they ran, and each exit code is passed through."""
    log = tmp_path / "log"
    script = (
        'echo "start $LEADERPOOL_LOCK_TOKEN" >> "$1"; sleep 0.1; echo "end $LEADERPOOL_LOCK_TOKEN" >> "$1"; exit $2'
    )
    with ChildGroup() as group:
        children = [
            _lock_child(group, redis_server.url, "jobs", "--ttl", "2", "--", "sh", "-c", script, "sh", str(log), str(i))
            for i in range(4)
        ]
        codes = [child.wait(PATIENCE * 2) for child in children]
    assert [0, 1, 2, 3] == codes
    lines = log.read_text().split()
    pairs = list(zip(lines[0::2], lines[1::2], strict=True))
    assert 8 == len(pairs)
    events = [(lines[i], int(lines[i + 1])) for i in range(0, len(lines), 2)]
    for i in range(0, len(events), 2):
        (kind_a, token_a), (kind_b, token_b) = events[i], events[i + 1]
        assert ("start", "end", token_a) == (kind_a, kind_b, token_b)  # nothing in between
    tokens = [token for kind, token in events if kind == "start"]
    assert sorted(tokens) == tokens and len(set(tokens)) == 4


@pytest.mark.slow
def test_the_lock_command_honours_its_timeout_with_one_line(redis_server: RedisServer, tmp_path: Path) -> None:
    """While another holds the lock, ``--timeout 0.5`` ends with one line on stderr and exit 1,
    without running the command."""
    ready, ran = tmp_path / "ready", tmp_path / "ran"
    with ChildGroup() as group:
        _lock_child(group, redis_server.url, "jobs", "--", "sh", "-c", f"touch {ready}; sleep 30")
        eventually(ready.exists)
        out = cli("--redis", redis_server.url, "lock", "jobs", "--timeout", "0.5", "--", "touch", str(ran))
    assert 1 == out.returncode
    assert 1 == len(out.stderr.splitlines()) and "timed out after 0.5s waiting for lock jobs" in out.stderr
    assert not ran.exists()


@pytest.mark.slow
def test_a_killed_holder_frees_the_lock_within_its_ttl_and_its_command_dies_with_it(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """SIGKILL of ``lock``: its command is killed too (nothing runs on unlocked), and a waiter
    gets the lock once the 1 s ttl ran out (bounded generously for a loaded machine)."""
    pidfile = tmp_path / "pid"
    with ChildGroup() as group:
        script = f"echo $$ > {pidfile}; exec sleep 30"
        holder = _lock_child(group, redis_server.url, "jobs", "--ttl", "1", "--", "sh", "-c", script)
        eventually(lambda: pidfile.exists() and pidfile.read_text().strip())
        command_pid = int(pidfile.read_text())
        killed = holder.kill()
        out = cli("--redis", redis_server.url, "lock", "jobs", "--ttl", "1", "--timeout", "10", "--", "true")
        took = time.time() - killed
    assert 0 == out.returncode, out.stderr
    assert took < 1.0 + 3.0  # the ttl, plus a generous allowance for a loaded machine
    eventually(lambda: not _alive(command_pid))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_reaches_the_command_and_the_lock_is_released_after_it_exits(
    redis_server: RedisServer, tmp_path: Path, sig: signal.Signals
) -> None:
    """SIGTERM or SIGINT to ``lock``: the command's own handler runs (its exit code comes
    back), and the lock is free at once afterwards (not after the 10 s ttl)."""
    ready = tmp_path / "ready"
    script = f'trap "exit 7" TERM INT; touch {ready}; while :; do sleep 0.05; done'
    with ChildGroup() as group:
        holder = _lock_child(group, redis_server.url, "jobs", "--", "sh", "-c", script)
        eventually(ready.exists)
        holder.signal(sig)
        assert 7 == holder.wait(PATIENCE)
    client = redis.Redis.from_url(redis_server.url)
    assert client.get("leaderpool:lock:{jobs}") is None
    client.close()


def _blocked_signals(pid: int, tid: int) -> set[int]:
    """The signals thread ``tid`` of process ``pid`` blocks (its SigBlk mask)."""
    for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            mask = int(line.split()[1], 16)
            return {n for n in range(1, 65) if mask & (1 << (n - 1))}
    return set()


def test_only_the_lock_commands_main_thread_takes_its_signals(redis_server: RedisServer, tmp_path: Path) -> None:
    """The kernel may hand a process's signal to any thread that does not block it, and Python
    runs handlers on the main thread only: the renewal thread blocks SIGTERM, SIGINT and SIGHUP,
    so they interrupt the main thread's wait for the command and are forwarded at once (a
    SIGINT taken by the renewal thread was lost while the command ran on)."""
    ready = tmp_path / "ready"
    with ChildGroup() as group:
        holder = _lock_child(group, redis_server.url, "jobs", "--", "sh", "-c", f"touch {ready}; sleep 30")
        eventually(ready.exists)
        pid = holder.pid
        others = eventually(lambda: [int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid])
        # (the renewal thread starts just after the command)
        wanted = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
        assert all(wanted <= _blocked_signals(pid, t) for t in others), [_blocked_signals(pid, t) for t in others]
        assert not wanted & _blocked_signals(pid, pid)
        holder.signal(signal.SIGTERM)
        assert 128 + signal.SIGTERM == holder.wait(PATIENCE)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): it is dead once its state says so
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
