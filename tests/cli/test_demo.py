"""One full ``leaderpool-cli demo`` run: its own embedded redis-server, real worker processes,
every experiment as expected, and nothing left running afterwards."""

from __future__ import annotations

import os
import re

import pytest

from tests.support.worker_procs import cli


@pytest.mark.slow
def test_the_demo_plays_every_experiment_and_cleans_up() -> None:
    done = cli("demo", "--ttl", "1", timeout=120)
    assert 0 == done.returncode, done.stdout + done.stderr
    out = done.stdout
    for step in ("1. Three workers", "2. Hard kill of the leader", "3. Restart of a", "4. Hard kill of a non-leader",
                 "5. Kind shutdown of the leader", "6. Takeover by a higher-priority member", "7. tracked_work",
                 "Summary"):  # fmt: skip
        assert step in out
    assert "UNEXPECTED" not in out and "All experiments went as expected." in out
    assert "stopped all 7 worker processes started and the embedded redis-server" in out  # a, b, c, 3 restarts, d
    assert "300/300 ran" in out  # tracked_work: every job ran although its leader d was SIGKILLed
    pids = [int(p) for p in re.findall(r"^\s+\*?\s+[abcd]\s+node-[abcd]\s+\S+\s+(\d+)", out, re.MULTILINE)]
    assert 3 == len(pids)  # d was SIGKILLed by tracked_work
    for pid in pids:  # the final status listed the last three workers: all gone now
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
