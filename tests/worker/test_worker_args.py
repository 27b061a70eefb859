"""Worker flags and their environment variables: good ones map onto MemberConfig, bad ones end
in exit 2 with one line on stderr naming the argument, and never a traceback (no Redis needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from leaderpool.console.args import UsageError
from leaderpool.worker import main as worker
from leaderpool.worker.settings import WorkerSettings, parse_settings
from leaderpool.worker.tasks import DEFAULT_TASK
from tests.support.worker_procs import ROOT, clean_env


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """In-process main() configures structlog for a CLI (stderr, warning level); undo it so the
    other tests see structlog's defaults."""
    yield
    structlog.reset_defaults()


def settings(*argv: str, **env: str) -> WorkerSettings:
    return parse_settings(list(argv), dict(env))


def usage_error(
    argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    """Run worker.main and return its one stderr line, checking exit 2 and nothing on stdout."""
    for name in [n for n in os.environ if n.startswith("LEADERPOOL_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        worker.main(argv)
    out, err = capsys.readouterr()
    assert 2 == exit_info.value.code
    assert "" == out
    assert 1 == len(err.splitlines()), err
    assert "Traceback" not in err
    return err.strip()


class TestGoodArguments:
    def test_flags_map_onto_the_member_config(self) -> None:
        """Every flag lands in the field of the same name."""
        s = settings(
            "--redis", "redis://example:6380/2", "--pool", "jobs", "--member-id", "m1", "--node", "n1",
            "--priority", "-3", "--ttl", "1.5", "--heartbeat", "0.25", "--takeover", "--meta", "zone=eu",
            "--meta", "role=cleaner", "--avoid-pool", "other", "--json-events", "--log-format", "json",
            "--log-level", "debug", "--task", "tests.support.worker_tasks:crash_soon", "--prefix", "lp2",
        )  # fmt: skip
        c = s.config
        assert ("jobs", "m1", "n1", -3, 1.5, 0.25, True) == (
            c.pool, c.member_id, c.node, c.priority, c.ttl_s, c.heartbeat, c.takeover,
        )  # fmt: skip
        assert {"zone": "eu", "role": "cleaner"} == dict(c.meta)
        assert (("other",), "lp2") == (c.avoid_pools, c.prefix)
        assert ("redis://example:6380/2", True, "json", "debug") == (
            s.redis_url, s.json_events, s.log_format, s.log_level,
        )  # fmt: skip
        assert "crash_soon" == s.task.__name__

    def test_environment_variables_stand_in_for_flags(self) -> None:
        """Each LEADERPOOL_* variable sets what its flag would; LEADERPOOL_META is comma-separated."""
        s = settings(
            LEADERPOOL_REDIS_URL="unix:///tmp/redis.sock", LEADERPOOL_POOL="jobs", LEADERPOOL_MEMBER_ID="m2",
            LEADERPOOL_NODE="n2", LEADERPOOL_PRIORITY="7", LEADERPOOL_TTL="3", LEADERPOOL_HEARTBEAT="0.5",
            LEADERPOOL_TAKEOVER="yes", LEADERPOOL_META="a=1, b=two",
            LEADERPOOL_TASK="tests.support.worker_tasks:fenced_writer",
            LEADERPOOL_JSON_EVENTS="1", LEADERPOOL_LOG_FORMAT="json",
        )  # fmt: skip
        c = s.config
        assert ("jobs", "m2", "n2", 7, 3.0, 0.5, True, {"a": "1", "b": "two"}) == (
            c.pool, c.member_id, c.node, c.priority, c.ttl_s, c.heartbeat, c.takeover, dict(c.meta),
        )  # fmt: skip
        assert ("unix:///tmp/redis.sock", True, "json", "fenced_writer") == (
            s.redis_url, s.json_events, s.log_format, s.task.__name__,
        )  # fmt: skip

    def test_a_flag_wins_over_its_variable(self) -> None:
        assert 2.0 == settings("--pool", "p", "--ttl", "2", LEADERPOOL_TTL="9").config.ttl_s

    def test_defaults(self) -> None:
        """Only the pool is required: redis on localhost, ttl 5, heartbeat ttl/3, the built-in task."""
        s = settings("--pool", "p")
        assert ("redis://localhost:6379/0", 5.0, 0, False, False) == (
            s.redis_url, s.config.ttl_s, s.config.priority, s.config.takeover, s.json_events,
        )  # fmt: skip
        assert (DEFAULT_TASK, 2.5) == (s.task_spec, s.task_grace_s)


BAD_ARGUMENTS = [
    ([], {}, "argument --pool: is required"),
    (["--pool", ""], {}, "argument --pool: must be a non-empty string"),
    (["--pool", "two words"], {}, "argument --pool:"),
    (["--pool", "p", "--ttl", "0"], {}, "argument --ttl: must be a number of seconds > 0"),
    (["--pool", "p", "--ttl", "-1"], {}, "argument --ttl: must be a number of seconds > 0"),
    (["--pool", "p", "--ttl", "soon"], {}, "argument --ttl: must be a number of seconds"),
    (["--pool", "p", "--ttl", "2", "--heartbeat", "2"], {}, "argument --heartbeat: must be shorter than the ttl"),
    (["--pool", "p", "--heartbeat", "9"], {}, "argument --heartbeat: must be shorter than the ttl (5s)"),
    (["--pool", "p", "--redis", "redis://localhost:99999"], {}, "argument --redis:"),
    (["--pool", "p", "--redis", "not a url"], {}, "argument --redis:"),
    (["--pool", "p", "--redis", "http://localhost"], {}, "argument --redis: redis URL 'http://localhost' has scheme"),
    (["--pool", "p", "--task", "nocolon"], {}, "argument --task: must be MODULE:FUNCTION"),
    (["--pool", "p", "--task", "no_such_module_xyz:run"], {}, "argument --task: cannot import module"),
    (["--pool", "p", "--task", "tests.support.worker_tasks:missing"], {}, "has no attribute 'missing'"),
    (["--pool", "p", "--task", "tests.support.worker_tasks:NOT_CALLABLE"], {}, "NOT_CALLABLE' is not callable"),
    (["--pool", "p", "--meta", "novalue"], {}, "argument --meta: expected KEY=VALUE, got 'novalue'"),
    (["--pool", "p", "--meta", "=v"], {}, "argument --meta: expected KEY=VALUE"),
    (["--pool", "p", "--priority", "high"], {}, "argument --priority: must be an integer, got 'high'"),
    (["--pool", "p", "--priority", "1.5"], {}, "argument --priority: must be an integer"),
    (["--pool", "p", "--log-format", "xml"], {}, "argument --log-format: must be one of json, console"),
    (["--pool", "p", "--member-id", "a b"], {}, "argument --member-id:"),
    (["--pool", "p", "--frobnicate"], {}, "unrecognized arguments: --frobnicate"),
    ([], {"LEADERPOOL_POOL": "p", "LEADERPOOL_TTL": "abc"}, "argument LEADERPOOL_TTL: must be a number of seconds"),
    ([], {"LEADERPOOL_POOL": "p", "LEADERPOOL_TAKEOVER": "maybe"}, "argument LEADERPOOL_TAKEOVER: must be one of"),
    ([], {"LEADERPOOL_POOL": "p", "LEADERPOOL_META": "a=1,b"}, "argument LEADERPOOL_META: expected KEY=VALUE, got 'b'"),
    ([], {"LEADERPOOL_POOL": "p", "LEADERPOOL_REDIS_URL": "tcp://x"}, "argument LEADERPOOL_REDIS_URL:"),
]  # fmt: skip


class TestBadArguments:
    @pytest.mark.parametrize(("argv", "env", "expected"), BAD_ARGUMENTS, ids=[e[2][:40] for e in BAD_ARGUMENTS])
    def test_bad_argument_is_one_line_and_exit_2(
        self,
        argv: list[str],
        env: dict[str, str],
        expected: str,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """The line names the argument (flag or variable) and says what is wrong."""
        line = usage_error(argv, env, monkeypatch, capsys)
        assert line.startswith("leaderpool-worker: error: ")
        assert expected in line

    def test_a_task_module_that_fails_to_import_is_reported(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "broken_task_mod.py").write_text("raise RuntimeError('bad config')\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        line = usage_error(["--pool", "p", "--task", "broken_task_mod:run"], {}, monkeypatch, capsys)
        assert "argument --task: importing module 'broken_task_mod' failed: RuntimeError: bad config" in line

    def test_usage_error_names_the_argument(self) -> None:
        with pytest.raises(UsageError, match=r"^argument --ttl: "):
            settings("--pool", "p", "--ttl", "0")

    def test_the_real_entry_point_exits_2_without_a_traceback(self) -> None:
        """Through ``python -m leaderpool.worker`` too: one line, exit 2, nothing on stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "leaderpool.worker", "--pool", "p", "--heartbeat", "7", "--ttl", "1"],
            capture_output=True, text=True, timeout=60, cwd=ROOT, env=clean_env(),
        )  # fmt: skip
        assert (2, "") == (done.returncode, done.stdout)
        assert ["leaderpool-worker: error: argument --heartbeat: must be shorter than the ttl (1s), got 7"] == (
            done.stderr.splitlines()
        )


def test_singletons_come_from_flags_or_variables() -> None:
    """--singletons (repeatable, comma-separated) and --singletons-count, or their variables."""
    from leaderpool.worker.settings import parse_settings

    s = parse_settings(["--pool", "p", "--singletons", "a,b", "--singletons", "c", "--singletons-count", "2"], {})
    assert (("a", "b", "c"), 2, True) == (s.singletons, s.singletons_count, s.runs_singletons)
    env = {"LEADERPOOL_SINGLETONS": "x, y", "LEADERPOOL_SINGLETONS_COUNT": "3", "LEADERPOOL_SINGLETONS_WEIGHT": "2.5",
           "LEADERPOOL_SINGLETONS_MAX_MOVES": "16"}  # fmt: skip
    s = parse_settings(["--pool", "p"], env)
    assert (("x", "y"), 3, 2.5, 16) == (s.singletons, s.singletons_count, s.singletons_weight, s.singletons_max_moves)
    assert 1 == parse_settings(["--pool", "p", "--singletons", "a"], {}).singletons_max_moves
    assert not parse_settings(["--pool", "p"], {}).runs_singletons
