"""The wheel as a user would install it: built from the checkout, installed into a fresh
environment with nothing of the checkout on its path, and run. A module, a data file (the
dashboard's page) or an entry point left out of the package fails here, not at a user's.

nox's ``package`` session builds dist/ first and passes it in LEADERPOOL_WHEEL_DIR; otherwise
the wheel is built here (uv build, its build environment cached by uv)."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from leaderpool.testing import processes
from leaderpool.testing.processes import Child
from leaderpool.testing.redis_server import RedisServer
from tests.support.pyproject import project
from tests.support.worker_procs import PATIENCE, ROOT

pytestmark = pytest.mark.slow
VERSION = project()["version"]
UV = str(Path(sys.executable).with_name("uv"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bin/ directory of a fresh environment holding only the wheel and its dependencies."""
    given = os.environ.get("LEADERPOOL_WHEEL_DIR")
    dist = Path(given) if given else tmp_path_factory.mktemp("dist")
    if not given:
        built = processes.run([UV, "build", "--wheel", "--out-dir", str(dist), str(ROOT)], timeout=300)
        assert 0 == built.returncode, built.stderr
    wheels = list(dist.glob(f"leaderpool-{VERSION}-*.whl"))
    assert 1 == len(wheels), list(dist.iterdir())
    venv = tmp_path_factory.mktemp("venv") / "env"
    made = processes.run([UV, "venv", "--quiet", "--python", sys.executable, str(venv)], timeout=120)
    assert 0 == made.returncode, made.stderr
    python = str(venv / "bin" / "python")
    done = processes.run([UV, "pip", "install", "--quiet", "--python", python, str(wheels[0])], timeout=300)
    assert 0 == done.returncode, done.stderr
    yield venv / "bin"
    shutil.rmtree(venv, ignore_errors=True)


def _outside_env() -> dict[str, str]:
    """No PYTHONPATH, no LEADERPOOL_* settings: the installed package is all there is."""
    return {k: v for k, v in processes.clean_env().items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def _run(bin_dir: Path, tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    done = processes.run([str(bin_dir / argv[0]), *argv[1:]], timeout=60, env=_outside_env(), cwd=tmp_path)
    return done.returncode, done.stdout, done.stderr


def test_the_installed_package_comes_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    code, out, err = _run(installed, tmp_path, "python", "-c", "import leaderpool; print(leaderpool.__file__)")
    assert 0 == code, err
    assert str(installed.parent) in out and str(ROOT) not in out


def test_both_commands_answer(installed: Path, tmp_path: Path) -> None:
    assert (0, f"leaderpool-cli {VERSION}\n", "") == _run(installed, tmp_path, "leaderpool-cli", "--version")
    code, out, err = _run(installed, tmp_path, "leaderpool-worker", "--help")
    assert (0, "") == (code, err)
    assert "--pool" in out


def test_the_dashboards_page_is_in_the_wheel(installed: Path, tmp_path: Path) -> None:
    code, out, err = _run(
        installed, tmp_path, "python", "-c",
        "from importlib import resources; print(resources.files('leaderpool.cli.dashboard').joinpath('static').is_dir())",  # noqa: E501
    )  # fmt: skip
    assert (0, "True\n") == (code, out), err


def test_a_one_member_pool_elects_and_hands_over_kindly(installed: Path, tmp_path: Path) -> None:
    with RedisServer() as server:
        argv = [str(installed / "leaderpool-worker"), "--redis", server.url, "--pool", "wheel", "--member-id", "only"]
        worker = Child([*argv, "--ttl", "2", "--json-events"], name="wheel-worker", env=_outside_env(), cwd=tmp_path)
        try:
            elected = worker.wait_for(lambda e: e["event"] == "elected", PATIENCE)
            assert ("only", 1) == (elected["member"], elected["term"])
            worker.proc.send_signal(signal.SIGTERM)
            assert 0 == worker.wait(PATIENCE)
            assert any(e["event"] == "revoked" for e in worker.events)
        finally:
            worker.close()
