"""Text from outside (Redis, a peer) made safe to print on a terminal: every control character
escaped, so a member id, a record's node or host, metadata, an error text or a pool name found
by SCAN cannot move the cursor, recolour, retitle the window, erase a line or fake a table row.

Escaped: C0 (``\\x00``-``\\x1f``: ESC, carriage return, newline, tab, backspace...), DEL, C1
(``\\x80``-``\\x9f``: CSI and OSC in their 8-bit forms), the Unicode line and paragraph
separators and the bidirectional controls (which reorder what follows them on screen). An
escape sequence is harmless once its ESC is shown as ``\\x1b``. ``--json`` output needs none of
this: ``json.dumps`` escapes control characters itself.
"""

from __future__ import annotations

import re

__all__ = ["printable", "printable_lines"]

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """``value`` as one line of text with every control character escaped (``\\x1b``, ``\\n``
    as ``\\x0a``...): for one field, or one line built from fields."""
    return _UNSAFE.sub(_escaped, value if isinstance(value, str) else str(value))


def printable_lines(text: str) -> str:
    """``text``'s lines, each made :func:`printable`: for a message built of several lines whose
    line breaks are its own."""
    return "\n".join(printable(line) for line in text.split("\n"))
