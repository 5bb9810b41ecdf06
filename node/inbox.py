"""What a liaison officer sees at a glance in the inbox: each request's deadline and status.

Pure, no I/O: the store gives the message and the types of this node's replies to it.

Decisions (where the design is silent):
- The deadline is the sender's `reply_deadline` if it set one; otherwise, for a request, the
  time limits of Directive (EU) 2023/977, Art. 5: 8 hours for an urgent request, 7 days for
  any other (the longer of its two non-urgent limits: this node cannot know whether the
  information is directly accessible to the requested agency).
- Status, from this node's replies in the thread (`in_reply_to`): `answered` (a REPLY, or a
  TRANSFER_AUTHORISATION_GRANT to a transfer request), else `refused` (a REFUSAL), else
  `delayed` (a DELAY_NOTICE); with none of them, `overdue` once the deadline has passed, else
  `received`.
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
_RANK = ("answered", "refused", "delayed")


def deadline(m: StoredMessage) -> datetime | None:
    if m.reply_deadline is not None:
        return m.reply_deadline
    if m.type not in REQUEST_TYPES:
        return None
    return m.created_at + (URGENT_LIMIT if m.urgency == "URGENT" else NORMAL_LIMIT)


def status(m: StoredMessage, replies: Collection[str], now: datetime) -> str:
    """`replies`: the types of the messages this node sent in reply to `m`."""
    given = {ANSWERS[t] for t in replies if t in ANSWERS}
    for state in _RANK:
        if state in given:
            return state
    due = deadline(m)
    if due is not None and now > due:
        return "overdue"
    return "received"
