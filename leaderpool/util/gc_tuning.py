"""The garbage collector, for a process hosting thousands of members.

Such a process holds hundreds of thousands of long-lived objects (each member's election, view,
timers, records). CPython's cyclic collector walks all of them at every full collection: measured
on the 2-core VM with 4,000 members in one process, 7-9 % of the wall clock in collections and
pauses of up to 205 ms, long enough to make heartbeats late on their own, which under load turns
into lapsed leases and more work (issue 13). Moved out of its reach once the members are up
(``gc.freeze()``), and with young collections less frequent, the same process spent no
measurable time collecting.

The collector is the process's, not leaderpool's: nothing here runs unless the application (or
the benchmark's member process) calls it.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""Allocations (less deallocations) between two young collections; CPython's default is 700. A
member's beat frees what it allocates, so a steady process rarely reaches it."""


def quiet_gc(young_threshold: int = YOUNG_THRESHOLD) -> int:
    """Once the members are up: collect once, freeze every object alive now (never scanned
    again), and collect young objects every ``young_threshold`` allocations. Returns how many
    objects were frozen. Call it again after starting many more members."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, older, oldest)
    return gc.get_freeze_count()
