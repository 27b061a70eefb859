"""The worker's singletons over real worker processes and a real redis-server: each singleton
runs on exactly one member, balanced, listed by ``leaderpool-cli singletons``; a SIGKILLed
member's singletons start on the others with higher terms; ``move`` hands one over kindly with
its state; ``--exec`` runs one command per singleton with its name and term; bad flags are one
line and exit 2."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from leaderpool.console.args import UsageError
from leaderpool.testing.processes import Child, ChildGroup, JsonEvent
from leaderpool.testing.redis_server import RedisServer, free_port
from leaderpool.worker.settings import parse_settings
from tests.support.singleton_tasks import RUNS_FILE, URL, WRITES_FILE, written_key
from tests.support.worker_procs import PATIENCE, ROOT, clean_env, cli, eventually
from tests.worker.test_http_metrics import value

POOL = "sp"
TASK = "tests.support.singleton_tasks:counter"
FENCED = "tests.support.singleton_tasks:fenced_writer"
TTL = "2"
"""Short, yet long enough that a loaded two-core host does not make a survivor miss its deadline."""


class Placement:
    """Where each singleton runs as the workers' events tell it (folded in arrival order)."""

    def __init__(self) -> None:
        self.running: dict[str, tuple[str, int]] = {}  # name -> (member, term)
        self.started: list[JsonEvent] = []

    def fold(self, item: tuple[str, JsonEvent]) -> None:
        _, e = item
        if e["event"] == "singleton_started":
            self.running[e["singleton"]] = (e["member"], e["term"])
            self.started.append(e)
        elif e["event"] == "singleton_stopped" and self.running.get(e["singleton"], ("",))[0] == e["member"]:
            del self.running[e["singleton"]]

    def forget(self, member: str) -> None:
        """``member`` was killed: it runs nothing any more (it can say nothing)."""
        self.running = {n: mt for n, mt in self.running.items() if mt[0] != member}

    def per_member(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for member, _ in self.running.values():
            out[member] = out.get(member, 0) + 1
        return out


class Pool:
    def __init__(self, server: RedisServer, tmp: Path) -> None:
        self.url = server.url
        self.group = ChildGroup()
        self.placement = Placement()
        self.seen = 0
        self.runs = tmp / "runs.jsonl"

    def start(self, member: str, *work: str) -> Child:
        argv = [sys.executable, "-m", "leaderpool.worker", "--redis", self.url, "--pool", POOL, "--member-id", member,
                "--ttl", TTL, "--json-events", *work]  # fmt: skip
        return self.group.start(argv, name=member, env=clean_env(**{RUNS_FILE: str(self.runs)}), cwd=ROOT)

    def settle(self, names: set[str], members: set[str]) -> None:
        """Wait until every one of ``names`` runs, on ``members`` only, balanced."""
        bound = math.ceil(len(names) / len(members))

        def settled() -> bool:
            counts = self.placement.per_member()
            return set(self.placement.running) == names and set(counts) == members and max(counts.values()) <= bound

        def done(item: tuple[str, JsonEvent]) -> bool:
            self.placement.fold(item)
            self.seen += 1
            return settled()

        if not settled():
            found = self.group.events.first(done, PATIENCE, since=self.seen)
            assert found is not None, f"not settled over {members}: {self.placement.running}\n{self.story()}"

    def story(self) -> str:
        """The singletons' events and the workers' warnings, for a failure's message."""
        lines = [f"{e['event']} {e.get('singleton')} {e.get('member')} {e.get('term')} {e.get('reason', '')}"
                 for _, e in self.group.events.snapshot() if e["event"].startswith("singleton")]  # fmt: skip
        for child in self.group.started:
            lines += [line[:300] for line in child.stderr.splitlines() if "warn" in line or "lost" in line]
        return "\n".join(lines)

    def listed(self) -> dict[str, Any]:
        result = cli("--redis", self.url, "singletons", POOL, "--json")
        assert 0 == result.returncode, result.stderr
        return {s["name"]: s for s in json.loads(result.stdout)["singletons"]}

    def run_records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.runs.read_text().splitlines()] if self.runs.exists() else []


