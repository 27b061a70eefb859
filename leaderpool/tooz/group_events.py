"""The tooz driver's group events, heard in the background: each watched group's events channel
(:attr:`~leaderpool.tooz.groups.GroupKeys.events`: ``joined``, ``left``, ``evicted`` pool
messages) on the process's shared pub/sub :class:`~leaderpool.backend.watcher.Watcher`, on the blocking
faces' event loop (:class:`~leaderpool.util.background_loop.BackgroundLoop`: so the tooz driver's
groups and elections share one connection).

Messages are queued until ``run_watchers`` drains them, which costs no Redis command. Pub/sub
is fire-and-forget: a group whose subscription dropped (``disconnected``, then ``resync``) is
marked, and ``run_watchers`` reads it once to learn what it missed.
"""

from __future__ import annotations

import collections
import threading

from leaderpool.backend.clients import AsyncClient, async_client
from leaderpool.backend.listener import Listener, NotificationSource
from leaderpool.backend.protocol import PoolMessage
from leaderpool.backend.shared_watcher import shared_watcher
from leaderpool.backend.watcher import Watcher
from leaderpool.util.background_loop import BackgroundLoop  # the blocking faces' loop: one shared watcher
from leaderpool.util.timeouts import within

__all__ = ["GroupEvents"]

_QUEUE_MAX = 100_000
"""Bound on undrained messages (an application that watches and never runs its watchers): past
it the oldest are dropped and the group is marked for a read instead."""


class GroupEvents:
    """Membership messages of the groups a coordinator watches, queued for ``run_watchers``."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._client: AsyncClient | None = None
        self._watcher: Watcher | None = None
        self._listeners: dict[str, tuple[str, Listener]] = {}
        self._queue: collections.deque[tuple[str, PoolMessage]] = collections.deque()
        self._missed: set[str] = set()
        self._lock = threading.Lock()

    def watch(self, group: str, channel: str, timeout: float) -> None:
        """Start queueing ``group``'s messages; returns once subscribed (or after ``timeout``:
        the group is then marked for a read, as after a reconnect)."""
        if group in self._listeners:
            return
        listener = self._listener(group)
        self._listeners[group] = (channel, listener)
        if not BackgroundLoop.run(self._watch(channel, listener, timeout)):
            self._mark(group)

    def unwatch(self, group: str) -> None:
        entry = self._listeners.pop(group, None)
        if entry is not None and self._watcher is not None:
            BackgroundLoop.run(self._watcher.unwatch_channels((entry[0],), entry[1]))
        with self._lock:
            self._missed.discard(group)

    def drain(self) -> list[tuple[str, PoolMessage]]:
        """The messages heard since the last call, oldest first."""
        out = []
        while self._queue:
            out.append(self._queue.popleft())
        return out

    def missed(self) -> set[str]:
        """Groups whose messages may have been lost since the last call (read them)."""
        with self._lock:
            missed, self._missed = self._missed, set()
        return missed

    def mark(self, groups: set[str]) -> None:
        """Have :meth:`missed` return ``groups`` again (their read failed)."""
        with self._lock:
            self._missed |= groups

    def close(self) -> None:
        for group in list(self._listeners):
            self.unwatch(group)
        client, self._client, self._watcher = self._client, None, None
        if client is not None:
            BackgroundLoop.run(client.aclose())

    # ---- on the loop thread ----

    async def _watch(self, channel: str, listener: Listener, timeout: float) -> bool:
        if self._client is None:
            self._client = async_client(self._url)
        watcher = self._watcher = shared_watcher(self._client)
        try:
            await within(watcher.watch_channels((channel,), listener, timeout), timeout + 1)
        except TimeoutError:
            return False
        # watch_channels returns after its timeout even when not subscribed yet
        return watcher.client_id is not None

    def _listener(self, group: str) -> Listener:
        def heard(source: NotificationSource, payload: str) -> None:
            message = PoolMessage.parse(payload) if source is NotificationSource.EVENTS else None
            if message is None:  # disconnected, resync, or a message of a newer version
                self._mark(group)
            elif len(self._queue) >= _QUEUE_MAX:
                dropped = {g for g, _ in self._queue} | {group}
                self._queue.clear()
                with self._lock:
                    self._missed |= dropped
            else:
                self._queue.append((group, message))

        return heard

    def _mark(self, group: str) -> None:
        with self._lock:
            self._missed.add(group)
