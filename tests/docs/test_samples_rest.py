"""Every sample of README.md and of the pages outside docs/guide/, run (see tests/docs/samples.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.samples import Sample, collect, run_sample

SAMPLES = [s for s in collect() if not s.page.startswith("docs/guide/") and s.not_run is None]


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.id for s in SAMPLES])
def test_sample(sample: Sample, tmp_path: Path) -> None:
    run_sample(sample, tmp_path)
