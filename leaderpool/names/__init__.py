"""Unique names across every pool under a prefix, as Erlang's ``:global.register_name``.

- :mod:`.registry`: the wire format and the Redis calls (:class:`NameStore`, :class:`NameOwner`,
  :class:`Registration`, :class:`RegisterStatus`); no asyncio import, the CLI reads it too.
- :mod:`.name_scripts`: its Lua (:class:`NameScripts`), on the one script registry.
- :mod:`.name_cache`: a member's held names, riding on its heartbeat (:class:`HeldNames`), and
  the local mirror of everyone's (:class:`NameCache`).
- :mod:`.member_names`: a member's names for both faces (:class:`MemberNames`).

The faces offer them as ``register_name``, ``whereis_name``, ...; the worker as ``--name``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leaderpool.util.exports import lazy_exports

if TYPE_CHECKING:
    from leaderpool.names.member_names import MemberNames
    from leaderpool.names.name_cache import HeldNames, NameCache
    from leaderpool.names.name_scripts import NameScripts
    from leaderpool.names.registry import NameOwner, NameStore, RegisterStatus, Registration

__all__ = [
    "HeldNames",
    "MemberNames",
    "NameCache",
    "NameOwner",
    "NameScripts",
    "NameStore",
    "RegisterStatus",
    "Registration",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "HeldNames": "name_cache",
        "MemberNames": "member_names",
        "NameCache": "name_cache",
        "NameOwner": "registry",
        "NameScripts": "name_scripts",
        "NameStore": "registry",
        "RegisterStatus": "registry",
        "Registration": "registry",
    },
)
