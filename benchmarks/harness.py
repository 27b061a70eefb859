"""What the recipe benchmarks share (locks, semaphores, read-write and fair locks, the exec tree):
timing a call, timing a hand-over to a blocked waiter, counting the waiters one release wakes,
polling for a condition, the markdown rows of a percentile table, and the command line of a
section that also runs alone (``--quick``, ``--rounds``, ``--out``, a fresh redis-server, the
result written as JSON by :mod:`benchmarks.results_file`).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import redis

from benchmarks.results_file import RESULTS, write_result
from benchmarks.stats import summary
from leaderpool.testing.redis_server import RedisServer

WARM_UP = 5
"""Calls left out of a timing: scripts loaded, connections open."""
BLOCKED_S = 0.02
"""How long a waiter thread is given to block before the release it waits for."""
JOIN_S = 30.0
"""The longest a benchmark waits for one waiter thread."""


class Holdable(Protocol):
    def acquire(self) -> Any: ...
    def release(self) -> Any: ...


def call_us(
    call: Callable[[], object],
    n: int,
    *,
    before: Callable[[], object] | None = None,
    after: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """Percentiles (us) of ``n`` timed ``call()``s after :data:`WARM_UP` untimed ones; ``before``
    and ``after`` run untimed around each (e.g. making a lock, and releasing it)."""
    samples = []
    for i in range(n + WARM_UP):
        if before is not None:
            before()
        t0 = time.perf_counter_ns()
        call()
        t1 = time.perf_counter_ns()
        if after is not None:
            after()
        if i >= WARM_UP:
            samples.append(t1 - t0)
    return summary(samples, scale=1e-3, digits=1)


def acquire_release_us(make: Callable[[str], Holdable], name: str, n: int) -> dict[str, Any]:
    """An uncontended acquire and its release, timed together, on a fresh object each call."""

    def once() -> None:
        held = make(name)
        held.acquire()
        held.release()

    return call_us(once, n)


def acquire_us(make: Callable[[str], Holdable], name: str, n: int) -> dict[str, Any]:
    """An uncontended acquire alone, on a fresh object each call (made and released untimed)."""
    current: list[Holdable] = []
    return call_us(lambda: current[-1].acquire(), n, before=lambda: current.append(make(name)),
                   after=lambda: current.pop().release())  # fmt: skip


def handover_ns(
    release: Callable[[], object],
    acquire: Callable[[], object],
    *,
    then: Callable[[], object] | None = None,
    blocked_s: float = BLOCKED_S,
    meanwhile: Callable[[], object] | None = None,
) -> int | None:
    """Run ``acquire`` in a thread, give it ``blocked_s`` to block (and run ``meanwhile``), then
    ``release``: the ns from just before the release to the waiter holding (None if it never did
    within :data:`JOIN_S`). ``then`` runs in the waiter's thread once it holds (its release: some
    locks keep their token in a thread-local)."""
    got: list[int] = []

    def wait() -> None:
        acquire()
        got.append(time.perf_counter_ns())
        if then is not None:
            then()

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    time.sleep(blocked_s)
    if meanwhile is not None:
        meanwhile()
    released = time.perf_counter_ns()
    release()
    waiter.join(JOIN_S)
    return got[0] - released if got else None


def handovers_ms(
    url: str,
    make_holder: Callable[[redis.Redis, str], Holdable],
    make_waiter: Callable[[redis.Redis, str], Holdable],
    rounds: int,
    name: Callable[[int], str],
) -> dict[str, Any]:
    """``rounds`` hand-overs (:func:`handover_ns`) from a holder to one blocked waiter, each on a
    client of its own, on the resource ``name(round)``: their summary in ms."""
    holder_client, waiter_client = redis.Redis.from_url(url), redis.Redis.from_url(url)
    samples = []
    try:
        for r in range(rounds):
            held, waiter = make_holder(holder_client, name(r)), make_waiter(waiter_client, name(r))
            held.acquire()
            # the waiter blocked by then (BLPOP, or redis-py's poll)
            took = handover_ns(held.release, waiter.acquire, then=waiter.release)
            if took is not None:
                samples.append(took)
    finally:
        holder_client.close()
        waiter_client.close()
    return summary(samples, scale=1e-6, digits=2)


class CountingRedis(redis.Redis):
    """A client that records when each command it sends starts (a waiter's connection: what it
    sent after a release is what that release woke it to do)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[int] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(time.perf_counter_ns())
        return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]  # redis-py's is untyped

    def sent_between(self, start_ns: int, end_ns: int) -> int:
        return sum(1 for t in self.sent if start_ns <= t < end_ns)


