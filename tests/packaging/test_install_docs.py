"""What the install instructions name is what pyproject.toml declares: the dependencies, each
extra and its packages (Getting started and the README's Install), so neither can drift."""

from __future__ import annotations

import re

import pytest

from tests.support.pyproject import project
from tests.support.worker_procs import ROOT

PROJECT = project()
GETTING_STARTED = (ROOT / "docs" / "getting-started.md").read_text()
INSTALL_LINE = re.compile(r"^pip install '/path/to/leaderpool\[(\w+)\]'\s+# \+ ([^(\n]*)", re.MULTILINE)


def names(requirements: list[str]) -> set[str]:
    """Distribution names of requirement strings, without versions, extras or markers."""
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in requirements}


def ticked(text: str) -> set[str]:
    return {t.lower() for t in re.findall(r"`([A-Za-z0-9_.-]+)`", text)}


def test_the_dependencies_named_are_the_declared_ones() -> None:
    """Getting started's sentence names every dependency (croniter was left out once), no other."""
    sentence = GETTING_STARTED.split("it needs", 1)[1].split("which pip installs", 1)[0]
    assert names(PROJECT["dependencies"]) == ticked(sentence)


def test_every_extra_is_shown_with_its_packages() -> None:
    """One install line per extra; each lists the extra's packages (dev's are in the paragraph after)."""
    extras = PROJECT["optional-dependencies"]
    shown = dict(INSTALL_LINE.findall(GETTING_STARTED))
    assert set(extras) == set(shown)
    for extra, listed in shown.items():
        if extra == "dev":
            continue
        assert names(extras[extra]) == {n.strip().lower() for n in listed.split(",")}, extra


def test_the_dev_extra_paragraph_lists_it_whole() -> None:
    paragraph = GETTING_STARTED.split("The `dev` extra holds", 1)[1].split("checks).", 1)[0]
    assert names(PROJECT["optional-dependencies"]["dev"]) == ticked(paragraph)


@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md"])
def test_each_install_line_names_a_declared_extra(page: str) -> None:
    for extra, listed in INSTALL_LINE.findall((ROOT / page).read_text()):
        assert extra in PROJECT["optional-dependencies"], f"{page}: no extra {extra!r}"
        packages = {n.strip().lower().split(" ")[0] for n in listed.split(",")}
        declared = names(PROJECT["optional-dependencies"][extra])
        assert packages <= declared or extra == "dev", f"{page}: [{extra}] does not hold {packages - declared}"
