"""The one version: the installed package's metadata (pyproject.toml's ``version``)."""

from __future__ import annotations

from importlib import metadata

__all__ = ["__version__", "version"]

UNKNOWN = "0+unknown"
"""For a source tree that was never installed (no metadata to read)."""


def version() -> str:
    try:
        return metadata.version("leaderpool")
    except metadata.PackageNotFoundError:
        return UNKNOWN


__version__ = version()
