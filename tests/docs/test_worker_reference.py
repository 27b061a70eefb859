"""The worker reference page (docs/reference/worker.md) is the configuration reference: its table
names every flag of the worker's real parser, each with its variable, and no flag the parser does
not have."""

from __future__ import annotations

import re

from leaderpool.worker.settings import build_parser
from tests.docs.samples import ROOT

PAGE = "docs/reference/worker.md"


def reference_rows() -> dict[str, str]:
    text = (ROOT / PAGE).read_text()
    return {m.group(1): line for line in text.splitlines() if (m := re.match(r"\| `(--[a-z-]+)", line))}


def test_every_worker_flag_is_in_the_reference_with_its_variable() -> None:
    rows = reference_rows()
    flags: set[str] = set()
    for action in build_parser()._actions:
        for flag in action.option_strings:
            if not flag.startswith("--") or flag == "--help":
                continue
            flags.add(flag)
            assert flag in rows, f"{PAGE}'s table lacks {flag}"
            variable = re.search(r"\[(LEADERPOOL_[A-Z_]+)", action.help or "")
            if variable:
                assert f"`{variable.group(1)}`" in rows[flag], f"{PAGE}'s row for {flag} lacks {variable.group(1)}"
    assert set() == set(rows) - flags, f"{PAGE}'s table names flags the worker does not have"
