"""Percentiles of a sample, the way the report shows them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); ``q`` in [0, 100]."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summary(values: Sequence[float], *, scale: float = 1.0, digits: int = 3) -> dict[str, Any]:
    """``{n, p50, p90, p99, max, min, mean}`` of ``values`` times ``scale`` (e.g. 1000 for ms)."""
    ordered = sorted(v * scale for v in values)
    if not ordered:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None, "min": None, "mean": None}
    return {
        "n": len(ordered),
        "p50": round(percentile(ordered, 50), digits),
        "p90": round(percentile(ordered, 90), digits),
        "p99": round(percentile(ordered, 99), digits),
        "max": round(ordered[-1], digits),
        "min": round(ordered[0], digits),
        "mean": round(sum(ordered) / len(ordered), digits),
    }
