"""Contained process trees: a command and every process it starts -- a helper in the background,
a helper that double-forks into a session of its own -- are stopped as one, killed as one when
their parent dies, and waited for as one; with a cgroup v2 and with the subreaper alone."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leaderpool.proctree import supervisor
from leaderpool.proctree.environment import command_environment
from leaderpool.proctree.launch import ProcessTree, TreeSpec, parse_started, start_tree
from leaderpool.testing.processes import Child
from tests.support.tree_procs import alive, pids, ticks
from tests.support.worker_procs import PATIENCE, ROOT, clean_env, eventually

PROCS = str(ROOT / "tests" / "support" / "tree_procs.py")


def shapes(directory: Path) -> dict[str, tuple[str, ...]]:
    """The trees the issue names: ``sh -c 'helper & wait'``, and a helper that double-forks."""
    helper = f"{sys.executable} {PROCS} helper {directory}"
    return {
        "background": ("sh", "-c", f"{helper} & wait"),
        "doublefork": (sys.executable, PROCS, "doublefork", str(directory)),
    }


@functools.cache
def cgroup_available() -> bool:
    tree = start_tree(TreeSpec(("true",), grace_s=1.0), env=os.environ)
    tree.wait(PATIENCE)
    return tree.containment == "cgroup"


@pytest.fixture(params=["cgroup", "subreaper"])
def containment(request: pytest.FixtureRequest) -> str:
    if request.param == "cgroup" and not cgroup_available():
        pytest.skip("no cgroup v2 can be created here (the subreaper alone holds the tree)")
    return str(request.param)


@pytest.fixture
def tree_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory the helpers record in; whatever they left running is killed afterwards."""
    yield tmp_path
    for pid in pids(tmp_path):
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def start(argv: tuple[str, ...], containment: str, grace_s: float = 5.0) -> ProcessTree:
    env = clean_env()
    tree = start_tree(TreeSpec(argv, grace_s=grace_s, cgroup=containment == "cgroup"), env=env)
    assert containment == tree.containment
    return tree


def all_gone(directory: Path) -> bool:
    return not [pid for pid in pids(directory) if alive(pid)]


class TestParentDeath:
    @pytest.mark.parametrize("shape", ["background", "doublefork"])
    def test_the_whole_tree_dies_when_its_parent_is_sigkilled(
        self, tree_dir: Path, containment: str, shape: str
    ) -> None:
        """SIGKILL of the process that started the tree: every process of it is gone soon after
        (its helper's acts stop), however it was started."""
        argv = shapes(tree_dir)[shape]
        mode = "auto" if containment == "cgroup" else "off"
        with Child([sys.executable, PROCS, "hold", mode, "--", *argv], name="hold", env=clean_env()) as parent:
            report = parent.wait_for(lambda e: "supervisor" in e, PATIENCE)
            assert containment == report["containment"]
            eventually(lambda: len(pids(tree_dir)) >= (2 if shape == "doublefork" else 1) and ticks(tree_dir))
            parent.kill()
            eventually(lambda: all_gone(tree_dir) and not alive(report["supervisor"]), PATIENCE, interval=0.01)
        last = max(ticks(tree_dir))
        time.sleep(0.1)
        assert last == max(ticks(tree_dir))  # nothing acted since

    def test_kill_ends_every_process_at_once(self, tree_dir: Path, containment: str) -> None:
        """kill() (the lifeline closed): SIGKILL to the whole tree; wait() returns once it is gone."""
        tree = start(shapes(tree_dir)["doublefork"], containment)
        eventually(lambda: len(pids(tree_dir)) >= 2)
        tree.kill()
        assert -signal.SIGKILL == tree.wait(PATIENCE)
        assert all_gone(tree_dir)


class TestSupervisorKilled:
    def test_with_a_cgroup_the_parent_kills_and_removes_what_the_supervisor_left(self, tree_dir: Path) -> None:
        """The supervisor SIGKILLed by hand: the command dies by its parent-death signal, and
        wait() kills what else is in the tree's cgroup (a double-forked daemon) and removes it."""
        if not cgroup_available():
            pytest.skip("no cgroup v2 can be created here")
        tree = start(shapes(tree_dir)["doublefork"], "cgroup")
        assert tree.started is not None and tree.started.cgroup is not None
        eventually(lambda: len(pids(tree_dir)) >= 2)
        os.kill(tree.pid, signal.SIGKILL)
        assert -signal.SIGKILL == tree.wait(PATIENCE)
        eventually(lambda: all_gone(tree_dir))
        assert not os.path.exists(tree.started.cgroup)


