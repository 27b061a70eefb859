"""The blocking faces are twins of the asyncio ones (:mod:`leaderpool.util.lifecycle`): the same
methods with the same parameters, the derived ones with the asyncio docstring, run on the process's
one background loop (:mod:`leaderpool.util.background_loop`)."""

from __future__ import annotations

import asyncio
import inspect
import signal
import threading
from collections.abc import Callable
from typing import Any

import pytest

from leaderpool import AsyncElection, AsyncPoolClient, Election, PoolClient
from leaderpool.util.background_loop import BackgroundLoop
from leaderpool.util.threads import PROCESS_SIGNALS

DIFFERENT_ON_PURPOSE = {
    AsyncElection: {
        "read_state_for": "the state hook's read, run by the election itself",
        "start": "the blocking start takes a timeout and starts the callbacks' thread",
        "stop": "the blocking stop takes a timeout, and only asks for the stop from a callback",
    },
    AsyncPoolClient: {},
}


def coroutine_methods(cls: type) -> dict[str, Callable[..., Any]]:
    return {
        name: fn
        for name, fn in inspect.getmembers(cls, inspect.iscoroutinefunction)
        if not name.startswith("_") and name not in DIFFERENT_ON_PURPOSE[cls]
    }


def parameters(fn: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize(("asyncio_face", "blocking_face"), [(AsyncElection, Election), (AsyncPoolClient, PoolClient)])
class TestTwins:
    def test_every_asyncio_method_has_a_blocking_twin_with_the_same_parameters(
        self, asyncio_face: type, blocking_face: type
    ) -> None:
        """Each public coroutine method of the asyncio face is a method of the blocking face, with
        the same parameters and defaults (a few differ on purpose: DIFFERENT_ON_PURPOSE says why)."""
        methods = coroutine_methods(asyncio_face)
        assert methods
        for name, fn in methods.items():
            assert parameters(fn) == parameters(getattr(blocking_face, name)), name

    def test_a_derived_twin_carries_the_asyncio_docstring_and_signature(
        self, asyncio_face: type, blocking_face: type
    ) -> None:
        """A method derived with on_background_loop reads as the asyncio one does: its docstring,
        its parameters, and its result type (the coroutine's)."""
        derived = {
            name: getattr(blocking_face, name)
            for name in coroutine_methods(asyncio_face)
            if hasattr(getattr(blocking_face, name), "__wrapped__")
        }
        assert {"submit", "call", "multicall"} <= set(derived)
        if blocking_face is PoolClient:
            assert {"start", "stop", "submit_many"} <= set(derived)
        for name, twin in derived.items():
            original = getattr(asyncio_face, name)
            assert original.__doc__ == twin.__doc__, name
            assert inspect.signature(original) == inspect.signature(twin), name
            assert not inspect.iscoroutinefunction(twin), name


class TestBackgroundLoop:
    def test_the_loop_runs_on_its_own_thread_which_leaves_the_signals_to_the_main_thread(self) -> None:
        """run() waits for a coroutine run on the loop thread, named leaderpool-loop, on which the
        process's signals are blocked; call_soon() runs a function there without waiting."""

        async def where() -> tuple[str, set[int]]:
            return threading.current_thread().name, set(signal.pthread_sigmask(signal.SIG_BLOCK, []))

        name, blocked = BackgroundLoop.run(where(), timeout=10)
        assert "leaderpool-loop" == name
        assert {int(s) for s in PROCESS_SIGNALS} <= blocked
        called = threading.Event()
        BackgroundLoop.call_soon(called.set)
        assert called.wait(10)
        assert BackgroundLoop.loop() is BackgroundLoop.loop()

    def test_a_closed_loop_is_replaced_by_a_new_one(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A loop closed under the process (a test that tore it down) is not reused: the next
        use starts a new loop and thread."""
        closed = asyncio.new_event_loop()
        closed.close()
        monkeypatch.setattr(BackgroundLoop, "_loop", closed)
        fresh = BackgroundLoop.loop()

        async def thread() -> threading.Thread:
            return threading.current_thread()

        try:
            assert fresh is not closed
            assert 42 == BackgroundLoop.run(asyncio.sleep(0, result=42), timeout=10)
        finally:
            fresh_thread = BackgroundLoop.run(thread(), timeout=10)
            fresh.call_soon_threadsafe(fresh.stop)
            fresh_thread.join(10)
            fresh.close()
