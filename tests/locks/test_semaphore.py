"""Queued recipes on fakeredis (with its Lua): a semaphore's permits, fencing tokens and leases,
the first-come-first-served queue, read-write locks with writer preference, the fair lock, and
bad data refused; the history check of permits. Timing, processes and signals:
``test_recipes_procs.py``."""

from __future__ import annotations

import asyncio
import time

import fakeredis
import pytest
import redis_lock

from leaderpool import AsyncLock, AsyncSemaphore, Lock, ReadWriteLock
from leaderpool.backend.keys import QueueKeys
from leaderpool.errors import BadPoolData, ConfigError, LockNotAcquired, LockUpgradeRefused
from leaderpool.locks import queue_core
from leaderpool.locks.fair_lock import AsyncFairLock, FairLock
from leaderpool.locks.queue_core import Taken
from leaderpool.locks.rwlock import AsyncReadWriteLock
from leaderpool.locks.semaphore import QueuedHolder, Semaphore
from leaderpool.testing.history.permits import Hold, check, holds_from_actions
from leaderpool.util.timeouts import within


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def queue_up(holder: QueuedHolder) -> Taken:
    """One acquire attempt that stays in the queue when refused (as a blocked waiter does)."""
    s = holder.state
    return Taken.parse(holder._scripts.acquire.blocking(s.keys.script_keys, s.acquire_args(waiting=True)))


# ---- settings and keys ----


def test_the_keys_share_the_resources_hash_tag_under_the_prefix() -> None:
    """Holders, queue, waiter leases, token and arrival counters, and each wake-up list, on one slot."""
    keys = QueueKeys("semaphore", "gpu")
    assert [
        "leaderpool:semaphore:{gpu}",
        "leaderpool:semaphore-queue:{gpu}",
        "leaderpool:semaphore-waiting:{gpu}",
        "leaderpool:semaphore-token:{gpu}",
        "leaderpool:semaphore-seq:{gpu}",
        "leaderpool:semaphore-permits:{gpu}",
        "leaderpool:semaphore-conns:{gpu}",
    ] == keys.script_keys
    assert "leaderpool:semaphore-wake:{gpu}:abc" == keys.wake("abc")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"permits": 0}, "permits"), ({"permits": 1.5}, "permits"), ({"permits": 2, "ttl_s": 0}, "ttl_s")],
)
def test_bad_semaphore_settings_are_refused_with_the_reason(
    client: fakeredis.FakeRedis, kwargs: dict[str, float], match: str
) -> None:
    """Permits a whole number >= 1, a lease of at least 0.1 s."""
    with pytest.raises(ConfigError, match=match):
        Semaphore(client, "gpu", **kwargs)  # type: ignore[arg-type]


# ---- the semaphore ----


def test_at_most_n_hold_and_each_grant_has_a_higher_token(client: fakeredis.FakeRedis) -> None:
    """Two permits: two holders, a third refused; a release lets it in with the next token."""
    a, b, c = (Semaphore(client, "gpu", permits=2, ttl_s=5) for _ in range(3))
    assert a.acquire(blocking=False) and b.acquire(blocking=False)
    assert not c.acquire(blocking=False)
    assert (1, 2) == (a.token, b.token)
    a.release()
    assert c.acquire(blocking=False)
    assert 3 == c.token and c.holding
    with pytest.raises(LockNotAcquired, match="semaphore 'gpu'"), Semaphore(client, "gpu", permits=2, timeout=0.1):
        pass
    b.release()
    c.release()
    assert 0 == client.zcard("leaderpool:semaphore:{gpu}")
    assert 0 == client.zcard("leaderpool:semaphore-queue:{gpu}")  # the refused ones left the queue


def test_another_permit_count_is_refused_while_the_semaphore_is_in_use(client: fakeredis.FakeRedis) -> None:
    """While anyone holds or waits with permits=2, a taker with permits=3 gets a ConfigError
    naming both counts (nothing written); once the semaphore is idle, the count may change."""
    with Semaphore(client, "gpu", permits=2, ttl_s=5):
        with pytest.raises(ConfigError, match="in use with permits=2, not 3"):
            Semaphore(client, "gpu", permits=3).acquire()
        assert 0 == client.zcard("leaderpool:semaphore-queue:{gpu}")
    with Semaphore(client, "gpu", permits=3, ttl_s=5) as permit:
        assert permit.holding


