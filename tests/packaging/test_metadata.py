"""What a package index shows: the license, the Pythons, the changelog. Each is said in two
places (pyproject.toml and the file or session that acts on it); these keep them in step."""

from __future__ import annotations

import ast
import re

from tests.support.pyproject import project
from tests.support.worker_procs import ROOT

PROJECT = project()
KEEP_A_CHANGELOG = ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")


def _nox_constant(name: str) -> object:
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"noxfile.py defines no {name}")


def test_the_license_file_is_the_license_declared() -> None:
    assert "MIT" == PROJECT["license"]
    assert ["LICENSE"] == PROJECT["license-files"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")


def test_the_classifiers_name_the_pythons_nox_tests() -> None:
    listed = [c.rsplit(" :: ", 1)[1] for c in PROJECT["classifiers"] if re.fullmatch(r".*:: 3\.\d+", c)]
    supported = _nox_constant("SUPPORTED")
    assert tuple(listed) == supported
    assert f">={listed[0]}" == PROJECT["requires-python"]
    assert _nox_constant("DEFAULT") in supported


def test_the_changelog_is_in_keep_a_changelog_form() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## (.+)$", text, re.M)
    assert "[Unreleased]" == releases[0], "the first section is Unreleased"
    for heading in releases[1:]:
        assert re.fullmatch(r"\[\d+\.\d+\.\d+\] - \d{4}-\d{2}-\d{2}", heading), heading
    dates = [h.split(" - ")[1] for h in releases[1:]]
    assert sorted(dates, reverse=True) == dates, "newest first"
    assert f"[{PROJECT['version']}]" == releases[1].split(" - ")[0], "the latest release is the package's version"
    for section in re.findall(r"^### (.+)$", text, re.M):
        assert section in KEEP_A_CHANGELOG, section
