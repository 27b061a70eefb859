"""The timeout leaderpool gives a blocking Redis command, in a module of its own: the stores
that use it load without asyncio (the CLI's one-shot commands run them on a blocking client)."""

from __future__ import annotations

MIN_BLOCK_S = 0.01
"""The shortest timeout leaderpool gives a blocking Redis command (``BLPOP``). Redis 6 turns it
into whole milliseconds by truncating the seconds it read times 1000, and 0 blocks for ever: a
0.4 ms wait did, and so does exactly 1 ms ("0.001" reads as 0.99999... ms; found when a lock
test hung until the client's socket timeout). 10 ms is clear of that edge, and still below the
resolution Redis gives blocked clients' timeouts (100 ms at the default ``hz``)."""


def block_timeout(seconds: float) -> float:
    """``seconds`` as a blocking command's timeout: at least :data:`MIN_BLOCK_S`, never 0."""
    return max(seconds, MIN_BLOCK_S)
