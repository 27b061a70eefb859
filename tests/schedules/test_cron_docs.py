"""The cron examples the docs, docstrings and help give do what they say: every expression said
to be "every 10 seconds" (or "every 10 s") fires every 10 s, computed from its next slots."""

from __future__ import annotations

import itertools
import re

import pytest

from leaderpool.schedules.schedule import Schedule
from leaderpool.worker.settings import build_parser
from tests.support.worker_procs import ROOT

SAID_EVERY_10_S = re.compile(r'"([^"\n]+)"`*\s+is\s+every\s+10\s+s(?:econds)?\b')
SAID_EVERY_SECOND_OF_10TH_MINUTE = re.compile(r'"([^"\n]+)"`*\s+(?:would be\s+)?every second of every tenth\s+minute')
START_MS = 1_764_547_200_000  # 2025-12-01 00:00:00 UTC: a tenth minute, to show the wrong example's burst


def sources() -> dict[str, str]:
    """Every place a cron example could be given: the docs, the README, the code (docstrings,
    help strings) and the worker's rendered --help."""
    paths = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "leaderpool").rglob("*.py")]
    texts = {str(p.relative_to(ROOT)): p.read_text() for p in paths}
    texts["leaderpool-worker --help"] = "\n".join(a.help or "" for a in build_parser()._actions)
    return texts


def slots(expression: str, count: int) -> list[int]:
    schedule, found, t = Schedule("docs", cron=expression), [], START_MS
    for _ in range(count):
        t = schedule.after(t)
        found.append(t)
    return found


def examples(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    return [(where, m) for where, text in sources().items() for m in pattern.findall(text)]


def test_the_docs_give_the_seconds_example() -> None:
    """The periodic guide, the worker reference and its --help each give one."""
    found = {where for where, _ in examples(SAID_EVERY_10_S)}
    assert {"docs/guide/periodic.md", "docs/reference/worker.md", "leaderpool-worker --help"} <= found


@pytest.mark.parametrize(("where", "expression"), examples(SAID_EVERY_10_S))
def test_every_10_seconds_example_fires_every_10_seconds(where: str, expression: str) -> None:
    times = slots(expression, 20)
    gaps = {b - a for a, b in itertools.pairwise([START_MS, *times])}
    assert {10_000} == gaps, f"{where}: {expression!r} is not every 10 s"


@pytest.mark.parametrize(("where", "expression"), examples(SAID_EVERY_SECOND_OF_10TH_MINUTE))
def test_the_wrong_way_round_example_is_what_it_is_said_to_be(where: str, expression: str) -> None:
    """``*/10 * * * * *`` (seconds first, as some crons write it): every second of minutes 0, 10, ..."""
    times = slots(expression, 60)
    assert [START_MS + 1_000 * k for k in range(1, 60)] == times[:59], where
    assert START_MS + 10 * 60_000 == times[59], where  # then nothing until minute 10


def test_the_parser_would_catch_a_wrong_example() -> None:
    """The check can fail: seconds first is not every 10 s."""
    times = slots("*/10 * * * * *", 3)
    assert {1_000} == {b - a for a, b in itertools.pairwise(times)}
