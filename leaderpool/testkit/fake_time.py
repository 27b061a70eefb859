"""fakeredis on the kit's clock: its expiry, its TIME (in Lua too) and its stream ids.

fakeredis reads the time with ``time.time()`` in four modules (the command loop, which stamps
every database with "now" before each command and so decides what has expired; the TIME command;
the helper that dates hash fields and stream entries; the streams' ids). The kit swaps the ``time`` those
modules see for one whose ``time()`` is the kit's wall clock, and puts the real one back after.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

FAKEREDIS_TIME_READERS = (
    "fakeredis._socket._base",
    "fakeredis.commands_mixins.server_mixin",
    "fakeredis._helpers",
    "fakeredis.model._stream",
)


class _MovedTime:
    """The ``time`` module, but for ``time()``: the kit's wall clock."""

    def __init__(self, wall: Callable[[], float]) -> None:
        self.time = wall

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextmanager
def fakeredis_on(wall: Callable[[], float]) -> Iterator[None]:
    """While the block runs, every fakeredis server of the process reads ``wall()`` as unix time."""
    modules: list[ModuleType] = [importlib.import_module(name) for name in FAKEREDIS_TIME_READERS]
    saved = [m.time for m in modules]
    moved = _MovedTime(wall)
    for module in modules:
        module.time = moved  # type: ignore[attr-defined]  # the point of this module
    try:
        yield
    finally:
        for module, original in zip(modules, saved, strict=True):
            module.time = original  # type: ignore[attr-defined]
