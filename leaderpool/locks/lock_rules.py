"""Rules every lock and queued recipe shares, on both faces: how long one wait for a wake-up may
block, and the timeout's check. (Apart from :mod:`.blocking_lock` so the queued recipes, which
``Lock(fair=True)`` hands out, need not import it.)"""

from __future__ import annotations

from typing import Any

from leaderpool.errors import ConfigError
from leaderpool.util.timeouts import block_timeout

MAX_WAIT_S = 5.0
"""The longest single ``BLPOP``, and at most half the client's socket timeout (redis-py 8's
default is 5 s): a blocked read must end before the socket gives up on it."""


def validate_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ConfigError(f"a lock's timeout must be None or seconds >= 0, got {timeout!r}")
    return float(timeout)


def wait_cap(client: Any) -> float:
    """:data:`MAX_WAIT_S`, or half the client's socket timeout when that is shorter."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    socket_timeout = kwargs.get("socket_timeout")
    return MAX_WAIT_S if not socket_timeout else block_timeout(min(MAX_WAIT_S, socket_timeout / 2))
