"""The jobs benchmark: leaderpool's job stream against RQ and arq, each with its own consuming
worker process(es) on the same redis-server (each in a database of its own), the same handler
(:mod:`benchmarks.jobs_handlers`), measured from this process.

- **latency**: submit -> handler start, one job at a time (``time.monotonic()`` is one clock for
  every process on the machine);
- **call**: submit and wait for the handler's reply, one at a time;
- **throughput**: ``n`` jobs submitted while no worker runs, then one worker started: jobs per
  second from the first handler start to the last handler end (a trivial handler);
- **crash**: two workers; the one running a 1 s job is SIGKILLed: the time until that job starts
  again, and how many of the jobs submitted (it and 20 queued behind it) never ran.

RQ runs its ``SimpleWorker`` (no fork per job, the faster one) and arq its defaults (10 jobs at
once, a 0.5 s poll); both get a short job timeout (``JOB_TIMEOUT_S``) so a killed job could come
back within the run (their defaults: 180 s and 300 s). Standalone: ``python -m benchmarks.jobs
[--quick] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import redis

from benchmarks.scenarios import BenchError, progress
from benchmarks.stats import summary
from leaderpool.backend.protocol import text
from leaderpool.testing.processes import Child, ChildGroup, clean_env

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("leaderpool", "rq", "arq")
TITLES = {
    "leaderpool": "leaderpool (worker --handler)",
    "rq": "RQ 3 (SimpleWorker)",
    "arq": "arq 0.25 (defaults: 10 at once, 0.5 s poll)",
}
POOL = "bench-jobs"
QUEUED_BEHIND = 20


def _db_url(url: str, db: int) -> str:
    head, _, _ = url.rpartition("/")
    return f"{head}/{db}"


class Side:
    """One contender: how to start a worker, submit, and call."""

    name = ""

    def __init__(self, url: str, ttl: float, job_timeout: float, log: IO[str]) -> None:
        self.url = url
        self.ttl = ttl
        self.job_timeout = job_timeout
        self.log = log
        self.group = ChildGroup()
        self.count = 0

    def argv(self, member: str) -> list[str]:
        raise NotImplementedError

    def start_worker(self) -> Child:
        self.count += 1
        member = f"{self.name}-{self.count}"
        env = clean_env(PYTHONPATH=str(ROOT), BENCH_JOBS_URL=self.url)
        child = self.group.add(Child(self.argv(member), name=member, env=env, cwd=ROOT, stderr=self.log))
        self.ready(child)
        return child

    def ready(self, child: Child) -> None:
        child.wait_for(lambda e: e.get("event") in ("ready", "elected", "leader"), 30)

    def submit(self, payload: dict[str, Any]) -> None:
        raise NotImplementedError

    def submit_many(self, payloads: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def call(self, payload: dict[str, Any], timeout: float) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        self.group.close(grace=2)


class LeaderpoolSide(Side):
    name = "leaderpool"

    def __init__(self, url: str, ttl: float, job_timeout: float, log: IO[str]) -> None:
        super().__init__(url, ttl, job_timeout, log)
        from leaderpool import PoolClient

        self.client = PoolClient(POOL, url)
        self.client.start()

    def argv(self, member: str) -> list[str]:
        return [sys.executable, "-m", "leaderpool.worker", "--redis", self.url, "--pool", POOL, "--member-id", member,
                "--ttl", repr(self.ttl), "--json-events", "--log-format", "json", "--log-level", "warning",
                "--handler", "benchmarks.jobs_handlers:leaderpool_handler"]  # fmt: skip

    def ready(self, child: Child) -> None:  # elected, or sees a leader (a standby)
        child.wait_for(lambda e: e.get("event") in ("elected", "leader") and e.get("member") is not None, 30)

    def submit(self, payload: dict[str, Any]) -> None:
        self.client.submit(payload)

    def submit_many(self, payloads: list[dict[str, Any]]) -> None:
        for i in range(0, len(payloads), 1000):
            self.client.submit_many(payloads[i : i + 1000])

    def call(self, payload: dict[str, Any], timeout: float) -> Any:
        return self.client.call(payload, timeout)

    def close(self) -> None:
        self.client.stop()
        super().close()


class RqSide(Side):
    name = "rq"

    def __init__(self, url: str, ttl: float, job_timeout: float, log: IO[str]) -> None:
        super().__init__(url, ttl, job_timeout, log)
        from rq import Queue

        self.redis = redis.Redis.from_url(url)
        self.queue = Queue("bench", connection=self.redis)

    def argv(self, member: str) -> list[str]:
        return [sys.executable, "-m", "benchmarks.contenders.rq_worker", self.url]

    def submit(self, payload: dict[str, Any]) -> None:
        from benchmarks.jobs_handlers import rq_handler

        self.queue.enqueue(rq_handler, payload, job_timeout=int(self.job_timeout))

    def submit_many(self, payloads: list[dict[str, Any]]) -> None:
        from rq import Queue

        from benchmarks.jobs_handlers import rq_handler

        for i in range(0, len(payloads), 1000):
            data = [Queue.prepare_data(rq_handler, (p,), timeout=int(self.job_timeout)) for p in payloads[i : i + 1000]]
            with self.redis.pipeline() as pipe:
                self.queue.enqueue_many(data, pipeline=pipe)
                pipe.execute()

    def call(self, payload: dict[str, Any], timeout: float) -> Any:
        from benchmarks.jobs_handlers import rq_handler

        job = self.queue.enqueue(rq_handler, payload, job_timeout=int(self.job_timeout))
        result = job.latest_result(timeout=int(max(timeout, 1)))
        return None if result is None else result.return_value

    def close(self) -> None:
        super().close()
        self.redis.close()


class ArqSide(Side):
    name = "arq"

    def __init__(self, url: str, ttl: float, job_timeout: float, log: IO[str]) -> None:
        super().__init__(url, ttl, job_timeout, log)
        self.loop = asyncio.new_event_loop()
        from arq import create_pool
        from arq.connections import RedisSettings

        self.pool = self.loop.run_until_complete(create_pool(RedisSettings.from_dsn(url)))

    def argv(self, member: str) -> list[str]:
        return [sys.executable, "-m", "benchmarks.contenders.arq_worker", self.url, repr(self.job_timeout)]

    def submit(self, payload: dict[str, Any]) -> None:
        self.loop.run_until_complete(self.pool.enqueue_job("arq_handler", payload))

    def submit_many(self, payloads: list[dict[str, Any]]) -> None:
        async def go() -> None:
            for i in range(0, len(payloads), 50):  # arq's pool allows a few dozen connections
                await asyncio.gather(*(self.pool.enqueue_job("arq_handler", p) for p in payloads[i : i + 50]))

        self.loop.run_until_complete(go())

    def call(self, payload: dict[str, Any], timeout: float) -> Any:
        from arq.jobs import ResultNotFound

        async def go() -> Any:
            job = await self.pool.enqueue_job("arq_handler", payload)
            assert job is not None
            deadline = time.monotonic() + timeout
            while True:
                try:
                    return await job.result(timeout=max(deadline - time.monotonic(), 0.1))
                except ResultNotFound:  # arq 0.25 can look between its queue and its result: look again
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.01)

        return self.loop.run_until_complete(go())

    def close(self) -> None:
        super().close()
        self.loop.run_until_complete(self.pool.aclose())
        self.loop.close()


SIDES: dict[str, Callable[..., Side]] = {"leaderpool": LeaderpoolSide, "rq": RqSide, "arq": ArqSide}


def _latency(side: Side, r: redis.Redis, n: int, warm_up: int) -> dict[str, Any]:
    samples = []
    for i in range(n + warm_up):
        side.submit({"k": "lat", "t": time.monotonic()})
        found = r.blpop(["bench:lat"], timeout=30)
        if found is None:
            raise BenchError(f"{side.name}: a latency job did not start within 30 s")
        if i >= warm_up:  # connections, imports
            samples.append(float(found[1]))
    return summary(samples, scale=1e3)


def _calls(side: Side, n: int, warm_up: int) -> dict[str, Any]:
    samples = []
    for i in range(n + warm_up):
        started = time.monotonic()
        reply = side.call({"k": "call", "v": i}, 30)
        if reply != i:
            raise BenchError(f"{side.name}: call {i} replied {reply!r}")
        if i >= warm_up:
            samples.append(time.monotonic() - started)
    return summary(samples, scale=1e3)


def _throughput(side: Side, r: redis.Redis, n: int) -> dict[str, Any]:
    side.submit_many([{"k": "tput", "n": n} for _ in range(n)])
    worker = side.start_worker()
    found = r.blpop(["bench:tput"], timeout=300)
    worker.close(grace=2)
    if found is None:
        raise BenchError(f"{side.name}: {n} jobs did not finish within 300 s")
    span = json.loads(found[1])
    seconds = span["last"] - span["first"]
    return {"jobs": n, "seconds": round(seconds, 3), "jobs_per_s": round(n / seconds, 1)}


def _crash(side: Side, r: redis.Redis, wait_s: float) -> dict[str, Any]:
    workers = [side.start_worker(), side.start_worker()]
    by_pid = {w.pid: w for w in workers}
    ids = ["crash", *(f"behind-{i}" for i in range(QUEUED_BEHIND))]
    side.submit({"k": "crash", "id": "crash", "sleep": 1.0})
    side.submit_many([{"k": "crash", "id": i, "sleep": 0} for i in ids[1:]])
    deadline = time.monotonic() + 30
    first = None
    while first is None:
        starts = [json.loads(s) for s in r.lrange("bench:starts", 0, -1)]
        first = next((s for s in starts if s["id"] == "crash"), None)
        if time.monotonic() > deadline:
            raise BenchError(f"{side.name}: the crash job did not start within 30 s")
        time.sleep(0.005)
    victim = by_pid.get(first["pid"])
    if victim is None:
        raise BenchError(f"{side.name}: the crash job ran in an unknown process {first['pid']}")
    victim.signal(signal.SIGKILL)
    killed = time.monotonic()
    again = None
    deadline = killed + wait_s
    while time.monotonic() < deadline:
        starts = [json.loads(s) for s in r.lrange("bench:starts", 0, -1)]
        again = next((s for s in starts if s["id"] == "crash" and s["t"] > first["t"]), None)
        done = {text(x) for x in r.lrange("bench:done", 0, -1)}
        if again is not None and set(ids) <= done:
            break
        time.sleep(0.01)
    done = {text(x) for x in r.lrange("bench:done", 0, -1)}
    for w in workers:
        w.close(grace=2)
    return {
        "rerun_after_kill_s": None if again is None else round(again["t"] - killed, 3),
        "waited_s": wait_s,
        "submitted": len(ids),
        "lost": len(set(ids) - done),
        "job_timeout_s": None if side.name == "leaderpool" else side.job_timeout,
        "lease_s": side.ttl if side.name == "leaderpool" else None,
    }


def run_side(name: str, url: str, *, quick: bool, ttl: float, log: IO[str]) -> dict[str, Any]:
    job_timeout = 3.0 if quick else 10.0
    side = SIDES[name](url, ttl, job_timeout, log)
    r = redis.Redis.from_url(url, socket_timeout=None)  # it waits in long blocking pops
    out: dict[str, Any] = {"title": TITLES[name]}
    slow = name == "arq"  # a 0.5 s poll per sample
    try:
        r.flushdb()
        progress(f"jobs: {name}: latency and calls")
        worker = side.start_worker()
        warm_up = 1 if quick else 3
        out["latency_ms"] = _latency(side, r, (2 if quick else 30) if slow else (30 if quick else 500), warm_up)
        out["call_ms"] = _calls(side, (1 if quick else 20) if slow else (30 if quick else 500), warm_up)
        worker.close(grace=2)
        n = 500 if quick else 20000
        progress(f"jobs: {name}: throughput over {n} jobs")
        out["throughput"] = _throughput(side, r, n)
        r.delete("bench:starts", "bench:done")
        progress(f"jobs: {name}: SIGKILL of the worker running a job")
        # arq takes a job back 10 s after its timeout (its in-progress key's extra); RQ never does
        # by itself (a dead worker's job goes to the failed registry at the next maintenance)
        # (a quick run, whose numbers mean nothing, does not wait for them)
        wait_s = {"leaderpool": ttl + 5, "arq": job_timeout + 10 + 3}.get(name, job_timeout * 2 + 2)
        if quick and name != "leaderpool":
            wait_s = 1.5
        out["crash"] = _crash(side, r, wait_s)
    except Exception as exc:  # one contender's failure is its row in the report, not the run's end
        out["error"] = f"{type(exc).__name__}: {exc}"
        progress(f"jobs: {name}: FAILED: {exc}")
    finally:
        side.close()
        r.close()
    return out


def measure(url: str, *, quick: bool, ttl: float, log: IO[str], names: tuple[str, ...] = NAMES) -> dict[str, Any]:
    """Every contender in turn, each in its own database of the server at ``url``."""
    return {name: run_side(name, _db_url(url, i + 1), quick=quick, ttl=ttl, log=log) for i, name in enumerate(names)}


def targets(jobs: dict[str, Any]) -> list[dict[str, Any]]:
    lp = jobs.get("leaderpool") or {}
    out: list[dict[str, Any]] = []

    def add(target: str, value: Any, limit: float | None, unit: str, above: bool = False) -> None:
        met = None if value is None or limit is None else (value >= limit if above else value <= limit)
        out.append({"target": target, "value": value, "unit": unit, "met": met})

    lat, call = lp.get("latency_ms") or {}, lp.get("call_ms") or {}
    add("jobs: submit -> handler start p50 <= 1 ms", lat.get("p50"), 1, "ms")
    add("jobs: submit -> handler start p99 <= 5 ms", lat.get("p99"), 5, "ms")
    add("jobs: call round trip p50 <= 2 ms", call.get("p50"), 2, "ms")
    rate = (lp.get("throughput") or {}).get("jobs_per_s")
    add("jobs: throughput with a trivial handler >= 10,000 jobs/s", rate, 10_000, "jobs/s", above=True)
    others = [(jobs.get(n) or {}).get("throughput", {}).get("jobs_per_s") for n in NAMES if n != "leaderpool"]
    ahead = None if rate is None or None in others else all(rate > o for o in others if o is not None)
    out.append({"target": "jobs: throughput ahead of RQ and arq", "value": rate, "unit": "jobs/s", "met": ahead})
    lost = (lp.get("crash") or {}).get("lost")
    out.append({"target": "jobs: none lost when the consumer is SIGKILLed", "value": lost, "unit": "",
                "met": None if lost is None else lost == 0})  # fmt: skip
    return out


def _cell(s: dict[str, Any] | None, key: str = "p50") -> str:
    value = (s or {}).get(key)
    return "n/a" if value is None else f"{value:.2f}"


def table(jobs: dict[str, Any]) -> str:
    """One row per contender: latency, calls, throughput, the SIGKILL."""
    lines = [
        "| contender | submit -> start p50 / p99 (ms) | call p50 / p99 (ms) | throughput (jobs/s) "
        "| killed job runs again after (s) | jobs lost |",
        "|---|---|---|---|---|---|",
    ]
    for name in NAMES:
        r = jobs.get(name)
        if r is None:
            continue
        if "error" in r:
            lines.append(f"| {r['title']} | error: {r['error']} | | | | |")
            continue
        crash = r.get("crash") or {}
        again = crash.get("rerun_after_kill_s")
        again_text = f"{again:.3f}" if again is not None else f"not within {crash.get('waited_s')} s"
        lines.append(
            f"| {r['title']} | {_cell(r.get('latency_ms'))} / {_cell(r.get('latency_ms'), 'p99')} | "
            f"{_cell(r.get('call_ms'))} / {_cell(r.get('call_ms'), 'p99')} | "
            f"{(r.get('throughput') or {}).get('jobs_per_s')} | {again_text} | "
            f"{crash.get('lost')} of {crash.get('submitted')} |"
        )
    return "\n".join(lines) + "\n"


def markdown(jobs: dict[str, Any] | None) -> str:
    if not jobs:
        return ""
    timeout = (jobs.get("rq") or {}).get("crash", {}).get("job_timeout_s")
    return (
        "## Jobs: leaderpool against RQ and arq\n\n"
        "Each with its own worker process(es) on the same redis-server; the same trivial handler. "
        "Crash: two workers, the one running a 1 s job is SIGKILLed; RQ and arq had a job timeout of "
        f"{timeout} s (defaults 180 s and 300 s).\n\n" + table(jobs)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.jobs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true")
    p.add_argument("--ttl", type=float, default=2.0, help="leaderpool's lease (2)")
    p.add_argument("--contenders", default=",".join(NAMES))
    p.add_argument("--out", type=Path, help="write the JSON here")
    args = p.parse_args(argv)
    from leaderpool.testing.redis_server import RedisServer

    with RedisServer(extra_args=("--notify-keyspace-events", "Kg$x")) as server:
        names = tuple(n.strip() for n in args.contenders.split(",") if n.strip())
        jobs = measure(server.url, quick=args.quick, ttl=args.ttl, log=sys.stderr, names=names)
    result: dict[str, Any] = {"jobs": jobs, "targets": targets(jobs)}
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(jobs))
    for t in result["targets"]:
        print(f"- {t['target']}: {t['value']} {t['unit']} ({'met' if t['met'] else t['met']})")
    return 1 if any("error" in r for r in jobs.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
