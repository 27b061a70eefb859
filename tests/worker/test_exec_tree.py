"""``--exec``'s command is a contained process tree: leader work stops entirely. A helper the
command started in the background, or one that double-forked into a session of its own, is gone
before the next leader's command acts -- when the worker is SIGKILLed, and when the lead ends
kindly (SIGTERM, then SIGKILL after the grace) -- and the command does not inherit the Redis
credentials unless ``--pass-env`` names them."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from leaderpool.console.args import UsageError
from leaderpool.testing.redis_server import RedisServer
from leaderpool.worker.settings import parse_settings
from tests.support.tree_procs import alive, pids, ticks
from tests.support.worker_procs import ROOT, eventually, workers_for

PROCS = str(ROOT / "tests" / "support" / "tree_procs.py")


def old_tree(directory: Path, shape: str) -> tuple[str, ...]:
    """The first leader's command: ``sh -c 'helper & wait'``, or a helper that double-forks."""
    if shape == "background":
        return ("--exec", "--", "sh", "-c", f"{sys.executable} {PROCS} helper {directory} & wait")
    return ("--exec", "--", sys.executable, PROCS, "doublefork", str(directory))


def first_act(old: Path, out: Path) -> tuple[str, ...]:
    """The next leader's command: its first act records which of the old tree's processes run."""
    return ("--exec", "--", sys.executable, PROCS, "first-act", str(old), str(out), "--wait")


@pytest.fixture
def old(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "old"
    directory.mkdir()
    yield directory
    for pid in pids(directory):  # only if the test failed: nothing is left running
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def act(out: Path) -> dict[str, Any]:
    return eventually(lambda: out.exists() and out.stat().st_size and json.loads(out.read_text()))  # type: ignore[no-any-return]


class TestWorkerKilled:
    @pytest.mark.parametrize("shape", ["background", "doublefork"])
    def test_the_old_tree_is_gone_before_the_next_leaders_command_acts(
        self, redis_one: RedisServer, old: Path, tmp_path: Path, shape: str
    ) -> None:
        """SIGKILL of the leading worker: when the next leader's command first acts, no process of
        the old tree runs, and the old tree's last act came before it."""
        out = tmp_path / "act.json"
        with workers_for(redis_one.url, pool=f"tree-{shape}") as workers:
            a = workers.start("a", *old_tree(old, shape))
            a.elected()
            b = workers.start("b", *first_act(old, out))
            b.sees("a")
            eventually(lambda: len(pids(old)) >= (2 if shape == "doublefork" else 1) and ticks(old))
            helpers = pids(old)
            a.kill()
            b.elected()
            seen = act(out)
        assert [] == seen["alive"]
        assert max(ticks(old)) < seen["t"]
        assert not [pid for pid in helpers if alive(pid)]


class TestLeadEndsKindly:
    def test_sigterm_to_the_tree_then_sigkill_after_the_grace_then_the_lead_moves(
        self, redis_one: RedisServer, old: Path, tmp_path: Path
    ) -> None:
        """SIGTERM to the worker: each helper gets SIGTERM (a daemon in its own session too); one
        that ignores it is killed after --task-grace; only then is the lead released, so the next
        leader's command first acts after the grace, with no process of the old tree left."""
        out = tmp_path / "act.json"
        polite = f"{sys.executable} {PROCS} doublefork {old}"
        stubborn = f"TREE_STUBBORN=1 {sys.executable} {PROCS} helper {old}"
        command = ("--exec", "--", "sh", "-c", f"{polite} & {stubborn} & wait")
        with workers_for(redis_one.url, pool="tree-kind") as workers:
            a = workers.start("a", "--task-grace", "1", *command, ttl="5")
            a.elected()
            b = workers.start("b", *first_act(old, out), ttl="5")
            b.sees("a")
            eventually(lambda: len(pids(old)) >= 3)
            stopped = time.time_ns()
            a.signal(signal.SIGTERM)
            b.elected()
            seen = act(out)
            assert 0 == a.wait()
        assert [] == seen["alive"]
        assert max(ticks(old)) < seen["t"]
        assert seen["t"] - stopped >= 1_000_000_000  # the stubborn helper lived for the grace
        assert 1 == (old / "events").read_text().count("term ")  # the polite daemon was asked


class TestCredentials:
    @pytest.mark.parametrize("passed", [False, True], ids=["withheld", "passed"])
    def test_the_command_gets_the_redis_url_only_when_passed(
        self, redis_one: RedisServer, old: Path, tmp_path: Path, passed: bool
    ) -> None:
        """LEADERPOOL_REDIS_URL in the worker's environment is not the command's, unless
        ``--pass-env LEADERPOOL_REDIS_URL``; the lead's own variables always are."""
        out = tmp_path / "act.json"
        extra = ("--pass-env", "LEADERPOOL_REDIS_URL") if passed else ()
        with workers_for(redis_one.url, pool="tree-env") as workers:
            workers.start("a", *extra, *first_act(old, out), env={"LEADERPOOL_REDIS_URL": redis_one.url}).elected()
            env = act(out)["env"]
        assert "a" == env["LEADERPOOL_MEMBER"]
        assert passed == ("LEADERPOOL_REDIS_URL" in env)

    @pytest.mark.parametrize(
        ("args", "line"),
        [
            (["--pass-env", "HOME", "--exec", "--", "true"], "argument --pass-env: 'HOME' is not withheld"),
            (["--pass-env", "LEADERPOOL_REDIS_URL"], "argument --pass-env: only applies with --exec"),
        ],
    )
    def test_a_bad_pass_env_names_what_is_wrong(self, args: list[str], line: str) -> None:
        with pytest.raises(UsageError) as raised:
            parse_settings(["--pool", "p", *args], {})
        assert line in str(raised.value)

    def test_pass_env_may_come_from_its_variable(self) -> None:
        """LEADERPOOL_PASS_ENV: comma-separated names."""
        env = {"LEADERPOOL_PASS_ENV": "LEADERPOOL_REDIS_URL,LEADERPOOL_REDIS_PASSWORD"}
        s = parse_settings(["--pool", "p", "--exec", "--", "true"], env)
        assert ("LEADERPOOL_REDIS_URL", "LEADERPOOL_REDIS_PASSWORD") == s.pass_env
