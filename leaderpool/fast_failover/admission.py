"""Who the liveness endpoint lets in: caps per peer address and in total, a ceiling on accepts per
second, and the descriptors kept in reserve (issue 23).

The endpoint is reachable by anyone who can reach the process (it binds the address the process
uses to reach Redis), and it has nothing to authenticate: peers only listen. So what a stranger
can cost it is bounded instead:

- **connections**: at most :data:`PER_PEER` from one address and :data:`TOTAL` in all; one more
  is closed as soon as it is accepted. A legitimate peer is one process watching this one (a link
  is shared by all of its members), plus a short-lived check now and then.
- **descriptors**: a connection accepted within :data:`leaderpool.util.descriptors.RESERVE` of the
  open-files limit is closed, so the process can always reconnect to Redis.
- **time**: at most :data:`ACCEPTS_PER_S` accepts a second (a burst of :data:`ACCEPT_BURST`); past
  that the listener pauses and connections wait in the kernel's backlog. Each connection costs the
  loop one hello and at most one read: a peer that sends anything is closed at its first byte.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from leaderpool.util import descriptors

PER_PEER = 64
"""Connections from one address at most: many processes on one host (or behind one NAT) each
keep one link to this process's endpoint, so this is generous, and still small."""
TOTAL = 1024
"""Connections at most, from everyone."""
ACCEPT_BURST = 64
"""Connections accepted at once before the rate applies (and per readiness callback at most)."""
ACCEPTS_PER_S = 200.0
"""Connections accepted a second, sustained: a pool's reconnects after a restart are a few dozen;
a stranger's connect-and-close loop costs the leader at most this many hellos a second (about
8 % of a core, measured on a busy 2-core VM)."""


class Admission:
    """The endpoint's bookkeeping: a token bucket for accepts and the open connections by address."""

    def __init__(
        self,
        *,
        per_peer: int = PER_PEER,
        total: int = TOTAL,
        burst: int = ACCEPT_BURST,
        per_s: float = ACCEPTS_PER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_peer, self.total = per_peer, total
        self._burst, self._per_s, self._clock = burst, per_s, clock
        self._tokens = float(burst)
        self._at = clock()
        self._open: Counter[str] = Counter()
        self.open = 0
        """Connections held now."""
        self.refused = 0
        """Connections closed at once (over a cap, or too near the open-files limit)."""

    def may_accept(self) -> bool:
        """Whether one more accept fits in the rate now (and takes its token)."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._per_s)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def wait_s(self) -> float:
        """How long until the next accept fits in the rate."""
        return max(0.0, (1 - self._tokens) / self._per_s)

    def admit(self, peer: str, fd: int) -> str | None:
        """Count a connection from ``peer`` (accepted as descriptor ``fd``); or why it is refused."""
        if descriptors.near_limit(fd):
            why = "descriptors"
        elif self._open[peer] >= self.per_peer:
            why = "per_peer"
        elif self.open >= self.total:
            why = "total"
        else:
            self._open[peer] += 1
            self.open += 1
            return None
        self.refused += 1
        return why

    def release(self, peer: str) -> None:
        self.open -= 1
        self._open[peer] -= 1
        if self._open[peer] <= 0:
            del self._open[peer]
