"""Queued recipes against a real redis-server, with real processes and signals: a killed
holder's permit reclaimed at its lease end, a frozen holder that finds itself lost and stops
(never one holder too many acting), arrival order, writer preference, waiters that block on
their wake-up list instead of polling, histories checked, and ``leaderpool-cli lock -n``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
import redis.asyncio

from leaderpool.locks.async_semaphore import AsyncSemaphore
from leaderpool.locks.rwlock import ReadWriteLock
from leaderpool.locks.semaphore import Semaphore
from leaderpool.testing.history.permits import check, holds_from_actions
from leaderpool.testing.processes import Child, ChildGroup
from leaderpool.testing.redis_server import RedisServer
from leaderpool.util.timeouts import within
from tests.support.worker_procs import PATIENCE, ROOT, clean_env, cli, eventually


def start(group: ChildGroup, url: str, kind: str, name: str, log: Path, *args: object) -> Child:
    """A holder process (``tests.support.recipes_procs``): KIND NAME ROUNDS ACT_S [PERMITS] [TTL_S]."""
    argv = [sys.executable, "-m", "tests.support.recipes_procs", kind, url, "res", name, str(log), *map(str, args)]
    return group.start(argv, name=name, env=clean_env(), cwd=ROOT)


def actions(log: Path) -> list[tuple[str, int, str, float]]:
    out = []
    for line in log.read_text().splitlines():
        name, token, kind, at = line.split()
        out.append((name, int(token), kind, float(at)))
    return out


def acquired(child: Child) -> int:
    return int(child.wait_for(lambda e: e["event"] == "acquired", PATIENCE * 2)["token"])


# ---- one process, every Redis version ----


def test_a_waiter_blocks_on_its_wake_up_list_and_a_release_wakes_it(redis_server: RedisServer) -> None:
    """While the only permit is held for 3 s, the waiter sits in BLPOP (seen in CLIENT LIST), tries
    only a few times (a 50 ms poller would try ~60), and takes the permit once it is released."""
    client = redis.Redis.from_url(redis_server.url)
    holder = Semaphore(client, "gpu", permits=1, ttl_s=5)
    holder.acquire()
    waiter = Semaphore(redis.Redis.from_url(redis_server.url), "gpu", permits=1, ttl_s=5, timeout=60)
    thread = threading.Thread(target=waiter.acquire)
    began = time.monotonic()
    thread.start()
    eventually(lambda: any(c.get("cmd") == "blpop" for c in client.client_list()))
    time.sleep(3)
    assert waiter.token is None
    holder.release()
    thread.join(PATIENCE)
    waited = time.monotonic() - began
    assert waiter.token == 2 and waiter.holding
    # one attempt per WAITER_BLOCK_S (2 s) at most, plus the first and the wake-up
    assert waiter.attempts <= waited / 2 + 2, (waiter.attempts, waited)
    waiter.release()
    assert 0 == client.zcard("leaderpool:semaphore:{gpu}") + client.zcard("leaderpool:semaphore-queue:{gpu}")
    client.close()


# ---- several processes ----


@pytest.mark.slow
def test_a_killed_holders_permit_is_reclaimed_at_its_lease_end(redis_one: RedisServer, tmp_path: Path) -> None:
    """Two permits, two holders; SIGKILL one: a third process gets its permit (once the killed
    one's 1 s lease ends, or at once, its death proved: test_fast_reclaim), while the live holder
    keeps its own (renewed)."""
    log = tmp_path / "log"
    with ChildGroup() as group:
        a = start(group, redis_one.url, "permit", "a", log, 1, 60, 2, 1)
        b = start(group, redis_one.url, "permit", "b", log, 1, 60, 2, 1)
        acquired(a), acquired(b)
        c = start(group, redis_one.url, "permit", "c", log, 1, 0.2, 2, 1)
        time.sleep(1.5)  # c waits: both permits are held and renewed past their 1 s lease
        assert not c.of("acquired")
        a.kill()
        acquired(c)
        assert 0 == c.wait(PATIENCE)
        assert b.alive() and not b.of("lost")
    assert check(holds_from_actions(actions(log)), 2).valid


@pytest.mark.slow
def test_a_frozen_holder_finds_itself_lost_and_stops_never_overlapping(redis_one: RedisServer, tmp_path: Path) -> None:
    """One permit, 1 s lease. SIGSTOP the holder past its lease: the waiter takes the permit;
    SIGCONT: the old holder sees its renewal deadline passed and stops before acting again, and
    its release says lost. The recorded actions never overlap."""
    log = tmp_path / "log"
    with ChildGroup() as group:
        old = start(group, redis_one.url, "permit", "old", log, 1, 60, 1, 1)
        acquired(old)
        new = start(group, redis_one.url, "permit", "new", log, 1, 3, 1, 1)
        time.sleep(0.5)
        old.signal(signal.SIGSTOP)
        acquired(new)
        time.sleep(1.0)
        old.signal(signal.SIGCONT)
        old.wait_for(lambda e: e["event"] == "lost", PATIENCE)
        assert old.wait_for(lambda e: e["event"] == "released", PATIENCE)["lost"]
        assert 0 == new.wait(PATIENCE) and 0 == old.wait(PATIENCE)
    holds = holds_from_actions(actions(log))
    assert {"old", "new"} == {h.process for h in holds}
    result = check(holds, 1)
    assert result.valid, result.witness


@pytest.mark.slow
def test_waiters_get_the_permit_in_arrival_order(redis_one: RedisServer, tmp_path: Path) -> None:
    """Three processes queue one after another behind the holder of a fair lock, which is then
    killed: they are granted in arrival order (their tokens grow in that order)."""
    client = redis.Redis.from_url(redis_one.url)
    log = tmp_path / "log"
    with ChildGroup() as group:
        holder = start(group, redis_one.url, "fair", "holder", log, 1, 60, 1, 2)
        acquired(holder)
        waiters = []
        for i in range(3):
            waiters.append(start(group, redis_one.url, "fair", f"w{i}", log, 1, 0.1, 1, 2))
            queued = i + 1
            eventually(lambda: client.zcard("leaderpool:fair-lock-queue:{res}") == queued)  # noqa: B023 - used at once
        holder.kill()  # its permit comes free at its lease end, to the first in line
        tokens = [acquired(w) for w in waiters]
        for child in waiters:
            assert 0 == child.wait(PATIENCE)
    assert sorted(tokens) == tokens
    assert check(holds_from_actions(actions(log)), 1).valid
    client.close()


@pytest.mark.slow
def test_a_waiting_writer_goes_before_a_later_reader(redis_one: RedisServer, tmp_path: Path) -> None:
    """Writer preference with real processes: a reader holds, a writer queues, then a second
    reader comes (though only readers hold); the first reader dies: the second reader is let in
    only after the writer (its token is higher), and readers and the
    writer never act together."""
    client = redis.Redis.from_url(redis_one.url)
    log = tmp_path / "log"
    with ChildGroup() as group:
        first = start(group, redis_one.url, "read", "r1", log, 1, 60, 1, 2)
        acquired(first)
        writer = start(group, redis_one.url, "write", "w", log, 1, 0.3, 1, 2)
        eventually(lambda: client.zcard("leaderpool:rwlock-queue:{res}") == 1)
        late = start(group, redis_one.url, "read", "r2", log, 1, 0.3, 1, 2)
        eventually(lambda: client.zcard("leaderpool:rwlock-queue:{res}") == 2)
        first.kill()  # its read hold ends at its lease end
        writer_token, late_token = acquired(writer), acquired(late)
        for child in (writer, late):
            assert 0 == child.wait(PATIENCE)
    assert writer_token < late_token
    result = check(holds_from_actions(actions(log)), 99)
    assert result.valid, result.witness
    client.close()


@pytest.mark.slow
def test_histories_of_many_holders_never_exceed_the_permits(redis_one: RedisServer, tmp_path: Path) -> None:
    """Four processes on a two-permit semaphore, and three readers and two writers on a
    read-write lock, several rounds each: never more than two permits acting, never a writer
    with anyone; both permits were used at once at some point."""
    sem_log, rw_log = tmp_path / "sem", tmp_path / "rw"
    with ChildGroup() as group:
        children = [start(group, redis_one.url, "permit", f"p{i}", sem_log, 5, 0.25, 2, 2) for i in range(4)]
        children += [start(group, redis_one.url, "read", f"r{i}", rw_log, 3, 0.1, 1, 2) for i in range(3)]
        children += [start(group, redis_one.url, "write", f"w{i}", rw_log, 3, 0.1, 1, 2) for i in range(2)]
        for child in children:
            assert 0 == child.wait(PATIENCE * 3), child.stderr
    sem = check(holds_from_actions(actions(sem_log)), 2)
    assert sem.valid, sem.witness
    assert 2 == sem.most
    rw = holds_from_actions(actions(rw_log))
    assert 15 == len(rw)
    result = check(rw, 99)
    assert result.valid, result.witness


@pytest.mark.slow
def test_the_lock_command_with_n_runs_at_most_n_commands_at_once(redis_one: RedisServer, tmp_path: Path) -> None:
    """``lock RES -n 2``: four runs, never more than two commands between their start and end
    lines, each with its own token and the permit count in its environment; while both
    permits are held, ``--timeout`` ends with one line naming them."""
    log = tmp_path / "log"
    script = (
        'echo "start $LEADERPOOL_LOCK_TOKEN $LEADERPOOL_LOCK_PERMITS" >> "$1"; sleep 0.5; '
        'echo "end $LEADERPOOL_LOCK_TOKEN x" >> "$1"'
    )
    argv = [sys.executable, "-m", "leaderpool.cli", "--redis", redis_one.url, "lock", "jobs", "-n", "2", "--ttl", "2"]
    with ChildGroup() as group:
        runs = [
            group.add(
                Child([*argv, "--", "sh", "-c", script, "sh", str(log)], name=f"run{i}", env=clean_env(), cwd=ROOT)
            )
            for i in range(4)
        ]
        assert [0, 0, 0, 0] == [run.wait(PATIENCE * 2) for run in runs]
    depth, deepest, tokens = 0, 0, set()
    for line in log.read_text().splitlines():
        kind, token, permits = line.split()
        depth += 1 if kind == "start" else -1
        deepest = max(deepest, depth)
        if kind == "start":
            assert "2" == permits
            tokens.add(token)
    assert deepest <= 2 and 4 == len(tokens)
    ready = tmp_path / "ready"
    with ChildGroup() as group:
        for i in range(2):
            group.add(
                Child(
                    [*argv, "--", "sh", "-c", f"touch {ready}{i}; sleep 30"], name=f"hold{i}", env=clean_env(), cwd=ROOT
                )
            )
        eventually(lambda: Path(f"{ready}0").exists() and Path(f"{ready}1").exists())
        out = cli("--redis", redis_one.url, "lock", "jobs", "-n", "2", "--timeout", "0.5", "--", "true")
    assert 1 == out.returncode
    assert 1 == len(out.stderr.splitlines())
    assert "timed out after 0.5s waiting for lock jobs (all 2 permits are held)" in out.stderr


def test_a_read_write_lock_excludes_across_clients_on_every_redis(redis_server: RedisServer) -> None:
    """The rw scripts on each Redis version: two readers share, a writer waits for both."""
    client = redis.Redis.from_url(redis_server.url)
    one, two = ReadWriteLock(client, "catalog", ttl_s=5), ReadWriteLock(client, "catalog", ttl_s=5)
    with one.read(), two.read():
        assert not ReadWriteLock(client, "catalog").write().acquire(blocking=False)
    with one.write() as w:
        assert w.token == 3 and not two.read().acquire(blocking=False)
    client.close()


@pytest.mark.slow
def test_the_lock_command_stops_its_command_when_its_permit_is_lost(redis_one: RedisServer, tmp_path: Path) -> None:
    """``lock -n``: the permit taken from under it (its holder entry removed, as when its lease
    lapsed and another took it), the renewal finds it gone and the command gets SIGTERM at once
    (its trap runs), with a warning; it does not run on beside the next holder."""
    ready, stopped = tmp_path / "ready", tmp_path / "stopped"
    script = f'trap "touch {stopped}; exit 7" TERM; touch {ready}; while :; do sleep 0.05; done'
    argv = [sys.executable, "-m", "leaderpool.cli", "--redis", redis_one.url, "lock", "jobs", "-n", "1", "--ttl", "1"]
    client = redis.Redis.from_url(redis_one.url)
    with ChildGroup() as group:
        holder = group.add(Child([*argv, "--", "sh", "-c", script], name="holder", env=clean_env(), cwd=ROOT))
        eventually(ready.exists)
        client.delete("leaderpool:semaphore:{jobs}")
        assert 7 == holder.wait(PATIENCE)
        assert stopped.exists()
        assert "permit of jobs lost (renewal found the lock no longer ours): stopping the command" in holder.stderr
    client.close()


def test_an_asyncio_waiter_is_woken_by_a_blocking_release_and_a_cancelled_one_leaves_the_queue(
    redis_one: RedisServer,
) -> None:
    """An AsyncSemaphore waiter blocks on its wake-up list and takes the permit a blocking holder
    releases; a waiter cancelled while queued takes itself out of the queue at once."""
    client = redis.Redis.from_url(redis_one.url)

    async def scenario() -> None:
        aclient = redis.asyncio.Redis.from_url(redis_one.url)
        try:
            holder = Semaphore(client, "gpu", permits=1, ttl_s=5)
            holder.acquire()
            waiter = AsyncSemaphore(aclient, "gpu", permits=1, ttl_s=5, timeout=60)
            task = asyncio.ensure_future(waiter.acquire())
            while not client.zcard("leaderpool:semaphore-queue:{gpu}"):
                await asyncio.sleep(0.02)
            holder.release()
            assert await within(task, PATIENCE)
            assert 2 == waiter.token and waiter.attempts <= 3
            other_client = redis.asyncio.Redis.from_url(redis_one.url)
            cancelled = asyncio.ensure_future(AsyncSemaphore(other_client, "gpu", permits=1).acquire())
            while not client.zcard("leaderpool:semaphore-queue:{gpu}"):
                await asyncio.sleep(0.02)
            cancelled.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cancelled
            assert 0 == client.zcard("leaderpool:semaphore-queue:{gpu}")
            await other_client.aclose()
            await waiter.release()
        finally:
            await aclient.aclose()

    asyncio.run(within(scenario(), 60))
    client.close()


def test_the_lock_command_refuses_a_semaphore_key_of_the_wrong_type_in_one_line(redis_one: RedisServer) -> None:
    """Bad data in Redis: one line naming the key, exit 1, the command not run, nothing written."""
    client = redis.Redis.from_url(redis_one.url)
    client.set("leaderpool:semaphore:{jobs}", "not ours")
    out = cli("--redis", redis_one.url, "lock", "jobs", "-n", "2", "--", "echo", "ran")
    assert 1 == out.returncode and "ran" not in out.stdout
    assert 1 == len(out.stderr.splitlines()), out.stderr
    assert "key leaderpool:semaphore:{jobs} holds a string, not a zset" in out.stderr
    assert [b"leaderpool:semaphore:{jobs}"] == client.keys("*")
    client.close()
