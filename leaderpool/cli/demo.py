"""``leaderpool-cli demo``: the seed's experiments, replayed with real processes.

An embedded redis-server (or ``--redis``) and worker processes a, b, c (``python -m
leaderpool.worker --json-events --takeover``) form a pool; the demo then hard-kills the leader
(replaced in milliseconds by fast failover), restarts it, hard-kills a follower, shuts the leader
down kindly, and lets a higher-priority member take over, narrating each step with times taken
from the workers' JSON events. Every process it starts is stopped by pid on the way out, on
success, error or Ctrl-C alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import redis

from leaderpool.backend.clients import async_client
from leaderpool.backend.connect import blocking_client
from leaderpool.backend.keys import Keyspace
from leaderpool.backend.pool_store import LeaderValue
from leaderpool.backend.urls import redact
from leaderpool.cli import status
from leaderpool.console.args import Options, UsageError, seconds
from leaderpool.testing.processes import Child, ChildGroup, JsonEvent, clean_env
from leaderpool.testing.redis_server import INSTALL_HINT, RedisServer, find_redis_servers, server_version

TRACKED_JOBS = 300
"""How many jobs the tracked_work experiment submits (about 5 ms of work each)."""

NamedEvent = tuple[str, JsonEvent]
"""(worker name, one of its JSON events)."""


@dataclass
class Workers:
    """The demo's worker processes of one pool (``python -m leaderpool.worker --json-events
    --takeover``), each logging to ``logdir``; every one started is in :attr:`group`."""

    url: str
    pool: str
    prefix: str
    ttl: float
    logdir: str

    def __post_init__(self) -> None:
        self.group = ChildGroup()

    def start(self, name: str, *extra: str) -> Child:
        argv = [
            sys.executable, "-m", "leaderpool.worker", "--pool", self.pool,
            "--member-id", name, "--node", f"node-{name}", "--ttl", f"{self.ttl:g}", "--takeover",
            "--prefix", self.prefix, "--json-events", "--log-format", "json",
            "--handler", "leaderpool.cli.demo_work:tracked_work", *extra,
        ]  # fmt: skip
        generation = sum(c.name == name for c in self.group.started) + 1
        log_path = os.path.join(self.logdir, f"{name}-{generation}.log")
        # A session of its own: a Ctrl-C reaches the demo alone, which stops its workers itself.
        # The URL goes by the environment: it may hold a password, which argv would show to `ps`.
        env = clean_env(LEADERPOOL_REDIS_URL=self.url)
        return self.group.start(argv, name=name, env=env, stderr=log_path, new_session=True)

    def __getitem__(self, name: str) -> Child:
        """The latest process of worker ``name``."""
        return self.group.latest[name]


@dataclass
class Result:
    experiment: str
    expected: str
    measured: str
    ok: bool


class Demo:
    def __init__(self, cluster: Workers, client: redis.Redis, out: TextIO) -> None:
        self.c = cluster
        self.events = cluster.group.events
        self.r = client
        self.out = out
        self.results: list[Result] = []
        self.t0 = time.monotonic()
        self.keys = Keyspace(cluster.pool, cluster.prefix)
        ttl = cluster.ttl
        self.patience = 3 * ttl + 10  # generous: a busy laptop must not fail the demo

    # ---- narration ----

    def say(self, text: str) -> None:
        self.out.write(f"[{time.monotonic() - self.t0:6.2f}s] {text}\n")
        self.out.flush()

    def step(self, title: str) -> None:
        self.out.write(f"\n== {title}\n")
        self.out.flush()

    def record(self, experiment: str, expected: str, measured: str, ok: bool) -> None:
        self.results.append(Result(experiment, expected, measured, ok))
        self.say(f"{'ok' if ok else 'UNEXPECTED'}: {measured} (expected: {expected})")

    def leader(self) -> tuple[LeaderValue | None, int]:
        return LeaderValue.parse(self.r.get(self.keys.leader)), int(self.r.pttl(self.keys.leader))

    def wait(
        self, match: Callable[[str, JsonEvent], bool], since: int, timeout: float | None = None
    ) -> NamedEvent | None:
        """The first event since index ``since`` of any worker that matches, or None after
        ``timeout`` (the demo's patience unless given)."""
        return self.events.first(lambda item: match(*item), self.patience if timeout is None else timeout, since)

    def until(self, condition: Callable[[], bool]) -> float | None:
        """When (unix time) ``condition()`` first held, checking every 50 ms; None if it did
        not within the demo's patience. (For what Redis shows and no worker prints.)"""
        deadline = time.monotonic() + self.patience
        while not condition():
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)
        return time.time()

    def since(self, index: int, kind: str) -> list[NamedEvent]:
        return [(n, e) for n, e in self.events.snapshot(index) if e.get("event") == kind]

    def elected(self, since: int, *, exclude: str | None = None) -> NamedEvent | None:
        return self.wait(lambda n, e: e["event"] == "elected" and n != exclude, since)

    def sees(self, name: str, leader: str, since: int) -> NamedEvent | None:
        return self.wait(lambda n, e: n == name and e["event"] == "leader" and e["member"] == leader, since)

    # ---- the experiments ----

    def form(self) -> str:
        self.step("1. Three workers start and form the pool")
        mark = self.events.mark()
        for name in "abc":  # a is the oldest member, then b, then c
            try:
                self.c.start(name).wait_for(lambda e: True, self.patience)  # its first event: it has joined
            except TimeoutError:
                raise DemoFailed(f"{name} printed no event: it never joined the pool") from None
        self.say("started a, b and c in turn, each once the one before had joined the pool")
        self.say("(python -m leaderpool.worker ... --takeover --json-events)")
        got = self.elected(mark)
        if got is None:
            raise DemoFailed("no leader was elected")
        name, event = got
        took = event["t"] - self.c[name].started
        for other in "abc":
            if self.sees(other, name, mark) is None:
                raise DemoFailed(f"{other} never saw {name} as the leader")
        self.say(f"{name} was elected, term {event['term']}, {took:.2f} s after its process started")
        self.say(f"a, b and c all report {name} as the leader")
        self.record("pool forms", "the oldest (a) leads", f"{name} leads term {event['term']}", name == "a")
        return name

    def kill_leader(self, leader: str) -> str:
        self.step(f"2. Hard kill of the leader (SIGKILL {leader})")
        mark = self.events.mark()
        value, pttl = self.leader()
        killed = self.c[leader].signal(signal.SIGKILL)
        expires = killed + max(pttl, 0) / 1000
        self.say(f"killed {leader} (term {value.term if value else '?'}); its lease had {pttl / 1000:.2f} s left")
        got = self.elected(mark, exclude=leader)
        if got is None:
            raise DemoFailed("no member took over after the kill")
        name, event = got
        failover, beyond = event["t"] - killed, event["t"] - expires
        # fast failover: b held a connection to a's liveness endpoint; it closed when a died, and
        # Redis confirmed a's registered connection gone, so b did not wait for the lease
        self.say(
            f"{name} was elected, term {event['term']}: {failover * 1000:.1f} ms after the kill, "
            f"{-beyond:.2f} s before the lease would have run out (fast failover: {leader}'s liveness "
            "connection closed and Redis confirmed its connection gone)"
            if beyond < 0
            else f"{name} was elected, term {event['term']}: {failover:.2f} s after the kill, "
            f"{beyond:.3f} s after the lease ran out"
        )
        ok = name == "b" and beyond < 0
        self.record(
            "SIGKILL the leader", f"b takes over in ms, not after the lease ({self.c.ttl:g} s)",
            f"{name} after {failover * 1000:.0f} ms ({beyond * 1000:+.0f} ms vs lease end)", ok,
        )  # fmt: skip
        self.failover = failover
        self.c[leader].proc.wait(5)
        return name

    def restart(self, name: str, leader: str, title: str) -> None:
        self.step(title)
        mark = self.events.mark()
        before, _ = self.leader()
        worker = self.c.start(name)
        seen = self.sees(name, leader, mark)
        if seen is None:
            raise DemoFailed(f"restarted {name} never saw {leader} as the leader")
        took = seen[1]["t"] - worker.started
        time.sleep(min(self.c.ttl, 1.0))  # give it a chance to (wrongly) take the lead
        after, _ = self.leader()
        elected = self.since(mark, "elected")
        self.say(f"{name} rejoined {took:.2f} s after it started and sees {leader} as the leader")
        ok = not elected and before == after
        self.record(
            f"restart {name}", "rejoins as a follower; no election",
            f"follower; {leader} still leads term {after.term if after else '?'}", ok,
        )  # fmt: skip

    def kill_follower(self, name: str, leader: str) -> None:
        self.step(f"4. Hard kill of a non-leader (SIGKILL {name})")
        mark = self.events.mark()
        before, _ = self.leader()
        killed = self.c[name].kill()
        self.say(f"killed {name}; waiting for its lease to lapse and the pool to drop it")
        dropped = self.until(lambda: self.r.zscore(self.keys.leases, name) is None)
        if dropped is None:
            raise DemoFailed(f"the pool never dropped {name} after its lease lapsed")
        self.say(f"the pool dropped {name} {dropped - killed:.2f} s after the kill (lease {self.c.ttl:g} s)")
        after, _ = self.leader()
        elected = self.since(mark, "elected")
        ok = not elected and before == after
        self.say(f"{leader} still leads term {after.term if after else '?'}; elections since the kill: {len(elected)}")
        self.record(
            f"SIGKILL a follower ({name})", "nothing changes",
            f"{after.member if after else 'nobody'} leads term {after.term if after else '?'}", ok,
        )  # fmt: skip

    def shutdown_leader(self, leader: str) -> str:
        self.step(f"5. Kind shutdown of the leader (SIGTERM {leader})")
        mark = self.events.mark()
        sent = self.c[leader].signal(signal.SIGTERM)
        got = self.elected(mark, exclude=leader)
        if got is None:
            raise DemoFailed("no member took over after the SIGTERM")
        name, event = got
        revoked = self.wait(lambda n, e: n == leader and e["event"] == "revoked", mark)
        try:
            code: int | None = self.c[leader].proc.wait(self.patience)
        except subprocess.TimeoutExpired:
            code = None
        handoff = event["t"] - sent
        reason = revoked[1]["reason"] if revoked else "?"
        self.say(f"{leader} stopped its task and released the lead (revoked: {reason}); it exited with code {code}")
        if revoked:
            gap = (event["t"] - revoked[1]["t"]) * 1000
            self.say(
                f"{name} was elected, term {event['term']}: {handoff * 1000:.0f} ms after the SIGTERM, "
                f"{gap:.0f} ms after the release"
            )
        ok = name == "a" and code == 0 and reason == "shutdown" and handoff < self.c.ttl
        self.record(
            f"SIGTERM the leader ({leader})", "hand-over in milliseconds, exit 0",
            f"{name} after {handoff * 1000:.0f} ms, exit {code}", ok,
        )  # fmt: skip
        self.handoff = handoff
        return name

    def takeover(self, leader: str) -> None:
        self.step("6. Takeover by a higher-priority member (start d --priority 10 --takeover)")
        mark = self.events.mark()
        worker = self.c.start("d", "--priority", "10")
        got = self.wait(lambda n, e: n == "d" and e["event"] == "elected", mark)
        if got is None:
            raise DemoFailed("d never took the lead over")
        event = got[1]
        revoked = self.wait(lambda n, e: n == leader and e["event"] == "revoked", mark, 1.0)
        reason = revoked[1]["reason"] if revoked else "?"
        took = event["t"] - worker.started
        gap = f", {(event['t'] - revoked[1]['t']) * 1000:.0f} ms after {leader} stepped down" if revoked else ""
        self.say(
            f"{leader} stepped down (revoked: {reason}); d was elected, term {event['term']}, "
            f"{took:.2f} s after it started{gap}"
        )
        self.record(
            "higher priority joins", f"d takes over from {leader}",
            f"d leads term {event['term']} ({leader}: {reason})", reason == "takeover",
        )  # fmt: skip

    def tracked_work(self, leader: str) -> None:
        """The seed's tracked_work: jobs submitted while the leader is SIGKILLed all run; the few
        the killed leader had under way run again (at-least-once), under the next leader."""
        from leaderpool import PoolClient

        self.step(f"7. tracked_work: {TRACKED_JOBS} jobs submitted while the leader ({leader}) is SIGKILLed")
        mark = self.events.mark()
        submitted: list[str] = []
        with PoolClient(self.c.pool, self.c.url, prefix=self.c.prefix) as client:

            def submit_all() -> None:
                for i in range(TRACKED_JOBS):
                    submitted.append(client.submit({"n": i, "ms": 5}))
                    time.sleep(0.004)

            submitter = threading.Thread(target=submit_all, name="demo-submitter", daemon=True)
            submitter.start()
            counted = [0]

            def enough(item: NamedEvent) -> bool:  # sees each event once, in order
                counted[0] += item[0] == leader and item[1].get("event") == "job_ran"
                return counted[0] >= TRACKED_JOBS // 5

            if self.events.first(enough, self.patience, mark) is None:
                raise DemoFailed(f"{leader} did not run the jobs")
            killed = self.c[leader].signal(signal.SIGKILL)
            before = len(self.since(mark, "job_ran"))
            self.say(f"{leader} had run {before} job(s) when it was SIGKILLed; submitting goes on")
            submitter.join(self.patience)

            def all_ran() -> bool:
                return set(submitted) <= {e["job"] for _, e in self.since(mark, "job_ran")}

            done_at = self.until(lambda: len(submitted) == TRACKED_JOBS and all_ran())
            runs = self.since(mark, "job_ran")
            by_job: dict[str, list[tuple[str, JsonEvent]]] = {}
            for name, event in runs:
                by_job.setdefault(event["job"], []).append((name, event))
            twice = sorted(j for j, rs in by_job.items() if len(rs) > 1)
            others = sorted({n for n, _ in runs if n != leader})
            self.say(
                f"all {TRACKED_JOBS} jobs ran: {len(runs)} runs, by {leader} (before the kill) and "
                f"{', '.join(others) or 'nobody'} (after)"
                if done_at
                else "not every job ran"
            )
            after = [e["t"] for n, e in runs if n != leader]
            if after:
                self.say(f"the next leader ran its first job {min(after) - killed:.2f} s after the kill "
                         f"(the lease is {self.c.ttl:g} s)")  # fmt: skip
            for job in twice:
                seen = ", ".join(f"{n} (delivery {e['delivery']}, term {e['term']})" for n, e in by_job[job])
                self.say(f"ran twice: job {job}: {seen}")
            self.say(f"{len(twice)} duplicate(s): jobs the killed leader had under way, run again by the next leader")
            ok = bool(done_at) and all(by_job[j][0][0] == leader for j in twice)
            self.record(
                "tracked_work across SIGKILL", "every job runs; duplicates only of jobs in flight",
                f"{len(by_job)}/{TRACKED_JOBS} ran, {len(twice)} twice", ok,
            )  # fmt: skip
            new = client.call("who", timeout=self.patience)["member"]
            target = next(n for n in "abc" if n != new)
            reply = client.call({"ms": 1}, timeout=self.patience, member=target)
            result = client.multicall("ping", timeout=2.0)
            self.say(f"call -> the leader {new}; call(member={target!r}) -> {reply['member']}; "
                     f"multicall -> {sorted(result.replies)} answered, missing {result.missing}")  # fmt: skip
            self.record(
                "calls", "leader, named member and all answer", f"{new}, {reply['member']}, {len(result.replies)}",
                reply["member"] == target and not result.missing,
            )  # fmt: skip

    def summary(self) -> bool:
        self.step("Summary")
        rows = [["EXPERIMENT", "EXPECTED", "MEASURED", "RESULT"]]
        rows += [[r.experiment, r.expected, r.measured, "ok" if r.ok else "UNEXPECTED"] for r in self.results]
        self.out.write("\n".join("  " + line for line in status.table(rows)) + "\n")
        return all(r.ok for r in self.results)

    def run(self) -> bool:
        leader = self.form()
        killed = leader
        leader = self.kill_leader(leader)
        self.restart(killed, leader, f"3. Restart of {killed}: it rejoins as a follower")
        follower = next(n for n in "abc" if n not in (leader, killed))
        self.kill_follower(follower, leader)
        self.restart(follower, leader, f"4b. Restart of {follower}")
        old = leader
        leader = self.shutdown_leader(leader)
        self.restart(old, leader, f"5b. Restart of {old}")
        self.takeover(leader)
        self.tracked_work("d")
        ok = self.summary()
        self.step("Final state (leaderpool-cli status)")
        self.out.write(self.status_text() + "\n")
        return ok

    def status_text(self) -> str:
        async def read() -> str:
            client = async_client(self.c.url)
            try:
                return status.render(await status.read_status(client, [self.c.pool], self.c.prefix))
            finally:
                await client.aclose()

        return asyncio.run(read())


