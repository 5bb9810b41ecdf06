"""Who may do what on a node: roles, purpose clearances, justification, TLP and handling.

Pure rules, no I/O: the caller records every decision in the access log.

Decisions (where the design is silent):
- Reading content needs the liaison officer or supervisor role, a clearance for the message's
  purpose and a written justification of at least 10 characters (LED Art. 25 logs it).
- TLP:RED content is for supervisors only; TLP:AMBER+STRICT for cleared officers and
  supervisors; auditors and administrators never read content, only metadata and logs.
- Sending and forwarding need the liaison officer or supervisor role and a clearance for the
  purpose. A TRANSFER_AUTHORISATION_GRANT (or its withdrawal) releases the message it names:
  it needs the right to see that message (role, clearance for its purpose, TLP). Approving
  needs the supervisor role, a clearance for the message's purpose, and
  must not be the author (four eyes).
- Managing users, and moving a drill-mode node's clock, need the administrator role; reading
  the access log needs auditor or administrator.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from node.errors import PermissionDenied

MIN_JUSTIFICATION = 10


class Role(enum.StrEnum):
    LIAISON_OFFICER = "liaison_officer"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"
    ADMINISTRATOR = "administrator"


OPERATIONAL = frozenset({Role.LIAISON_OFFICER, Role.SUPERVISOR})


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    clearances: frozenset[str]
    disabled: bool = False
    pending: bool = False  # created, and no second administrator has approved them yet


def _operational(user: User, what: str) -> None:
    if user.role not in OPERATIONAL:
        raise PermissionDenied(
            "ROLE", f"{user.name} is {user.role}; {what} needs a liaison officer or supervisor"
        )


def _cleared(user: User, purpose: str, *, named: bool = True) -> None:
    """`named`: the refusal may name the purpose (one the user chose); a stored message's
    purpose is itself what a user not cleared for it may not see (the access log has it)."""
    if purpose not in user.clearances:
        what = f"the purpose {purpose!r}" if named else "this message's purpose"
        raise PermissionDenied("CLEARANCE", f"{user.name} is not cleared for {what}")


def check_may_read(
    user: User, *, purpose: str, tlp: str, what: str = "reading message content"
) -> None:
    """Role, clearance and TLP: whether the user may see the content (reading it also needs a
    justification; consenting to its onward transfer does not, but discloses it all the same)."""
    _operational(user, what)
    _cleared(user, purpose, named=False)
    if tlp == "RED" and user.role != Role.SUPERVISOR:
        raise PermissionDenied("TLP", "TLP:RED content is for supervisors only")


def check_read(user: User, *, purpose: str, tlp: str, justification: str) -> None:
    check_may_read(user, purpose=purpose, tlp=tlp)
    if len(justification.strip()) < MIN_JUSTIFICATION:
        raise PermissionDenied(
            "JUSTIFICATION",
            f"reading needs a written justification (at least {MIN_JUSTIFICATION} characters)",
        )


def check_send(user: User, *, purpose: str) -> None:
    _operational(user, "sending")
    _cleared(user, purpose)


def check_forward(user: User, *, purpose: str, justification: str) -> None:
    _operational(user, "forwarding")
    _cleared(user, purpose)
    if len(justification.strip()) < MIN_JUSTIFICATION:
        raise PermissionDenied("JUSTIFICATION", "a forward needs a written justification")


def check_approve(user: User, *, author: str, purpose: str) -> None:
    if user.role != Role.SUPERVISOR:
        raise PermissionDenied("ROLE", f"{user.name} is {user.role}; approval needs a supervisor")
    _cleared(user, purpose, named=False)
    if user.name == author:
        raise PermissionDenied("FOUR_EYES", "the author of a message cannot approve it")


def check_manage_users(user: User) -> None:
    if user.role != Role.ADMINISTRATOR:
        raise PermissionDenied("ROLE", "managing users needs the administrator role")


def check_move_clock(user: User) -> None:
    if user.role != Role.ADMINISTRATOR:
        raise PermissionDenied("ROLE", "moving a drill node's clock needs the administrator role")


def check_audit(user: User) -> None:
    if user.role not in (Role.AUDITOR, Role.ADMINISTRATOR):
        raise PermissionDenied("ROLE", "the access log is for auditors and administrators")


def sees_metadata(user: User, *, purpose: str) -> bool:
    """Whether a listing (inbox, live feed, receipts) shows a message of this purpose to the
    user: auditors see all metadata, everyone else only purposes they are cleared for."""
    return user.role == Role.AUDITOR or purpose in user.clearances


def check_list(user: User) -> None:
    """Listing message metadata (inbox): any role but the administrator's."""
    if user.role == Role.ADMINISTRATOR:
        raise PermissionDenied("ROLE", "administrators manage the node; they do not see traffic")


def check_hold(user: User, *, purpose: str, justification: str) -> None:
    """Holding, releasing or keeping a message longer decides how long data lives: a
    supervisor cleared for its purpose, with a written justification."""
    if user.role != Role.SUPERVISOR:
        raise PermissionDenied(
            "ROLE", f"{user.name} is {user.role}; holds and retention need a supervisor"
        )
    if purpose:
        _cleared(user, purpose)
    if len(justification.strip()) < MIN_JUSTIFICATION:
        raise PermissionDenied(
            "JUSTIFICATION",
            f"a hold, release or keep needs a written justification (at least "
            f"{MIN_JUSTIFICATION} characters)",
        )


def check_sweep(user: User) -> None:
    if user.role not in (Role.SUPERVISOR, Role.ADMINISTRATOR):
        raise PermissionDenied("ROLE", "sweeping on demand needs a supervisor or administrator")


def check_review(user: User) -> None:
    if user.role not in (Role.SUPERVISOR, Role.AUDITOR):
        raise PermissionDenied("ROLE", "the review list is for supervisors and auditors")
