"""A pool's leadership history as ``leaderpool-cli history`` and the dashboard show it: the
stored transitions, oldest first, with the lease expiries they imply."""

from __future__ import annotations

from typing import Any

from leaderpool.backend.pool_store import HistoryEntry
from leaderpool.cli.status import clock_text, table
from leaderpool.util.printable import printable


def history_rows(entries: list[HistoryEntry]) -> list[dict[str, Any]]:
    """The stored transitions, oldest first, plus an inferred ``expired`` row wherever an
    ``elected`` follows an ``elected`` with no release between (the earlier lease ran out; its
    time is unknown, so ``t`` is null). A transition without a reason (an election by claim) has
    ``reason`` ``""``, in the JSON and in the table alike (a blank last column)."""
    rows: list[dict[str, Any]] = []
    open_term: HistoryEntry | None = None
    for e in entries:
        if e.event == "elected":
            if open_term is not None and open_term.term != e.term:
                rows.append(
                    {"id": None, "event": "expired", "term": open_term.term, "member": open_term.member,
                     "reason": "lease_expired", "t": None}
                )  # fmt: skip
            open_term = e
        elif e.event == "released" and open_term is not None and open_term.term == e.term:
            open_term = None
        rows.append(
            {"id": e.entry_id, "event": e.event, "term": e.term, "member": e.member, "reason": e.reason,
             "t": e.t_ms / 1000}
        )  # fmt: skip
    return rows


def render(pool: str, rows: list[dict[str, Any]]) -> str:
    """The table of :func:`history_rows`' rows (a line saying there are none, when there are none)."""
    if not rows:
        return printable(f"pool {pool}: no leadership transitions recorded")
    cells = [["TIME", "EVENT", "TERM", "MEMBER", "REASON"]]
    for r in rows:
        when = "-" if r["t"] is None else clock_text(int(r["t"] * 1000)) + f".{int(r['t'] * 1000) % 1000:03d}"
        cells.append([when, r["event"], str(r["term"]), r["member"], r["reason"]])
    body = "\n".join("  " + line for line in table(cells))
    return printable(f"pool {pool}: last {len(rows)} transition(s), oldest first") + f"\n{body}"
