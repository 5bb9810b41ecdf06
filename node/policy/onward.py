"""Onward transfer: when a received message may go to a third agency.

The provider sets the terms (Europol Regulation Art. 19). A message's own rule decides:
FORBIDDEN never; ALLOWED for the same purpose; WITH_ORIGINATOR_CONSENT (and unspecified) only
with the originator's TRANSFER_AUTHORISATION_GRANT naming the third agency. Restrictive
markings override a permissive rule: TLP:RED, TLP:AMBER+STRICT and handling code H2 ("not to be
disseminated without the provider's permission") always need the grant.

A forward carries the originator's envelope and, where consent was needed, the originator's
signed grant, so the third agency checks the authorisation itself (`check_forwarded`) rather
than trusting the forwarder. Forwards never nest: a received forward is passed on as its
originator's envelope (the innermost), so only the originator's grants and terms ever count,
however many hops a message takes. No I/O here: certificates and grants are passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ec

from certs.directory import ONWARD_RULES, TLP_ORDER, tlp_label
from node import signing, wire
from node.errors import Reason, Refused
from node.messages import MessageMeta

RESTRICTIVE_TLP = frozenset({"RED", "AMBER_STRICT"})
# How long a grant lasts when its author gave no end (ControlBody.valid_until).
GRANT_DAYS = 30
# Retention limits are compared at one instant; this much slack covers clock steps in between.
_RETENTION_SLACK = timedelta(minutes=5)


def tlp_rank(tlp: str) -> int:
    """Higher is stricter; an unspecified TLP ranks below CLEAR."""
    return TLP_ORDER.index(tlp) if tlp in TLP_ORDER else -1


def onward_looseness(rule: str) -> int:
    """Higher is looser; an unspecified rule is read as WITH_ORIGINATOR_CONSENT (as above)."""
    return ONWARD_RULES.index(rule if rule in ONWARD_RULES else "WITH_ORIGINATOR_CONSENT")


def check_markings_kept(
    forward: MessageMeta, original: MessageMeta, *, purposes: Sequence[str], now: datetime
) -> None:
    """A forward is held to its original's terms (the provider sets them): TLP not lower,
    handling codes and conditions kept, onward rule not looser, retention not longer, and a
    purpose among `purposes` (the original's, or the one its grant names). Refused with
    MARKINGS_LOOSENED otherwise."""
    loosened: list[str] = []
    if tlp_rank(forward.tlp) < tlp_rank(original.tlp):
        loosened.append(
            f"TLP:{tlp_label(forward.tlp)} is lower than the original's "
            f"TLP:{tlp_label(original.tlp)}"
        )
    dropped = sorted(set(original.handling_codes) - set(forward.handling_codes))
    if dropped:
        loosened.append(f"handling code(s) {', '.join(dropped)} of the original are dropped")
    if original.handling_conditions not in forward.handling_conditions:
        loosened.append("the original's handling conditions are not carried")
    if onward_looseness(forward.onward_transfer) > onward_looseness(original.onward_transfer):
        loosened.append(
            f"onward rule {forward.onward_transfer} is looser than the original's "
            f"{original.onward_transfer}"
        )
    mine, theirs = forward.retain_until(now), original.retain_until(now)
    if theirs is not None and (mine is None or mine > theirs + _RETENTION_SLACK):
        loosened.append("retention is longer than the original's")
    if forward.purpose not in purposes:
        loosened.append(
            f"purpose {forward.purpose!r} is neither the original's nor one its grant names"
        )
    if loosened:
        raise Refused(
            Reason.MARKINGS_LOOSENED,
            f"a forward of {original.message_id} must keep its originator's terms: "
            + "; ".join(loosened),
        )


def strictest(forward: MessageMeta, original: MessageMeta) -> MessageMeta:
    """The forward's view, with the stricter TLP of the two (what the stored row carries)."""
    if tlp_rank(original.tlp) > tlp_rank(forward.tlp):
        return replace(forward, tlp=original.tlp)
    return forward


@dataclass(frozen=True, slots=True)
class Grant:
    """A TRANSFER_AUTHORISATION_GRANT as received: who granted what to whom, until when."""

    message_id: str
    sender: str
    recipients: tuple[str, ...]
    created_at: datetime
    target: str
    third_agency: str
    granted: bool
    transfer_purpose: str
    valid_until: datetime | None

    @classmethod
    def of(cls, g: MessageMeta) -> Grant:
        return cls(
            message_id=g.message_id,
            sender=g.sender,
            recipients=g.recipients,
            created_at=g.created_at,
            target=g.control_target,
            third_agency=g.third_agency,
            granted=g.granted,
            transfer_purpose=g.transfer_purpose,
            valid_until=g.grant_valid_until,
        )


def needs_consent(original: MessageMeta, *, purpose: str) -> bool:
    if original.onward_transfer == "FORBIDDEN":
        raise Refused(
            Reason.ONWARD_TRANSFER_FORBIDDEN,
            f"{original.sender} forbade onward transfer of {original.message_id}",
        )
    restrictive = original.tlp in RESTRICTIVE_TLP or "H2" in original.handling_codes
    same_purpose = purpose == original.purpose
    return restrictive or original.onward_transfer != "ALLOWED" or not same_purpose


def check_forward(
    original: MessageMeta,
    *,
    forwarder: str,
    to: str,
    purpose: str,
    grants: Sequence[Grant],
    now: datetime,
) -> Grant | None:
    """The grant that authorises `forwarder` to pass `original` on to `to` for `purpose`, or
    None if no grant is needed; Refused otherwise.

    Only the originator's grants count, and only those that name this very message, are sent
    to `forwarder` alone and name `to`. Of those the newest decides: a later grant with
    granted = false withdraws an earlier consent, and an expired one has lapsed.
    """
    if to == original.sender:
        raise Refused(Reason.WRONG_RECIPIENT, "a message is not forwarded back to its originator")
    if not needs_consent(original, purpose=purpose):
        return None
    covering = [
        g
        for g in grants
        if g.sender == original.sender
        and g.target == original.message_id
        and g.recipients == (forwarder,)
        and g.third_agency == to
    ]
    what = f"forwarding {original.message_id} from {forwarder} to {to} for {purpose!r}"
    if not covering:
        raise Refused(
            Reason.ONWARD_TRANSFER_NOT_AUTHORISED,
            f"{what} needs a TRANSFER_AUTHORISATION_GRANT from {original.sender} to {forwarder}",
        )
    newest = max(covering, key=lambda g: (g.created_at, g.message_id))
    if not newest.granted:
        raise Refused(
            Reason.ONWARD_TRANSFER_NOT_AUTHORISED,
            f"{what}: {original.sender} refused or withdrew consent (grant {newest.message_id})",
        )
    if newest.valid_until is None or now > newest.valid_until:
        raise Refused(
            Reason.ONWARD_TRANSFER_NOT_AUTHORISED,
            f"{what}: {original.sender}'s grant {newest.message_id} expired at "
            f"{newest.valid_until}",
        )
    granted_for = newest.transfer_purpose or original.purpose
    if granted_for != purpose:
        raise Refused(
            Reason.ONWARD_TRANSFER_NOT_AUTHORISED,
            f"{what}: {original.sender}'s grant {newest.message_id} covers the purpose "
            f"{granted_for!r} only",
        )
    return newest


def check_forwarded(
    *,
    outer: MessageMeta,
    inner: tuple[bytes, bytes, bytes],
    authorisation: tuple[bytes, bytes, bytes] | None,
    receiver: str,
    originator_key: ec.EllipticCurvePublicKey | None,
    now: datetime,
) -> MessageMeta:
    """Checks a third agency runs on a forward it receives; returns the original's meta."""
    inner_content, inner_signature, inner_proof = inner
    original = wire.decode(inner_content).meta
    if original.forwarded:
        # Only the originator's own envelope travels on: a forward of a forward would let the
        # middle agency's markings and grants stand in for the originator's.
        raise Refused(
            Reason.MALFORMED, "a forward carries its originator's envelope, never another forward"
        )
    if originator_key is None:
        raise Refused(Reason.UNKNOWN_SENDER, f"originator {original.sender} is not a member")
    if not signing.verify(
        originator_key, inner_content, inner_signature, signing.ENVELOPE, inner_proof
    ):
        raise Refused(Reason.BAD_SIGNATURE, "the forwarded envelope's signature does not verify")
    if original.sender == outer.sender:
        raise Refused(Reason.MALFORMED, "a forward carries another agency's envelope")
    grants: list[Grant] = []
    if authorisation is not None:
        auth_content, auth_signature, auth_proof = authorisation
        if not signing.verify(
            originator_key, auth_content, auth_signature, signing.ENVELOPE, auth_proof
        ):
            raise Refused(Reason.BAD_SIGNATURE, "the transfer authorisation does not verify")
        g = wire.decode(auth_content).meta
        if g.type != "TRANSFER_AUTHORISATION_GRANT":
            raise Refused(Reason.MALFORMED, "transfer_authorisation is not a grant")
        grants.append(Grant.of(g))
    grant = check_forward(
        original,
        forwarder=outer.sender,
        to=receiver,
        purpose=outer.purpose,
        grants=grants,
        now=now,
    )
    purposes = [original.purpose, *([grant.transfer_purpose] if grant is not None else [])]
    check_markings_kept(outer, original, purposes=[p for p in purposes if p], now=now)
    return original
