"""The library's logging: silent until the application configures it, then through ``logging``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import MutableMapping

import pytest

from leaderpool.util.log import get_logger

ELECT_ONCE = textwrap.dedent(
    """
    import asyncio, fakeredis{extra_import}
    from leaderpool import AsyncElection, MemberConfig
    {setup}
    async def main():
        config = MemberConfig(pool="p", member_id="a", ttl_s=0.3)
        async with AsyncElection(config, fakeredis.FakeAsyncRedis()) as election:
            await election.wait_until_leader(10)
    asyncio.run(main())
    """
)


def run_election(setup: str = "", extra_import: str = "") -> subprocess.CompletedProcess[str]:
    code = ELECT_ONCE.format(setup=setup, extra_import=extra_import)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


class TestLibraryLogging:
    def test_an_application_that_configures_nothing_sees_nothing(self) -> None:
        """No configuration: not a line on stdout or stderr, debug events included."""
        done = run_election()
        assert (0, "", "") == (done.returncode, done.stdout, done.stderr)

    def test_plain_logging_gets_the_events_with_its_own_handlers_and_levels(self) -> None:
        """logging.basicConfig() is enough: events arrive as stdlib records, with their fields."""
        done = run_election(setup="logging.basicConfig(level=logging.INFO)", extra_import=", logging")
        assert 0 == done.returncode
        assert "" == done.stdout
        assert "INFO:leaderpool:elected pool='p' member='a' term=1" in done.stderr
        assert "DEBUG" not in done.stderr

    def test_records_carry_the_event_dict(self, caplog: pytest.LogCaptureFixture) -> None:
        """A handler can read the structured fields, not only the message."""
        caplog.set_level("INFO", logger="leaderpool")
        get_logger("leaderpool", pool="p", member="a").info("elected", term=4)
        record = caplog.records[-1]
        assert {"event": "elected", "pool": "p", "member": "a", "term": 4} == record.__dict__["leaderpool_event"]
        assert "leaderpool" == record.name


class TestStructlogApplications:
    def test_a_logger_follows_the_structlog_configuration_in_force_when_it_logs(self) -> None:
        """Bound once per configuration for speed, yet a new configuration is honoured at once."""
        import structlog

        first: list[str] = []
        second: list[str] = []

        def into(seen: list[str]) -> structlog.typing.Processor:
            def keep(logger: object, method: str, event: MutableMapping[str, object]) -> str:
                seen.append(f"{event['event']} {event['pool']} {event.get('term')}")
                raise structlog.DropEvent

            return keep

        log = get_logger("leaderpool", pool="p")
        try:
            structlog.configure(processors=[into(first)])
            log.info("joined")
            log.bind(term=2).info("elected")
            structlog.configure(processors=[into(second)])
            log.info("left")
        finally:
            structlog.reset_defaults()
        assert (["joined p None", "elected p 2"], ["left p None"]) == (first, second)
