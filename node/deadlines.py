"""The time limits of Directive (EU) 2023/977, Art. 5, for a request for information
(REQUEST_INFO), counted from when the request is made (sender) or received (receiver):

- 8 hours for an urgent request for information directly accessible to the requested agency
  (held in a database it can query itself, Art. 2(13));
- 3 days for an urgent request for information not directly accessible;
- 7 days for every other request.

The sender states urgency (`urgency`) and whether the information is directly accessible
(`directly_accessible`); it may ask for an earlier answer (`reply_deadline`), never a later one.

Decisions (docs/deadlines.md): the sender's node fills in `reply_deadline` when the user gives
none and refuses one later than the limit (the user asked for what the law does not allow: it
says so before anything is signed). The receiver clamps instead of refusing: the limit binds
the requested agency from the moment it receives the request, whatever the request says, and
refusing a request over its deadline field would only delay the cooperation the law speeds up.
A delay notice moves the date the answer is expected, never earlier than the deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

URGENT_DIRECT = timedelta(hours=8)
URGENT = timedelta(days=3)
NORMAL = timedelta(days=7)
REQUEST = "REQUEST_INFO"
ANSWER_TYPES = frozenset({"REPLY", "REFUSAL"})  # what answers a request (and ends its clock)


def limit(*, urgent: bool, direct: bool) -> timedelta:
    if urgent:
        return URGENT_DIRECT if direct else URGENT
    return NORMAL


def receiver_deadline(
    asked: datetime | None, received_at: datetime, *, urgent: bool, direct: bool
) -> datetime:
    """The receiver's deadline: the sender's, if it asked for one, but never later than the
    limit counted from receipt."""
    latest = received_at + limit(urgent=urgent, direct=direct)
    return latest if asked is None else min(asked, latest)


def expected(deadline: datetime, delays: Sequence[datetime]) -> datetime:
    """When the answer is due: the deadline, moved by the latest delay notice (if later)."""
    return max([deadline, *delays[-1:]])


@dataclass(frozen=True, slots=True)
class Progress:
    """Where one request stands between the two agencies it concerns."""

    deadline: datetime
    expected: datetime  # the deadline, moved by a delay notice
    answered_at: datetime | None  # the first REPLY or REFUSAL
    answer: str  # its type, or ""
    delayed: bool

    def overdue(self, now: datetime) -> bool:
        return self.answered_at is None and now > self.expected

    def on_time(self) -> bool | None:
        """Answered within the deadline (a delay notice does not move the deadline itself);
        None while unanswered."""
        return None if self.answered_at is None else self.answered_at <= self.deadline


def progress(
    deadline: datetime, answers: Sequence[tuple[str, datetime, datetime | None]]
) -> Progress:
    """`answers`: (type, when, a delay's expected_by) of the REPLY, REFUSAL and DELAY_NOTICE
    messages between the two agencies, oldest first."""
    first = next(((kind, at) for kind, at, _ in answers if kind in ANSWER_TYPES), None)
    delays = [
        until
        for kind, at, until in answers
        if kind == "DELAY_NOTICE" and until is not None and (first is None or at <= first[1])
    ]
    return Progress(
        deadline=deadline,
        expected=expected(deadline, delays),
        answered_at=first[1] if first else None,
        answer=first[0] if first else "",
        delayed=bool(delays),
    )
