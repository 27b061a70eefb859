"""leaderpool's pytest plugin (entry point ``pytest11: leaderpool``): test an application's
leader logic in milliseconds, on a pool of in-process members, a clock the test moves, and
fault calls. See docs/guide/testing.md.

Fixtures: ``leaderpool_redis`` (fakeredis with Lua, or a real redis-server on a free port with
``--leaderpool-redis=real`` or ``LEADERPOOL_TEST_REDIS=real``; ``indirect`` parametrisation picks
it per test), ``leaderpool_clock`` (the kit's clock) and ``leaderpool_pool`` (a factory of pools).

This module is imported by every pytest run of a process that has leaderpool installed: it
imports nothing of leaderpool's (nor fakeredis) until a test asks for a fixture.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from leaderpool.testkit.kit_clock import KitClock
    from leaderpool.testkit.kit_pool import KitPool
    from leaderpool.testkit.kit_redis import KitRedis

OPTION = "--leaderpool-redis"
ENV_VAR = "LEADERPOOL_TEST_REDIS"
KINDS = ("fake", "real")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("leaderpool", "leaderpool's test kit")
    group.addoption(
        OPTION,
        choices=KINDS,
        default=None,
        help=f"the Redis of the leaderpool_* fixtures: fake (fakeredis, the default) or real "
        f"(a redis-server on a free port); also ${ENV_VAR}",
    )


def pytest_configure(config: pytest.Config) -> None:
    redis_kind(config)  # a bad $LEADERPOOL_TEST_REDIS is one line before any test runs


def redis_kind(config: pytest.Config) -> str:
    """The Redis the fixtures use: the option, then the variable, then fakeredis."""
    kind = config.getoption(OPTION) or os.environ.get(ENV_VAR) or "fake"
    if kind not in KINDS:
        raise pytest.UsageError(f"${ENV_VAR} must be one of {', '.join(KINDS)}, got {kind!r}")
    return str(kind)


@pytest.fixture
def leaderpool_redis(request: pytest.FixtureRequest) -> Iterator[KitRedis]:
    """The test's Redis: fakeredis by default, a real redis-server with ``--leaderpool-redis=real``
    (or ``@pytest.mark.parametrize("leaderpool_redis", ["fake", "real"], indirect=True)``)."""
    from leaderpool.testkit.kit_redis import KitRedis

    kind = getattr(request, "param", None) or redis_kind(request.config)
    redis = KitRedis(kind)
    try:
        yield redis
    finally:
        redis.close()


@pytest.fixture
def leaderpool_clock(leaderpool_redis: KitRedis) -> Iterator[KitClock]:
    """The clock every member of the test's pools reads: virtual on fakeredis (fakeredis's own
    expiry and TIME follow it), the real one against a real server."""
    from leaderpool.testkit.fake_time import fakeredis_on
    from leaderpool.testkit.kit_clock import KitClock

    clock = KitClock(virtual=leaderpool_redis.kind == "fake")
    if not clock.virtual:
        yield clock
        return
    with fakeredis_on(clock.wall):
        yield clock


@pytest.fixture
def leaderpool_pool(leaderpool_redis: KitRedis, leaderpool_clock: KitClock) -> Iterator[Callable[..., KitPool]]:
    """``leaderpool_pool("scheduler", members=3, on_elected=..., on_revoked=..., config={...})``:
    a pool of in-process members (see :class:`leaderpool.testkit.kit_pool.KitPool`); every pool is
    stopped when the test ends."""
    from leaderpool.testkit.kit_pool import KitPool

    pools: list[KitPool] = []

    def make(name: str = "pool", members: int = 0, **kwargs: Any) -> KitPool:
        pool = KitPool(name, leaderpool_redis, leaderpool_clock, **kwargs)
        pools.append(pool)
        for _ in range(members):
            pool.join()
        return pool

    try:
        yield make
    finally:
        for pool in pools:
            pool.close()
