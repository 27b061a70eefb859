"""Contained process trees: a command and everything it starts, stopped as one, and killed as
one within milliseconds when the process that started it dies (SIGKILL, the OOM killer).

- :mod:`.supervisor`: the small process between the parent and the command (a child subreaper,
  a cgroup v2 where one can be made, a lifeline whose end of file means "kill the tree now").
- :mod:`.launch`: starting one from blocking code (:func:`start_tree`) or asyncio
  (:func:`astart_tree`), and stopping, signalling, killing and waiting for it.
- :mod:`.environment`: the command's environment without the credentials it was not given.

Used by the worker's ``--exec`` and by ``leaderpool-cli lock -- COMMAND``; see
docs/guide/exec.md ("Contained process trees").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leaderpool.util.exports import lazy_exports

if TYPE_CHECKING:
    from leaderpool.proctree.environment import command_environment
    from leaderpool.proctree.launch import AsyncProcessTree, ProcessTree, Started, TreeSpec, astart_tree, start_tree

__all__ = [
    "AsyncProcessTree",
    "ProcessTree",
    "Started",
    "TreeSpec",
    "astart_tree",
    "command_environment",
    "start_tree",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AsyncProcessTree": "launch",
        "ProcessTree": "launch",
        "Started": "launch",
        "TreeSpec": "launch",
        "astart_tree": "launch",
        "command_environment": "environment",
        "start_tree": "launch",
    },
)
