"""What a liaison officer sees at a glance in the inbox: each request's deadline and status.

Pure, no I/O: the store gives the message and the types of this node's replies to it.

Decisions (where the design is silent):
- The deadline of a REQUEST_INFO is the one the node stored at receipt (node/deadlines.py:
  Directive (EU) 2023/977, Art. 5, clamped from receipt). Other requests (preservation,
  emergency disclosure, transfer authorisation) fall outside that Directive: the sender's
  `reply_deadline` if it set one, else 8 hours for an urgent one and 7 days for any other.
- Status, from this node's replies in the thread (`in_reply_to`): `answered` (a REPLY, or a
  TRANSFER_AUTHORISATION_GRANT to a transfer request), else `refused` (a REFUSAL); with
  neither, `overdue` once the date the answer is due has passed (the deadline, moved by a
  DELAY_NOTICE), else `delayed` (a DELAY_NOTICE was sent), else `received`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from node.store import StoredMessage

REQUEST_TYPES = frozenset(
    {
        "REQUEST_INFO",
        "PRESERVATION_REQUEST",
        "EMERGENCY_DISCLOSURE_REQUEST",
        "TRANSFER_AUTHORISATION_REQUEST",
    }
)
URGENT_LIMIT = timedelta(hours=8)
NORMAL_LIMIT = timedelta(days=7)
ANSWERS = {"REPLY": "answered", "TRANSFER_AUTHORISATION_GRANT": "answered",
           "REFUSAL": "refused", "DELAY_NOTICE": "delayed"}  # fmt: skip
_RANK = ("answered", "refused")


def deadline(m: StoredMessage) -> datetime | None:
    if m.reply_deadline is not None:
        return m.reply_deadline
    if m.type not in REQUEST_TYPES:
        return None
    return m.created_at + (URGENT_LIMIT if m.urgency == "URGENT" else NORMAL_LIMIT)


def status(m: StoredMessage, replies: Collection[str], now: datetime, due: datetime | None) -> str:
    """`replies`: the types of the messages this node sent in reply to `m`; `due`: when the
    answer is due (`deadline`, moved by a delay notice)."""
    given = {ANSWERS[t] for t in replies if t in ANSWERS}
    for state in _RANK:
        if state in given:
            return state
    if due is not None and now > due:
        return "overdue"
    return "delayed" if "delayed" in given else "received"
