"""Names a package offers, imported on first use (PEP 562).

A package's ``__init__`` names its public classes without importing its modules, so that
importing one small module of a package (the CLI's fast paths read keys and the wire format
only) does not load redis-py's asyncio client and the election core with it::

    __all__ = ["Lock", "trans"]
    __getattr__, __dir__ = lazy_exports(__name__, {"Lock": "blocking_lock", "trans": "blocking_lock"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, where: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: each name of ``where`` is read from
    its module (relative to ``package``, or absolute when it starts with ``leaderpool.``) the
    first time it is asked for, then kept as a plain attribute."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        path = module if module.startswith("leaderpool.") else f"{package}.{module}"
        value = getattr(importlib.import_module(path), name)
        setattr(sys.modules[package], name, value)  # the next lookup is a plain attribute read
        return value

    def __dir__() -> list[str]:
        return sorted(where)

    return __getattr__, __dir__