@pytest.fixture
def pool(redis_server: RedisServer, tmp_path: Path) -> Iterator[Pool]:
    p = Pool(redis_server, tmp_path)
    try:
        yield p
    finally:
        p.group.close(grace=0)


SIX = {f"shard-{i}" for i in range(6)}


def test_each_singleton_runs_on_one_member_balanced_and_moves_off_a_killed_one(pool: Pool) -> None:
    """Three workers with --singletons-count 6: two each, listed on exactly the member running
    each; after SIGKILL of one, its singletons start on the two others with higher terms."""
    for member in ("a", "b", "c"):
        pool.start(member, "--singletons-count", "6", "--task", TASK)
    pool.settle(SIX, {"a", "b", "c"})
    listed = pool.listed()
    assert SIX == set(listed)
    assert {n: m for n, (m, _) in pool.placement.running.items()} == {n: s["member"] for n, s in listed.items()}
    assert {"a": 2, "b": 2, "c": 2} == pool.placement.per_member()
    shown = cli("--redis", pool.url, "status", "--pool", POOL, "--json")  # what the dashboard serves too
    members = json.loads(shown.stdout)["pools"][0]["members"]
    placement = {m["member"]: {(s["name"], s["term"]) for s in m["singletons"]} for m in members}
    assert placement == {m: {(n, t) for n, (o, t) in pool.placement.running.items() if o == m} for m in "abc"}

    before = dict(pool.placement.running)
    victim = pool.group.latest["b"]
    victim.kill()
    pool.placement.forget("b")
    pool.settle(SIX, {"a", "c"})
    for name, (member, term) in before.items():
        if member == "b":
            new_member, new_term = pool.placement.running[name]
            assert new_member in {"a", "c"} and new_term > term, (name, term, new_member, new_term)
        else:
            assert (member, term) == pool.placement.running[name], pool.story()  # the others' did not move
    assert {n: m for n, (m, _) in pool.placement.running.items()} == {n: s["member"] for n, s in pool.listed().items()}


def test_move_hands_a_singleton_over_kindly_with_its_state(pool: Pool) -> None:
    """``leaderpool-cli move``: exit 0 once it runs on the member named; the old owner stopped it
    (reason moved), the new one started it with a higher term and the state the old one saved."""
    ports = {m: free_port() for m in ("a", "b")}
    for member in ("a", "b"):
        pool.start(member, "--singletons", "s1,s2", "--task", TASK, "--http-port", str(ports[member]))
    pool.settle({"s1", "s2"}, {"a", "b"})
    owner, term = pool.placement.running["s1"]
    other = "b" if owner == "a" else "a"

    result = cli("--redis", pool.url, "move", POOL, "s1", other)
    assert 0 == result.returncode, result.stderr
    assert f"moved s1 from {owner} to {other}" in result.stdout
    stopped = pool.group.latest[owner].wait_for(
        lambda e: e["event"] == "singleton_stopped" and (e["singleton"], e["term"]) == ("s1", term), PATIENCE
    )
    assert "moved" == stopped["reason"]
    started = pool.group.latest[other].wait_for(
        lambda e: e["event"] == "singleton_started" and e["singleton"] == "s1", PATIENCE
    )
    assert started["term"] > term

    # the task writes its run's record once it runs, after the start event: wait for the new one
    def s1_runs() -> list[dict[str, Any]]:
        return [r for r in pool.run_records() if r["name"] == "s1"]

    runs = eventually(lambda: len(s1_runs()) >= 2 and s1_runs())
    assert [(owner, term, 1), (other, started["term"], 2)] == [(r["member"], r["term"], r["runs"]) for r in runs]
    labels = {"pool": POOL, "member": owner}
    assert 1 <= (value(ports[owner], "leaderpool_singleton_stops_total", **labels, reason="moved") or 0)
    assert 1 <= (value(ports[owner], "leaderpool_singleton_handoff_seconds_count", pool=POOL) or 0)
    eventually(lambda: 2 == sum(value(ports[m], "leaderpool_singletons_owned", pool=POOL, member=m) or 0 for m in "ab"))

    refused = cli("--redis", pool.url, "move", POOL, "nope", other)
    assert (1, "") == (refused.returncode, refused.stdout)
    assert 1 == len(refused.stderr.splitlines()) and "no singleton 'nope'" in refused.stderr
    gone = cli("--redis", pool.url, "move", POOL, "s2", "ghost")
    assert 1 == gone.returncode and "member ghost" in gone.stderr


