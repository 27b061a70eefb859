"""Where a benchmark's result goes: one JSON file per run under ``benchmarks/results`` (or
``--out``), named after the section and the time; shared by the sections that also run alone
(``python -m benchmarks.startup``, ``.dashboard``, ``.schedule_drift``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from leaderpool.testing.redis_server import RedisServer

RESULTS = Path(__file__).resolve().parent / "results"


def fill_defaults(args: argparse.Namespace, defaults: Iterable[tuple[str, Any, Any]]) -> None:
    """Each ``(option, full run's value, --quick run's value)`` left unset on the command line."""
    for name, full, quick in defaults:
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)


def run_alone(
    section: str,
    measure: Callable[[str], dict[str, Any]],
    table: Callable[[dict[str, Any]], str],
    *,
    out: Path | None,
    name: str | None,
    quick: bool,
) -> int:
    """Measure on a fresh redis-server, write ``SECTION-TIMESTAMP.json`` (``quick-`` first for a
    smoke run, or ``name``), print the table; the exit code."""
    with RedisServer() as server:
        result = measure(server.url)
        result["redis"] = {"version": server.version, "binary": server.binary}
    result["started"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    path = write_result(result, section, out, name=name, quick=quick)
    print(table(result))
    print(f"written to {path}", file=sys.stderr)
    return 0


def write_result(
    result: dict[str, Any], section: str, out: Path | None, *, name: str | None = None, quick: bool = False
) -> Path:
    """Write ``SECTION-TIMESTAMP.json`` (``quick-`` first for a smoke run, or ``name``) to ``out``
    (``benchmarks/results``); its path."""
    out_dir = out or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = name or ("quick-" if quick else "") + f"{section}-" + time.strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"{stem}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path
