"""The README's worker table is the configuration reference: it names every flag of the worker's
real parser, each with its variable, and no flag the parser does not have."""

from __future__ import annotations

import re

from leaderpool.worker.settings import build_parser
from tests.support.worker_procs import ROOT


def reference_rows() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## The worker\n", 1)[1].split("\n## ", 1)[0]
    return {m.group(1): line for line in section.splitlines() if (m := re.match(r"\| `(--[a-z-]+)", line))}


def test_every_worker_flag_is_in_the_reference_with_its_variable() -> None:
    rows = reference_rows()
    flags: set[str] = set()
    for action in build_parser()._actions:
        for flag in action.option_strings:
            if not flag.startswith("--") or flag == "--help":
                continue
            flags.add(flag)
            assert flag in rows, f"README's worker table lacks {flag}"
            variable = re.search(r"\[(LEADERPOOL_[A-Z_]+)", action.help or "")
            if variable:
                assert f"`{variable.group(1)}`" in rows[flag], f"README's row for {flag} lacks {variable.group(1)}"
    assert set() == set(rows) - flags, "README's worker table names flags the worker does not have"