def woken_by_one_release(
    url: str,
    make: Callable[[redis.Redis, str], Holdable],
    resource: str,
    *,
    waiters: int,
    settle_s: float = 0.3,
    blocked_s: float = 0.1,
) -> int:
    """One holder, ``waiters`` blocked on ``resource`` (a thread and connection each, none sending
    for ``blocked_s``), one release: how many waiters sent Redis any command from the release until
    none has for a third of ``settle_s`` (at least ``settle_s``): a waiter that only waits for its
    own wake-up sends nothing, one woken by a broadcast tries again. Then each waiter in turn takes
    and releases, and all are joined."""
    holder_client = redis.Redis.from_url(url)
    clients = [CountingRedis(connection_pool=redis.ConnectionPool.from_url(url)) for _ in range(waiters)]
    finish = threading.Event()

    def wait(client: redis.Redis) -> None:
        held = make(client, resource)
        held.acquire()
        finish.wait(JOIN_S)
        held.release()

    try:
        holder = make(holder_client, resource)
        holder.acquire()
        threads = [threading.Thread(target=wait, args=(c,), daemon=True) for c in clients]
        for t in threads:
            t.start()
        _quiet(clients, quiet_s=blocked_s)  # every waiter blocked by now
        released = time.perf_counter_ns()
        holder.release()
        time.sleep(settle_s)
        _quiet(clients, quiet_s=settle_s / 3)  # a loaded machine: the last woken waiter's retry sent
        woken = len([c for c in clients if c.sent_between(released, time.perf_counter_ns())])
        finish.set()
        for t in threads:
            t.join(JOIN_S)
        return woken
    finally:
        finish.set()
        holder_client.close()
        for c in clients:
            c.close()
            c.connection_pool.disconnect()  # a pool handed in is not closed with its client


def _quiet(clients: Sequence[CountingRedis], *, quiet_s: float, limit_s: float = 5.0) -> None:
    """Wait until every client sent something and none sent anything for ``quiet_s`` (at most
    ``limit_s``)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = [len(c.sent) for c in clients]
        time.sleep(quiet_s)
        if all(before) and before == [len(c.sent) for c in clients]:
            return


def holds_per_s(make: Callable[[redis.Redis], Holdable], url: str, *, threads: int, window_s: float) -> float:
    """Acquire + release loops on ``threads`` threads (a connection each) for ``window_s``: holds
    per second, all threads together."""
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    clients = [redis.Redis.from_url(url) for _ in range(threads)]

    def loop(i: int) -> None:
        held = make(clients[i])
        start.wait()
        stop = time.monotonic() + window_s
        while time.monotonic() < stop:
            held.acquire()
            held.release()
            counts[i] += 1

    workers = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
    try:
        for w in workers:
            w.start()
        start.wait()
        began = time.monotonic()
        for w in workers:
            w.join(JOIN_S + window_s)
        return round(sum(counts) / (time.monotonic() - began), 1)
    finally:
        for c in clients:
            c.close()


def wait_until(predicate: Callable[[], Any], what: str, timeout: float, *, every_s: float = 0.005) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); RuntimeError past ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise RuntimeError(f"timed out waiting for {what}")


def stats_row(name: str, stats: dict[str, Any] | None, keys: Sequence[str] = ("n", "p50", "p90", "p99")) -> str:
    """``| name | n | p50 | ... |`` of a :func:`~benchmarks.stats.summary`."""
    stats = stats or {}
    return f"| {name} | " + " | ".join(str(stats.get(k)) for k in keys) + " |"


def table(first: str, keys: Sequence[str], rows: Iterable[str]) -> list[str]:
    """A markdown table: its header, its rule, its rows."""
    header = [first, *keys]
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *rows]


def run_section(
    prog: str,
    doc: str | None,
    section: str,
    measure: Callable[[str, int], dict[str, Any]],
    markdown_lines: Callable[[dict[str, Any]], list[str]],
    *,
    default_rounds: int,
    argv: list[str] | None,
    quick_rounds: int = 3,
    server_args: tuple[str, ...] = (),
    write_markdown: bool = False,
    failed: Callable[[dict[str, Any]], bool] = lambda _: False,
) -> int:
    """The command line of a section run alone: ``--quick``, ``--rounds N``, ``--out DIR``; on a
    fresh redis-server (``server_args``), writes ``[quick-]SECTION-TIMESTAMP.json`` (and ``.md``),
    prints the markdown; exit code 1 when ``failed(results)``."""
    p = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"{quick_rounds} rounds only (numbers are meaningless)")
    p.add_argument("--rounds", type=int, default=default_rounds, help=f"rounds per implementation ({default_rounds})")
    p.add_argument("--out", type=Path, help=f"where to write the results ({RESULTS})")
    args = p.parse_args(argv)
    rounds = quick_rounds if args.quick else args.rounds
    if rounds < 1:
        p.error(f"--rounds must be at least 1, not {rounds}")
    with RedisServer(extra_args=server_args) as server:
        results = {"redis": server.version, **measure(server.url, rounds)}
    path = write_result(results, section, args.out, quick=args.quick)
    markdown = "\n".join(markdown_lines(results)).lstrip("\n") + "\n"
    if write_markdown:
        path.with_suffix(".md").write_text(markdown)
    print(markdown)
    return 1 if failed(results) else 0
