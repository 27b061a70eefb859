"""The store's coroutines on a blocking redis-py client, with no event loop.

A shell command that reads or changes a pool once (``status``, ``history``, ``resign``,
``evict``, ``forget``, ``doctor``), or a worker's start-up check of its pool
(:mod:`.preflight`), need not pay for an event loop. :class:`Blocking` gives a
blocking client the awaitable face that :class:`~leaderpool.backend.pool_store.PoolStore` and the doctor's
checks expect: every call runs at once and returns an already finished coroutine, so
:func:`run` drives a whole coroutine to its end with one ``send``. The Lua scripts and the
parsing of their replies stay in one place, the core's store.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class Blocking:
    """A blocking redis-py client whose methods are awaitable (they have already run)."""

    def __init__(self, client: Any) -> None:
        self.sync = client

    def __getattr__(self, name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        method = getattr(self.sync, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call

    def register_script(self, source: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        script = self.sync.register_script(source)

        async def call(keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
            return script(keys=list(keys), args=list(args))

        return call


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Drive ``coroutine``, which only awaits :class:`Blocking` calls, to its result."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]  # StopIteration.value is Any
    coroutine.close()
    raise RuntimeError("a one-shot command waited on something that needs an event loop")