def test_exec_runs_one_command_per_singleton_with_its_name_and_term(pool: Pool, tmp_path: Path) -> None:
    """--exec: one command per singleton owned, LEADERPOOL_SINGLETON and LEADERPOOL_TERM its own."""
    out = tmp_path / "env.txt"
    script = f'echo "$LEADERPOOL_SINGLETON $LEADERPOOL_TERM $LEADERPOOL_MEMBER" >> {out}; exec sleep 60'
    worker = pool.start("a", "--singletons", "x,y", "--exec", "--", "sh", "-c", script)
    pool.settle({"x", "y"}, {"a"})
    assert worker.alive()
    lines = eventually(lambda: out.exists() and len(out.read_text().splitlines()) == 2 and out.read_text())
    seen = sorted(tuple(line.split()) for line in lines.splitlines())
    expected = sorted((n, str(t), m) for n, (m, t) in pool.placement.running.items())
    assert expected == seen


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--singletons-count", "-1"], "--singletons-count: must be an integer >= 0"),
        (["--singletons-count", "100001"], "--singletons-count: must be at most 100000"),
        (["--singletons", "a,a"], "--singletons: names 'a' twice"),
        (["--singletons", ","], "--singletons: must name at least one singleton"),
        (["--singletons", "a b"], "--singletons:"),
        (["--singletons", "shard-1", "--singletons-count", "2"], "'shard-1' is one of --singletons-count's names"),
        (["--singletons-count", "2", "--every", "1", "--task", TASK], "does not apply with --every or --cron"),
        (["--singletons-count", "2", "--singletons-weight", "0"], "--singletons-weight: must be a number > 0"),
        (["--singletons-weight", "2"], "--singletons-weight: only applies with --singletons"),
        (["--singletons-count", "2", "--singletons-max-moves", "0"], "--singletons-max-moves: must be an integer >= 1"),
        (["--singletons-count", "2", "--singletons-max-moves", "x"], "--singletons-max-moves:"),
        (["--singletons-max-moves", "4"], "--singletons-max-moves: only applies with --singletons"),
    ],
)
def test_bad_singleton_flags_name_the_flag(flags: list[str], message: str) -> None:
    """Each bad singleton flag is refused, naming it, before anything starts."""
    with pytest.raises(UsageError) as refused:
        parse_settings(["--pool", POOL, *flags], {})
    assert message in str(refused.value)


def test_a_bad_singleton_flag_is_one_line_and_exit_2() -> None:
    """From a shell: one line on stderr, exit 2."""
    result = subprocess.run(
        [sys.executable, "-m", "leaderpool.worker", "--pool", POOL, "--singletons", "a,a"],
        capture_output=True, text=True, timeout=PATIENCE, env=clean_env(), cwd=ROOT,
    )  # fmt: skip
    assert (2, ["leaderpool-worker: error: argument --singletons: names 'a' twice"]) == (
        result.returncode, result.stderr.splitlines()
    )  # fmt: skip