class DemoFailed(Exception):
    pass


def pool_keys(keys: Keyspace) -> list[str]:
    """Every key of a pool, as :class:`Keyspace` names them (to clean up a shared server)."""
    names = [n for n, v in vars(Keyspace).items() if isinstance(v, property) and not n.startswith("_")]
    return [getattr(keys, n) for n in names if n != "events"]


def _interrupt_on(*signals: signal.Signals) -> None:
    """Treat these like Ctrl-C, so the cleanup in ``finally`` runs (the demo is an entry point)."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    for sig in signals:
        signal.signal(sig, interrupt)


def main(ns: argparse.Namespace, o: Options, *, redis_url: str | None, prefix: str, out: TextIO | None = None) -> int:
    """Run the demo; 0 when every experiment went as expected."""
    out = out or sys.stdout
    ttl = o.get("ttl", "--ttl", None, seconds, default=2.0)
    if not 0.2 <= ttl <= 30:
        raise UsageError("--ttl", f"must be between 0.2 and 30 seconds for the demo, got {ttl:g}")
    pool = ns.pool or ("demo" if redis_url is None else f"demo-{secrets.token_hex(2)}")
    try:
        Keyspace(pool, prefix)
    except ValueError as exc:
        raise UsageError("--pool", str(exc)) from None
    _interrupt_on(signal.SIGTERM, signal.SIGHUP)
    server: RedisServer | None = None
    logdir = tempfile.mkdtemp(prefix="leaderpool-demo-")
    cluster: Workers | None = None
    client: redis.Redis | None = None
    url = redis_url or ""
    ok = False
    try:
        if redis_url is None:
            binaries = find_redis_servers()
            if not binaries:
                print(f"leaderpool-cli: error: {INSTALL_HINT}", file=sys.stderr)
                return 1
            server = RedisServer(binaries[0]).start()
            url = server.url
            where = f"an embedded redis-server {server_version(binaries[0])} at {url}"
        else:
            url = redis_url
            where = f"the Redis at {redact(url)}"
        client = blocking_client(url, socket_connect_timeout=5, socket_timeout=10)
        client.ping()
        cluster = Workers(url, pool, prefix, ttl, logdir)
        out.write(
            f"leaderpool demo: pool {pool!r} on {where}\n"
            f"workers use a {ttl:g} s lease (heartbeat {ttl / 3:.2f} s); times come from their JSON events\n"
        )
        ok = Demo(cluster, client, out).run()
        out.write("\nAll experiments went as expected.\n" if ok else "\nSome experiments did not go as expected.\n")
        return 0 if ok else 1
    except DemoFailed as exc:
        print(f"leaderpool-cli: demo failed: {exc}", file=sys.stderr)
        return 1
    except redis.exceptions.ConnectionError as exc:
        print(f"leaderpool-cli: error: cannot reach Redis at {redact(url)}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the workers and Redis", file=sys.stderr)
        ok = True  # nothing went wrong: no logs to keep
        return 130
    finally:
        if cluster is not None:
            cluster.group.close(grace=5.0)
            out.write(f"stopped all {len(cluster.group.started)} worker processes started")
        if client is not None:
            with contextlib.suppress(Exception):
                if redis_url is not None:  # leave a shared server as we found it
                    client.delete(*pool_keys(Keyspace(pool, prefix)))
                client.close()
        if server is not None:
            server.cleanup()
            out.write(" and the embedded redis-server")
        if cluster is not None:
            out.write("\n")
        keep = bool(getattr(ns, "keep_logs", False)) or not ok
        if keep and cluster is not None:
            out.write(f"worker logs: {logdir}\n")
        else:
            shutil.rmtree(logdir, ignore_errors=True)
        out.flush()
