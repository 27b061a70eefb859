"""How the tooz driver speaks tooz: ids as text and back, Redis failures as tooz's errors, and
results as tooz's :class:`~tooz.coordination.CoordinatorResult`.

tooz names groups and members with bytes, leaderpool with text (:func:`text`, :func:`as_bytes`);
tooz's callers expect its connection error for a Redis that is away, and its ``.get()`` to raise
what the call raised (:func:`translated`, :func:`result`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any, TypeVar

import redis
import tooz
from tooz import coordination

from leaderpool.errors import LeaderpoolError, RedisUnavailable

__all__ = ["as_bytes", "result", "text", "translated"]

T = TypeVar("T")


def text(value: bytes | str) -> str:
    """A tooz id (bytes, or already text) as leaderpool's text."""
    return value.decode() if isinstance(value, bytes) else value


def as_bytes(value: str) -> bytes:
    """A leaderpool name as a tooz id."""
    return value.encode()


@contextmanager
def translated() -> Iterator[None]:
    """Redis failures as tooz's connection error, which callers of tooz expect."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, RedisUnavailable) as exc:
        raise coordination.ToozConnectionError(str(exc)) from exc
    except (redis.exceptions.RedisError, LeaderpoolError) as exc:
        if isinstance(exc, tooz.ToozError):
            raise
        raise tooz.ToozError(str(exc)) from exc


def result(fn: Callable[..., T], *args: Any) -> coordination.CoordinatorResult[T]:
    """Run ``fn`` now; its result or error comes out of ``.get()``, as tooz's contract wants."""
    fut: futures.Future[T] = futures.Future()
    try:
        with translated():
            fut.set_result(fn(*args))
    except Exception as exc:
        fut.set_exception(exc)
    return coordination.CoordinatorResult(fut)
