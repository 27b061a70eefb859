"""One implementation, two faces: the lifecycle an asyncio face and its blocking twin share.

An asyncio face (:class:`~leaderpool.aio.AsyncElection`, :class:`~leaderpool.pool_client.AsyncPoolClient`)
is an :class:`AsyncLifecycle`: it says how to ``start`` and ``stop``, and ``async with`` is
written here once. Its blocking twin (:class:`~leaderpool.blocking.Election`,
:class:`~leaderpool.pool_client.PoolClient`) is a :class:`BlockingTwin` around it: the asyncio
object lives on the process's :class:`~leaderpool.util.background_loop.BackgroundLoop`, and each
blocking method is *derived* from the asyncio one rather than written again::

    class PoolClient(BlockingTwin[AsyncPoolClient]):
        submit = on_background_loop(AsyncPoolClient.submit)

``PoolClient.submit`` then takes the arguments ``AsyncPoolClient.submit`` takes (mypy checks
them), returns what it returns, carries its docstring, and runs it on the loop, waiting for it.
A method whose blocking version differs on purpose is written by hand, with a comment saying why.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar

from leaderpool.util.background_loop import BackgroundLoop

__all__ = ["AsyncLifecycle", "BlockingTwin", "on_background_loop"]

P = ParamSpec("P")
T = TypeVar("T")
A = TypeVar("A")
A_co = TypeVar("A_co", covariant=True)
SelfA = TypeVar("SelfA", bound="AsyncStartable")
SelfB = TypeVar("SelfB", bound="Startable")


class AsyncStartable(Protocol):
    """What ``async with`` needs of an asyncio face."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class AsyncLifecycle:
    """An asyncio face: it says how to ``start`` and ``stop``; ``async with`` starts it, then
    stops it at the end."""

    async def __aenter__(self: SelfA) -> SelfA:
        await self.start()
        return self

    async def __aexit__(
        self: AsyncStartable, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


class Startable(Protocol):
    """What ``with`` needs of a blocking face."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class BlockingTwin(Generic[A_co]):
    """The blocking face of an asyncio face (``_inner``), which lives on the background loop.
    Its ``start`` and ``stop`` (derived with :func:`on_background_loop`, or written by hand when
    they differ) make ``with`` work: it starts, then stops at the end."""

    _inner: A_co

    def __enter__(self: SelfB) -> SelfB:
        self.start()
        return self

    def __exit__(
        self: Startable, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def on_background_loop(
    method: Callable[Concatenate[A, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[BlockingTwin[A], P], T]:
    """The blocking twin of the asyncio face's ``method``: the same parameters, result and
    docstring; it runs ``method`` on the inner object, on the background loop, and waits."""

    @functools.wraps(method)
    def blocking(self: BlockingTwin[A], /, *args: P.args, **kwargs: P.kwargs) -> T:
        return BackgroundLoop.run(method(self._inner, *args, **kwargs))

    return blocking
