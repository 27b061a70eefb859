"""Random spreads (first beats, retry back-off) from a generator of leaderpool's own: the
application's ``random`` module state is never drawn from or moved by the library (an application
that seeds ``random`` for reproducible runs gets the same numbers with leaderpool running; and a
property-based test's generator, which checks that nothing else moved it, is left alone)."""

from __future__ import annotations

import random

_GENERATOR = random.Random()


def spread(low: float, high: float) -> float:
    """A number between ``low`` and ``high``, uniformly."""
    return _GENERATOR.uniform(low, high)


def pick(n: int) -> int:
    """A whole number from 0 to ``n - 1``, uniformly."""
    return _GENERATOR.randrange(n)
