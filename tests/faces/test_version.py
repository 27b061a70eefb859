"""One version, from the package metadata, printed by both commands."""

from __future__ import annotations

import re
import sys
from importlib import metadata

import pytest

import leaderpool
from leaderpool.testing import processes
from tests.support.worker_procs import ROOT, clean_env


def test_the_version_is_the_packages() -> None:
    found = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert found is not None
    declared = found.group(1)
    assert declared == metadata.version("leaderpool") == leaderpool.__version__


@pytest.mark.parametrize(
    ("module", "prog"), [("leaderpool.cli", "leaderpool-cli"), ("leaderpool.worker", "leaderpool-worker")]
)
def test_version_flag(module: str, prog: str) -> None:
    done = processes.run([sys.executable, "-m", module, "--version"], timeout=30, cwd=ROOT, env=clean_env())
    assert (0, f"{prog} {leaderpool.__version__}\n", "") == (done.returncode, done.stdout, done.stderr)


def test_the_changelog_names_this_version() -> None:
    assert f"\n## [{leaderpool.__version__}] - " in (ROOT / "CHANGELOG.md").read_text()