def test_a_permit_not_renewed_is_reclaimed_at_its_lease_end_and_its_holder_knows(client: fakeredis.FakeRedis) -> None:
    """A holder that stops renewing (crashed, paused): its permit goes to the next taker once
    its lease ends on Redis's clock; the old holder's ``holding`` turned false by then, and its
    release reports it lost instead of freeing the new holder's permit."""
    old = Semaphore(client, "gpu", permits=1, ttl_s=0.3, auto_renew=False)
    assert old.acquire()
    new = Semaphore(client, "gpu", permits=1, ttl_s=5)
    assert new.acquire(timeout=10)
    assert not old.holding
    with pytest.raises(redis_lock.NotAcquired):
        old.extend()
    old.release()
    assert old.lost and new.holding and not new.lost
    assert 1 == client.zcard("leaderpool:semaphore:{gpu}")
    new.release()


def test_waiters_are_served_in_arrival_order(client: fakeredis.FakeRedis) -> None:
    """While the permit is held, A then B queue; on release, B (second) is refused and A gets
    it, though both ask at once; a newcomer never jumps the queue."""
    holder = Semaphore(client, "gpu", permits=1, ttl_s=5)
    holder.acquire()
    a, b = Semaphore(client, "gpu", permits=1, ttl_s=5), Semaphore(client, "gpu", permits=1, ttl_s=5)
    assert not queue_up(a).granted and not queue_up(b).granted
    holder.release()
    assert not queue_up(b).granted
    assert not Semaphore(client, "gpu", permits=1).acquire(blocking=False)  # a newcomer waits its turn
    taken = queue_up(a)
    assert taken.granted
    a.state.token = taken.token  # (taken through the script: what acquire would record)
    a.release()
    assert queue_up(b).granted


def test_a_release_wakes_exactly_the_next_in_line(client: fakeredis.FakeRedis) -> None:
    """The release pushes the head's own wake-up list, not the others'."""
    holder = Semaphore(client, "gpu", permits=1, ttl_s=5)
    holder.acquire()
    a, b = Semaphore(client, "gpu", permits=1, ttl_s=5), Semaphore(client, "gpu", permits=1, ttl_s=5)
    queue_up(a)
    queue_up(b)
    assert 0 == client.llen(a.state.wake_key)
    holder.release()
    assert (1, 0) == (client.llen(a.state.wake_key), client.llen(b.state.wake_key))