def test_singletons_of_an_unknown_pool_is_exit_1_and_loads_no_event_loop(redis_server: RedisServer) -> None:
    """The rule every command follows: a pool Redis holds no key of is one line and exit 1; and
    the one-shot command's budget: neither redis-py nor asyncio imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "leaderpool.cli", "--redis", redis_server.url,
         "singletons", "nopool"],
        capture_output=True, text=True, timeout=PATIENCE, cwd=ROOT, env=clean_env(),
    )  # fmt: skip
    assert (1, "") == (result.returncode, result.stdout)
    errors = [line for line in result.stderr.splitlines() if "|" not in line]
    assert 1 == len(errors) and "no pool named nopool" in errors[0]
    loaded = {line.rpartition("|")[2].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "leaderpool.cli.singletons" in loaded
    assert set() == loaded & {"redis", "redis.asyncio", "asyncio", "logging", "leaderpool.aio"}


def test_sigterm_hands_every_singleton_over_with_its_state(pool: Pool) -> None:
    """A worker stopped kindly (SIGTERM) stops each singleton (reason stopping), exits 0, and the
    other worker resumes each from the state it saved."""
    for member in ("a", "b"):
        pool.start(member, "--singletons-count", "4", "--task", TASK)
    names = {f"shard-{i}" for i in range(4)}
    pool.settle(names, {"a", "b"})
    leaving = pool.placement.per_member()
    leaver = pool.group.latest["a"]
    handed = {n for n, (m, _) in pool.placement.running.items() if m == "a"}
    leaver.signal(signal.SIGTERM)
    assert 0 == leaver.wait(PATIENCE)
    pool.settle(names, {"b"})
    reasons = {e["singleton"]: e["reason"] for e in leaver.of("singleton_stopped")}
    assert {n: "stopping" for n in handed} == {n: r for n, r in reasons.items() if n in handed}
    runs = {(r["name"], r["member"]): r["runs"] for r in pool.run_records()}
    for name in handed:
        assert runs[(name, "b")] == runs[(name, "a")] + 1, (name, runs, leaving)


def test_a_crashed_singleton_task_restarts_here_with_its_term_and_saved_state(pool: Pool) -> None:
    """A task that raises is started again on the same member, with the same term and the state
    the crashed run saved; a thread task gets the same context (name, term, state, save_state)."""
    pool.start("a", "--singletons", "x", "--task", "tests.support.singleton_tasks:crash_once")
    pool.settle({"x"}, {"a"})
    _, term = pool.placement.running["x"]
    record = eventually(lambda: pool.run_records())[0]
    assert ("x", term, "a", {"crashed": True}) == (record["name"], record["term"], record["member"], record["state"])
    assert [] == pool.group.latest["a"].of("singleton_stopped")  # the singleton stayed here


def test_a_thread_task_gets_the_singletons_context(pool: Pool) -> None:
    """A plain ``def`` task runs in a thread with ctx.name, ctx.term and a blocking ctx.save_state."""
    pool.start("a", "--singletons", "y", "--task", "tests.support.singleton_tasks:in_thread")
    pool.settle({"y"}, {"a"})
    record = eventually(lambda: pool.run_records())[0]
    _, term = pool.placement.running["y"]
    assert ("y", term, 1, {"runs": 1, "by": "a"}) == (record["name"], record["term"], record["runs"], record["state"])


def test_singletons_start_once_an_unreachable_redis_answers(redis_binary: str, tmp_path: Path) -> None:
    """A worker started while Redis is away retries the singletons' start (never fatal), and
    runs them once Redis answers."""
    port = free_port()
    group = ChildGroup()
    try:
        argv = [sys.executable, "-m", "leaderpool.worker", "--redis", f"redis://127.0.0.1:{port}/0", "--pool", POOL,
                "--member-id", "a", "--ttl", TTL, "--json-events", "--singletons", "x", "--task", TASK]  # fmt: skip
        worker = group.start(argv, name="a", env=clean_env(), cwd=ROOT)
        eventually(lambda: "singletons_start_failed" in worker.stderr)
        with RedisServer(redis_binary, port):
            started = worker.wait_for(lambda e: e["event"] == "singleton_started", PATIENCE)
            assert ("x", "a") == (started["singleton"], started["member"])
    finally:
        group.close(grace=0)


def test_a_heavier_worker_runs_its_share(pool: Pool) -> None:
    """--singletons-weight 2 beside a worker of weight 1: twice as many singletons."""
    pool.start("a", "--singletons-count", "6", "--task", TASK, "--singletons-weight", "2")
    pool.start("b", "--singletons-count", "6", "--task", TASK)

    def shared(item: tuple[str, JsonEvent]) -> bool:
        pool.placement.fold(item)
        return {"a": 4, "b": 2} == pool.placement.per_member()

    assert pool.group.events.first(shared, PATIENCE) is not None, pool.story()


def test_max_moves_hands_a_joiners_share_over_in_one_batch(pool: Pool) -> None:
    """--singletons-max-moves 6 on the leader: a joiner's 6 of 12 are handed over at once (the old
    owner stops all 6, then releases them in one script), not one hand-off after another."""
    names = {f"shard-{i}" for i in range(12)}
    work = ("--singletons-count", "12", "--task", TASK, "--singletons-max-moves", "6")
    pool.start("a", *work)
    pool.settle(names, {"a"})
    mark = pool.group.events.mark()
    pool.start("b", *work)
    pool.settle(names, {"a", "b"})
    events = [e for _, e in pool.group.events.snapshot(mark)]
    moved = [e["t"] for e in events if e["event"] == "singleton_stopped" and e["reason"] == "moved"]
    first_start = min(e["t"] for e in events if e["event"] == "singleton_started" and e["member"] == "b")
    assert 6 == len(moved) and 6 == sum(t <= first_start for t in moved), pool.story()


def test_a_frozen_owners_write_is_refused_by_the_singletons_fence(pool: Pool, tmp_path: Path) -> None:
    """ctx.fenced_set in a singleton's task fences by the singleton's own term, on a member that
    is not the pool's leader too. SIGSTOP the owner: the singleton moves (a higher term, whose
    writes are accepted); on SIGCONT the old owner's write with its ended term, sent straight to
    Redis, is refused (stale), and no write of the old term is accepted after the new one's."""
    writes = tmp_path / "writes.txt"
    env = {WRITES_FILE: str(writes), URL: pool.url}
    for member in ("a", "b"):
        argv = [sys.executable, "-m", "leaderpool.worker", "--redis", pool.url, "--pool", POOL, "--member-id", member,
                "--ttl", TTL, "--json-events", "--singletons", "x,y", "--task", FENCED]  # fmt: skip
        pool.group.start(argv, name=member, env=clean_env(**env), cwd=ROOT)
    pool.settle({"x", "y"}, {"a", "b"})
    owner, term = pool.placement.running["x"]
    other = "b" if owner == "a" else "a"

    def lines() -> list[list[str]]:
        return [line.split() for line in writes.read_text().splitlines()] if writes.exists() else []

    eventually(lambda: any(w[:5] == ["write", "x", str(term), owner, "ok"] for w in lines()))
    frozen = pool.group.latest[owner]
    frozen.signal(signal.SIGSTOP)
    try:
        started = pool.group.latest[other].wait_for(
            lambda e: e["event"] == "singleton_started" and e["singleton"] == "x", PATIENCE
        )
        assert started["term"] > term
        eventually(lambda: any(w[:5] == ["write", "x", str(started["term"]), other, "ok"] for w in lines()))
    finally:
        frozen.signal(signal.SIGCONT)
    zombie = eventually(lambda: next((w for w in lines() if w[0] == "zombie" and w[1] == "x"), None))
    assert ["zombie", "x", str(term), owner, "stale"] == zombie[:5], lines()
    of_x = [w for w in lines() if w[1] == "x"]
    new_ok = min(float(w[6]) for w in of_x if w[2] == str(started["term"]) and w[4] == "ok")
    late = [w for w in of_x if w[2] == str(term) and w[4] == "ok" and float(w[5]) > new_ok]
    assert [] == late, of_x  # sent after the new term's write was accepted, and accepted
    value_now = eventually(lambda: pool_value(pool.url, written_key("x")))
    assert int(value_now.split()[0]) >= started["term"] and "zombie" not in value_now, value_now


def pool_value(url: str, key: str) -> str | None:
    client = redis.Redis.from_url(url)
    try:
        got = client.get(key)
        return None if got is None else got.decode() if isinstance(got, bytes) else str(got)
    finally:
        client.close()
