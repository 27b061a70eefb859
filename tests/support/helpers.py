"""Small helpers shared by the tests: bounded waiting and event recording."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from leaderpool import AsyncElection, MemberConfig

T = TypeVar("T")


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> None:
    """Wait until ``predicate()`` holds; fail after ``timeout`` (generous: CI is a shared 2-core box)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def eventually_read(read: Callable[[], Awaitable[T]], timeout: float = 10.0, interval: float = 0.01) -> T:
    """The first truthy result of ``await read()`` (a Redis read, say); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (found := await read()):
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing read within {timeout}s")
        await asyncio.sleep(interval)
    return found


@dataclass
class Recorder:
    """Collects (monotonic time, member, kind, value) for every callback of some elections."""

    events: list[tuple[float, str, str, Any]] = field(default_factory=list)

    def election(self, pool: str, member: str, redis: Any, **config: Any) -> AsyncElection:
        return AsyncElection(
            MemberConfig(pool=pool, member_id=member, **config),
            redis,
            on_elected=lambda term: self.events.append((time.monotonic(), member, "elected", term)),
            on_revoked=lambda reason: self.events.append((time.monotonic(), member, "revoked", reason.value)),
            on_leader_changed=lambda leader: self.events.append(
                (time.monotonic(), member, "leader", leader.member if leader else None)
            ),
        )

    def elections(self, pool: str, names: str, redis: Any, **config: Any) -> list[AsyncElection]:
        """One election per single-letter name; ``redis`` is a URL/client or a factory of them."""
        return [self.election(pool, name, redis() if callable(redis) else redis, **config) for name in names]

    def of(self, member: str, kind: str | None = None) -> list[Any]:
        return [v for _, m, k, v in self.events if m == member and (kind is None or k == kind)]


def leaders(elections: list[AsyncElection]) -> list[str]:
    return [e.member_id for e in elections if e.is_leader]


async def start_all(elections: list[AsyncElection], gap: float = 0.01, timeout: float = 10.0) -> None:
    """Start in order, each once the one before is a live member of the pool and ``gap`` more
    seconds have passed (Redis stamps joins in milliseconds), so join times, and with them the
    default ranking (longest running first), follow the order. ``start()`` returns before the
    member has joined: a bare 10 ms gap let the second join first on a loaded machine, and a
    test expecting the first to lead then waited in vain."""
    for e in elections:
        await e.start()
        deadline = time.monotonic() + timeout
        while e.member_id not in {m.member for m in await e.members()}:
            if time.monotonic() > deadline:
                raise AssertionError(f"{e.member_id} did not join pool {e.pool} within {timeout}s")
            await asyncio.sleep(0.005)
        await asyncio.sleep(gap)


async def stop_all(elections: list[AsyncElection]) -> None:
    for e in elections:
        await e.stop()


def config(pool: str, member: str, **kw: Any) -> MemberConfig:
    return MemberConfig(pool=pool, member_id=member, **kw)
