"""Many singletons spread over a pool, each on exactly one live member at a time (Horde's
distributed supervisor, Swarm's hand-off).

- :mod:`.placement`: where each runs, pure (:class:`Balanced`, :class:`HashRing`, the :class:`Strategy` protocol).
- :mod:`.owner`: one member's side (claim, confirm once per beat, hand over, stop at its deadline).
- :mod:`.placer`: the leader's side (survey, place, write fenced by its lead).
- :mod:`.faces`: :class:`AsyncSingletons` and its blocking twin :class:`Singletons`.
- :mod:`.singleton_scripts`: the Lua; :mod:`.singleton_store`: the typed calls and the wire format
  (no asyncio: the CLI reads it), with :class:`SingletonInfo` for listings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leaderpool.util.exports import lazy_exports

if TYPE_CHECKING:
    from leaderpool.singletons.faces import AsyncSingletons, Singletons
    from leaderpool.singletons.placement import Balanced, HashRing, Member, Strategy
    from leaderpool.singletons.singleton_store import (
        SavedState,
        SingletonInfo,
        SingletonStore,
        list_singletons,
        move_singleton,
    )

__all__ = [
    "AsyncSingletons",
    "Balanced",
    "HashRing",
    "Member",
    "SavedState",
    "SingletonInfo",
    "SingletonStore",
    "Singletons",
    "Strategy",
    "list_singletons",
    "move_singleton",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AsyncSingletons": "faces",
        "Balanced": "placement",
        "HashRing": "placement",
        "Member": "placement",
        "SavedState": "singleton_store",
        "SingletonInfo": "singleton_store",
        "SingletonStore": "singleton_store",
        "Singletons": "faces",
        "Strategy": "placement",
        "list_singletons": "singleton_store",
        "move_singleton": "singleton_store",
    },
)
