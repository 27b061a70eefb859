"""The plugin as pytest loads it: registered by the package's entry point, its option checked."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

A_TEST = """
def test_leads(leaderpool_pool):
    assert "m0" == leaderpool_pool("p", members=1).wait_for_leader()
"""


def run_pytest(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_app.py").write_text(A_TEST)
    environ = {k: v for k, v in os.environ.items() if k != "LEADERPOOL_TEST_REDIS"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "test_app.py"],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_entry_point_names_the_plugin() -> None:
    [entry] = [e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "leaderpool"]
    assert "leaderpool.testkit.pytest_plugin" == entry.value


def test_an_application_test_gets_the_fixtures_without_configuring_anything(tmp_path: Path) -> None:
    done = run_pytest(tmp_path)
    assert 0 == done.returncode, done.stdout + done.stderr
    assert "1 passed" in done.stdout


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (("--leaderpool-redis=bogus",), {}, "argument --leaderpool-redis: invalid choice: 'bogus'"),
        ((), {"LEADERPOOL_TEST_REDIS": "bogus"}, "$LEADERPOOL_TEST_REDIS must be one of fake, real, got 'bogus'"),
    ],
)
def test_a_bad_choice_of_redis_is_one_line(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], says: str
) -> None:
    done = run_pytest(tmp_path, *args, env=env)
    assert 0 != done.returncode
    assert says in done.stderr
    assert "Traceback" not in done.stderr


def test_the_plugin_imports_nothing_of_leaderpool_until_a_fixture_is_used() -> None:
    code = (
        "import sys, leaderpool.testkit.pytest_plugin;"
        "print(sorted(m for m in sys.modules if m.startswith(('leaderpool.', 'fakeredis', 'redis'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert "['leaderpool.testkit', 'leaderpool.testkit.pytest_plugin']" == out.strip()
