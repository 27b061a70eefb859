"""Fast failover: a leader whose process died is replaced in milliseconds, not after its lease.

- :mod:`.failover`: the follower's side and the proof of a death (:class:`FastFailover`): the next
  in line keeps a connection to the leader's endpoint and, when it closes, confirms through Redis
  that the leader's registered connection is gone before it buries the lead and claims.
- :mod:`.endpoints`: the liveness endpoint a process listens on and the links to it.
- :mod:`.descriptor_slots`: low descriptor slots, so a dying process closes those links last.

It reads the election's view through a Protocol of its own and imports nothing of the election.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leaderpool.util.exports import lazy_exports

if TYPE_CHECKING:
    from leaderpool.fast_failover.failover import Death, FastFailover

__all__ = ["Death", "FastFailover"]
__getattr__, __dir__ = lazy_exports(__name__, {"Death": "failover", "FastFailover": "failover"})
