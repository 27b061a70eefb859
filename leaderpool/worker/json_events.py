"""The worker's ``--json-events``: one JSON object per line on stdout for each transition
(``elected``, ``revoked``, ``leader``; ``name_held`` and the like from :mod:`.name_keeper`;
``singleton_started`` and ``singleton_stopped`` from :mod:`.singleton_work`), each
with the pool and the time (``t``, unix seconds), flushed at once so a reader sees it as it
happens. A reader that goes away stops the events, never the worker."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from leaderpool.events import LeaderInfo, RevokeReason
from leaderpool.util.log import get_logger

log = get_logger("leaderpool.worker")


class EventWriter:
    """One JSON object per line, flushed, for each transition (``--json-events``)."""

    def __init__(self, pool: str, member: str, stream: TextIO | None = None) -> None:
        self.pool = pool
        self.member = member
        self.stream = stream or sys.stdout
        self.broken = False

    def write(self, event: str, **fields: Any) -> None:
        if self.broken:
            return
        record = {"event": event, "pool": self.pool, **fields, "t": time.time()}
        try:
            self.stream.write(json.dumps(record, separators=(",", ":")) + "\n")
            self.stream.flush()
        except (OSError, ValueError) as exc:  # the reader went away: lead on, without events
            self.broken = True
            log.warning("json_events_unwritable", error=str(exc) or type(exc).__name__)

    def elected(self, term: int) -> None:
        self.write("elected", member=self.member, term=term)

    def revoked(self, term: int | None, reason: RevokeReason) -> None:
        self.write("revoked", member=self.member, term=term, reason=reason.value)

    def leader(self, leader: LeaderInfo | None) -> None:
        self.write("leader", member=leader.member if leader else None, term=leader.term if leader else None)