class TestCgroupFallback:
    def test_where_no_cgroup_can_be_made_the_subreaper_holds_the_tree(
        self, tree_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A cgroup2 mount that refuses a new directory (read-only, not delegated): no cgroup,
        and the tree is still caught whole (the subreaper)."""

        def refuse(path: str, *args: object) -> None:
            raise PermissionError(13, "Read-only file system", path)

        monkeypatch.setattr(os, "mkdir", refuse)
        assert supervisor.make_cgroup() is None
        monkeypatch.undo()
        tree = start(shapes(tree_dir)["doublefork"], "subreaper")
        eventually(lambda: len(pids(tree_dir)) >= 2)
        tree.kill()
        tree.wait(PATIENCE)
        assert all_gone(tree_dir)


class TestStop:
    def test_sigterm_reaches_every_process_then_sigkill_after_the_grace(self, tree_dir: Path, containment: str) -> None:
        """stop(): SIGTERM to each process of the tree (a daemon in a session of its own too);
        one that ignores it is killed after the grace; wait() returns only once all are gone."""
        polite = f"{sys.executable} {PROCS} doublefork {tree_dir}"
        stubborn = f"TREE_STUBBORN=1 {sys.executable} {PROCS} helper {tree_dir}"
        tree = start(("sh", "-c", f"{polite} & {stubborn} & wait"), containment, grace_s=1.0)
        eventually(lambda: len(pids(tree_dir)) >= 3)
        helpers = pids(tree_dir)
        stopped = time.monotonic()
        tree.stop()
        tree.wait(PATIENCE)
        took = time.monotonic() - stopped
        assert all_gone(tree_dir)
        terms = (tree_dir / "events").read_text().split()
        assert len([x for x in terms if x == "term"]) == 1 and int(terms[1]) in helpers  # the polite daemon
        assert took >= 1.0  # the stubborn one lived until the grace was over

    def test_what_an_exited_command_left_running_is_stopped_before_wait_returns(
        self, tree_dir: Path, containment: str
    ) -> None:
        """The command exits (3) leaving a helper: the helper gets SIGTERM, and wait() returns the
        command's code once it is gone."""
        tree = start(("sh", "-c", f"{sys.executable} {PROCS} helper {tree_dir} & sleep 0.5; exit 3"), containment)
        assert 3 == tree.wait(PATIENCE)
        assert all_gone(tree_dir)
        assert (tree_dir / "events").read_text().startswith("term ")


class TestOutcome:
    def test_the_commands_signal_comes_back_as_a_negative_code(self, containment: str) -> None:
        """Killed by SIGKILL, the command's tree reports -9, as subprocess does."""
        assert -signal.SIGKILL == start(("sh", "-c", "kill -9 $$"), containment).wait(PATIENCE)

    def test_a_command_that_cannot_run_is_one_line_and_127(self) -> None:
        """Not found: 127 (as a shell), and one line naming the program, prefixed by the label."""
        spec = TreeSpec(("no-such-program-here",), grace_s=1.0, label="leaderpool-cli")
        tree = start_tree(spec, env=os.environ, stderr=subprocess.PIPE)
        assert 127 == tree.wait(PATIENCE)
        assert tree.started is None
        assert tree.process.stderr is not None
        with tree.process.stderr as pipe:
            err = pipe.read().decode()
        assert "leaderpool-cli: error: cannot run no-such-program-here: No such file or directory\n" == err

    def test_the_report_names_the_commands_pid_and_its_containment(self) -> None:
        """``started PID MODE CGROUP``; anything else means the command did not start."""
        assert (12, "cgroup", "/sys/fs/cgroup/a b") == parse_started(b"started 12 cgroup /sys/fs/cgroup/a b\n")
        assert (12, "subreaper", None) == parse_started(b"started 12 subreaper -\n")
        assert parse_started(b"") is None and parse_started(b"started x y -") is None


class TestEnvironment:
    def test_credentials_are_withheld_unless_passed(self) -> None:
        """Withheld names are dropped, passed ones kept, added ones set; the rest is inherited."""
        base = {"PATH": "/bin", "LEADERPOOL_REDIS_URL": "redis://:pw@h", "LEADERPOOL_REDIS_PASSWORD": "pw"}
        withheld = ("LEADERPOOL_REDIS_URL", "LEADERPOOL_REDIS_PASSWORD")
        env = command_environment(base, added={"X": "1"}, withheld=withheld)
        assert {"PATH": "/bin", "X": "1"} == env
        env = command_environment(base, withheld=withheld, passed=("LEADERPOOL_REDIS_URL",))
        assert {"PATH": "/bin", "LEADERPOOL_REDIS_URL": "redis://:pw@h"} == env

    def test_the_command_sees_the_environment_it_is_given(self, tree_dir: Path) -> None:
        """The supervisor (python -I) hands the command exactly the environment given."""
        out = tree_dir / "act.json"
        env = {**clean_env(), "ONLY_HERE": "yes"}
        tree = start_tree(TreeSpec((sys.executable, PROCS, "first-act", str(tree_dir), str(out)), grace_s=1.0), env=env)
        assert 0 == tree.wait(PATIENCE)
        seen = json.loads(out.read_text())["env"]
        assert "yes" == seen["ONLY_HERE"] and not any(k.startswith("LEADERPOOL_") for k in seen)