def test_a_dead_waiter_leaves_the_queue_at_its_waiter_lease_end(
    client: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A waiter that stops coming back (killed while queued) does not hold up those behind it."""
    monkeypatch.setattr(queue_core, "WAITER_LEASE_S", 0.2)
    holder = Semaphore(client, "gpu", permits=1, ttl_s=5)
    holder.acquire()
    dead, alive = Semaphore(client, "gpu", permits=1), Semaphore(client, "gpu", permits=1)
    queue_up(dead)
    holder.release()
    assert not alive.acquire(blocking=False)  # the dead one is first, for now
    time.sleep(0.3)
    assert alive.acquire(blocking=False)
    alive.release()


def test_a_key_of_the_wrong_type_is_refused_and_nothing_written(client: fakeredis.FakeRedis) -> None:
    """Bad data in any of the recipe's keys: a clear error naming the key; no token handed out."""
    client.set("leaderpool:semaphore-queue:{gpu}", "not a zset")
    with pytest.raises(BadPoolData, match=r"semaphore-queue:\{gpu\} holds a string, not a zset"):
        Semaphore(client, "gpu", permits=1).acquire()
    assert client.get("leaderpool:semaphore-token:{gpu}") is None
    assert 0 == client.zcard("leaderpool:semaphore:{gpu}")


def test_the_asyncio_face_shares_the_permits_with_the_blocking_one() -> None:
    """An AsyncSemaphore holder and a Semaphore holder use the same permits and token counter."""
    server = fakeredis.FakeServer()
    sync = fakeredis.FakeRedis(server=server)

    async def scenario() -> None:
        aclient = fakeredis.FakeAsyncRedis(server=server)
        async with AsyncSemaphore(aclient, "gpu", permits=1, ttl_s=5) as permit:
            assert 1 == permit.token and permit.holding
            assert not Semaphore(sync, "gpu", permits=1).acquire(blocking=False)
        with Semaphore(sync, "gpu", permits=1):
            assert not await AsyncSemaphore(aclient, "gpu", permits=1).acquire(timeout=0)
        await aclient.aclose()

    asyncio.run(within(scenario(), 30))


# ---- read-write locks ----


def test_readers_share_and_a_writer_is_alone(client: fakeredis.FakeRedis) -> None:
    """Two readers at once; no writer while they read; no reader while a writer writes."""
    one, two = ReadWriteLock(client, "catalog", ttl_s=5), ReadWriteLock(client, "catalog", ttl_s=5)
    with one.read() as r1, two.read() as r2:
        assert r1.token is not None and r2.token is not None and r1.token < r2.token
        assert not ReadWriteLock(client, "catalog").write().acquire(blocking=False)
    with one.write() as w:
        assert w.holding
        assert not two.read().acquire(blocking=False)
        assert not two.write().acquire(blocking=False)


def test_a_waiting_writer_holds_new_readers_back(client: fakeredis.FakeRedis) -> None:
    """Writer preference: with a reader holding and a writer queued, a new reader waits; once
    the reader leaves, the writer goes first, then the readers."""
    reader = ReadWriteLock(client, "catalog", ttl_s=5).read()
    reader.acquire()
    writer = ReadWriteLock(client, "catalog", ttl_s=5).write()
    assert not queue_up(writer).granted
    late_reader = ReadWriteLock(client, "catalog", ttl_s=5).read()
    assert not queue_up(late_reader).granted
    reader.release()
    assert not queue_up(late_reader).granted
    assert queue_up(writer).granted


def test_an_upgrade_is_refused_with_a_clear_error(client: fakeredis.FakeRedis) -> None:
    """Write while the same object reads (or read while it writes): LockUpgradeRefused; after
    the release, either side may be taken."""
    rw = ReadWriteLock(client, "catalog", ttl_s=5)
    with rw.read(), pytest.raises(LockUpgradeRefused, match="upgrades are refused"):
        rw.write()
    with rw.write(), pytest.raises(LockUpgradeRefused, match="already holds its write lock"):
        rw.read()
    with rw.write() as w:
        assert w.holding


def test_the_asyncio_read_write_lock_excludes_the_blocking_one() -> None:
    server = fakeredis.FakeServer()
    sync = fakeredis.FakeRedis(server=server)

    async def scenario() -> None:
        aclient = fakeredis.FakeAsyncRedis(server=server)
        async with AsyncReadWriteLock(aclient, "catalog", ttl_s=5).write() as w:
            assert w.token is not None
            assert not ReadWriteLock(sync, "catalog").read().acquire(blocking=False)
        await aclient.aclose()

    asyncio.run(within(scenario(), 30))


# ---- the fair lock ----


def test_a_fair_lock_is_a_one_permit_queue_with_tokens(client: fakeredis.FakeRedis) -> None:
    """``Lock(fair=True)`` gives a FairLock: exclusive, tokens growing, arrival order."""
    first = Lock(client, "orders", fair=True, ttl_s=5)
    assert isinstance(first, FairLock)
    assert isinstance(Lock(client, "orders"), Lock)
    with first:
        waiter = Lock(client, "orders", fair=True, ttl_s=5)
        assert not queue_up(waiter).granted
        assert not Lock(client, "orders", fair=True).acquire(blocking=False)
    assert Taken(True, 2, 0) == queue_up(waiter)


def test_the_asyncio_fair_lock() -> None:
    async def scenario() -> None:
        aclient = fakeredis.FakeAsyncRedis()
        lock = AsyncLock(aclient, "orders", fair=True, ttl_s=5)
        assert isinstance(lock, AsyncFairLock)
        async with lock:
            assert lock.token == 1
        await aclient.aclose()

    asyncio.run(within(scenario(), 30))


# ---- the history check ----


def test_the_permit_check_finds_one_holder_too_many_and_a_writer_with_a_reader() -> None:
    """Three overlapping permits of two: invalid; touching holds do not overlap; a write hold
    overlapping a read hold: invalid."""
    holds = [Hold("a", 1, "permit", 0, 2), Hold("b", 2, "permit", 1, 3), Hold("c", 3, "permit", 2, 4)]
    assert check(holds, 2).valid and 2 == check(holds, 2).most
    assert not check([*holds, Hold("d", 4, "permit", 2.5, 2.6)], 2).valid
    assert not check([Hold("r", 1, "read", 0, 2), Hold("w", 2, "write", 1, 3)], 10).valid
    assert check([Hold("r", 1, "read", 0, 1), Hold("w", 2, "write", 1, 3)], 10).valid
    assert [Hold("a", 1, "permit", 1.0, 3.0)] == holds_from_actions([("a", 1, "permit", 3.0), ("a", 1, "permit", 1.0)])
