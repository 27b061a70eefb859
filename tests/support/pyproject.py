"""pyproject.toml, read as the build reads it (tomllib is 3.11+; tomli is the same parser)."""

from __future__ import annotations

import sys
from typing import Any

from tests.support.worker_procs import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def project() -> dict[str, Any]:
    """pyproject.toml's [project] table."""
    found: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return found
