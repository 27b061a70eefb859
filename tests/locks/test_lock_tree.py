"""``leaderpool-cli lock RES -- COMMAND`` runs COMMAND as a contained process tree: no process of
a holder's tree still runs when the next holder's command first acts -- the holder SIGKILLed, or
stopped kindly (SIGTERM, SIGKILL after ``--grace``, the lock released only after the tree is gone)
-- and the command does not inherit the Redis credentials unless ``--pass-env`` names them."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from leaderpool.testing.processes import Child, ChildGroup
from leaderpool.testing.redis_server import RedisServer
from tests.support.tree_procs import alive, pids, ticks
from tests.support.worker_procs import PATIENCE, ROOT, clean_env, cli, eventually

PROCS = str(ROOT / "tests" / "support" / "tree_procs.py")


def holder(group: ChildGroup, url: str, *args: str) -> Child:
    argv = [sys.executable, "-m", "leaderpool.cli", "--redis", url, "lock", *args]
    return group.add(Child(argv, name=f"lock-{len(group.started)}", env=clean_env(), cwd=ROOT))


@pytest.fixture
def old(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "old"
    directory.mkdir()
    yield directory
    for pid in pids(directory):  # only if the test failed: nothing is left running
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def next_holder(url: str, old: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Take the lock after the old holder, with a command whose first act records the old tree."""
    done = cli("--redis", url, "lock", "jobs", "--ttl", "1", "--timeout", "20", *extra, "--",
               sys.executable, PROCS, "first-act", str(old), str(out), env=env)  # fmt: skip
    assert 0 == done.returncode, done.stderr
    return json.loads(out.read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("shape", ["background", "doublefork"])
def test_a_killed_holders_tree_is_gone_before_the_next_holders_command_acts(
    redis_one: RedisServer, old: Path, tmp_path: Path, shape: str
) -> None:
    """SIGKILL of ``lock``: its whole tree dies with it (a double-forked daemon too), so the
    next holder's command, run under a greater token, finds none of it running."""
    helper = f"{sys.executable} {PROCS} helper {old}"
    forks = [sys.executable, PROCS, "doublefork", str(old)]
    command = ["sh", "-c", f"{helper} & wait"] if shape == "background" else forks
    with ChildGroup() as group:
        first = holder(group, redis_one.url, "jobs", "--ttl", "1", "--", *command)
        eventually(lambda: len(pids(old)) >= (2 if shape == "doublefork" else 1) and ticks(old))
        first.kill()
        seen = next_holder(redis_one.url, old, tmp_path / "act.json")
    assert [] == seen["alive"]
    assert max(ticks(old)) < seen["t"]
    assert int(seen["env"]["LEADERPOOL_LOCK_TOKEN"]) >= 2


def test_sigterm_stops_the_tree_and_the_lock_is_released_only_after_it_is_gone(
    redis_one: RedisServer, old: Path, tmp_path: Path
) -> None:
    """SIGTERM to ``lock``: SIGTERM to every process of the tree, SIGKILL after ``--grace`` to one
    that ignores it; ``lock`` exits once all are gone, and releases the lock then (not later: the
    next holder does not wait for the ttl; not sooner: it finds no process of the old tree)."""
    polite = f"{sys.executable} {PROCS} doublefork {old}"
    stubborn = f"TREE_STUBBORN=1 {sys.executable} {PROCS} helper {old}"
    with ChildGroup() as group:
        first = holder(group, redis_one.url, "jobs", "--ttl", "30", "--grace", "1", "--", "sh", "-c",
                       f"{polite} & {stubborn} & wait")  # fmt: skip
        eventually(lambda: len(pids(old)) >= 3)
        first.signal(signal.SIGTERM)
        assert 128 + signal.SIGTERM == first.wait(PATIENCE)  # the shell was ended by the SIGTERM
        assert not [pid for pid in pids(old) if alive(pid)]
        client = redis.Redis.from_url(redis_one.url)
        assert client.get("lock:{jobs}") is None
        client.close()
        seen = next_holder(redis_one.url, old, tmp_path / "act.json")
    assert [] == seen["alive"]
    assert 1 == (old / "events").read_text().count("term ")


@pytest.mark.parametrize("passed", [False, True], ids=["withheld", "passed"])
def test_the_command_gets_the_redis_url_only_when_passed(
    redis_one: RedisServer, old: Path, tmp_path: Path, passed: bool
) -> None:
    """The URL from LEADERPOOL_REDIS_URL is not the command's unless ``--pass-env`` names it."""
    extra = ("--pass-env", "LEADERPOOL_REDIS_URL") if passed else ()
    seen = next_holder(redis_one.url, old, tmp_path / "act.json", *extra, env={"LEADERPOOL_REDIS_URL": redis_one.url})
    assert passed == ("LEADERPOOL_REDIS_URL" in seen["env"])
    assert "jobs" == seen["env"]["LEADERPOOL_LOCK_RESOURCE"]


def test_a_bad_pass_env_is_one_line_and_exit_2(redis_one: RedisServer) -> None:
    done = cli("--redis", redis_one.url, "lock", "jobs", "--pass-env", "HOME", "--", "true")
    assert 2 == done.returncode
    assert 1 == len(done.stderr.splitlines()) and "argument --pass-env: 'HOME' is not withheld" in done.stderr
