"""Catching the signals that ask a process to stop, for as long as a kind stop takes.

``kill``, ``docker stop``, Kubernetes and systemd send SIGTERM, and Python's default for it is
to die: for a pool, a crash. The faces' ``run_until_signal`` catch SIGTERM and SIGINT instead,
run until one arrives, and keep them caught until the hand-over is done (a second Ctrl-C must not
cut it short); then the previous handlers come back. :func:`loop_signals` is for asyncio (the
running loop's handlers), :func:`caught_signals` for threaded code (the main thread's).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from types import FrameType

STOP_SIGNALS: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)
"""What ``run_until_signal`` stops on by default: ``kill``, ``docker stop``, systemd; Ctrl-C."""


class Caught:
    """The first stop signal caught (threaded code): ``wait`` for it, read ``signum``."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._event = threading.Event()

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """True once a signal was caught (a signal ends the wait at once)."""
        return self._event.wait(timeout)


@contextlib.contextmanager
def caught_signals(signals: Sequence[int] = STOP_SIGNALS) -> Iterator[Caught]:
    """Catch ``signals`` in the main thread for the block; the previous handlers afterwards."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("signals can be caught only in the main thread")
    caught = Caught()
    previous = {signum: signal.signal(signum, caught.handle) for signum in signals}
    try:
        yield caught
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.asynccontextmanager
async def loop_signals(signals: Sequence[int] = STOP_SIGNALS) -> AsyncIterator[asyncio.Future[int]]:
    """Catch ``signals`` on the running loop for the block; yields a future of the first one's
    number (cancelled at the end if none came)."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[int] = loop.create_future()

    def on_signal(signum: int) -> None:
        if not received.done():
            received.set_result(signum)

    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        yield received
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        if not received.done():
            received.cancel()


def signal_of(received: asyncio.Future[int]) -> int | None:
    """The signal a :func:`loop_signals` block caught, None if none."""
    return None if received.cancelled() or not received.done() else received.result()
