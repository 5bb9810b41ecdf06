"""Free text from people (justifications, notes, reasons, conditions): one line in, escaped out.

A justification with a newline forged a row of `accord access-log`'s output: control characters
are refused where people type text the node keeps, and escaped wherever the CLI prints text it
did not write itself (older rows, peers' reasons). Refused and escaped alike: C0 and C1
controls (tab and newline included), the Unicode line and paragraph separators, and the
bidirectional overrides and isolates, which reorder what a reader sees.
"""

from __future__ import annotations

import unicodedata

from node.errors import InvalidRequest

_BIDI = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))


def _unsafe(ch: str) -> bool:
    return ch in _BIDI or unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def check_text(field: str, value: str) -> None:
    """InvalidRequest naming `field` if `value` holds a control character."""
    for ch in value:
        if _unsafe(ch):
            raise InvalidRequest(
                f"{field}: contains the control character U+{ord(ch):04X}; write it as one line "
                "of plain text"
            )


def printable(value: str) -> str:
    """`value` with every control character escaped (\\n, \\t, \\u202e, ...), safe to print in a
    one-line table cell or log line."""
    if not any(_unsafe(ch) for ch in value):
        return value
    return "".join(
        (ch.encode("unicode_escape").decode("ascii") if _unsafe(ch) else ch) for ch in value
    )
