"""Onward transfer: when a received message may go to a third agency.

The provider sets the terms (Europol Regulation Art. 19). A message's own rule decides:
FORBIDDEN never; ALLOWED for the same purpose; WITH_ORIGINATOR_CONSENT (and unspecified) only
with the originator's TRANSFER_AUTHORISATION_GRANT naming the third agency. Restrictive
markings override a permissive rule: TLP:RED, TLP:AMBER+STRICT and handling code H2 ("not to be
disseminated without the provider's permission") always need the grant.

A forward carries the originator's envelope and, where consent was needed, the originator's
signed grant, so the third agency checks the authorisation itself (`check_forwarded`) rather
than trusting the forwarder. No I/O here: certificates and grants are passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from node.envelope import MessageMeta, meta_of, parse_content, verify_envelope
from node.errors import Reason, Refused

RESTRICTIVE_TLP = frozenset({"RED", "AMBER_STRICT"})


@dataclass(frozen=True, slots=True)
class Grant:
    """A TRANSFER_AUTHORISATION_GRANT as received: who granted what to whom."""

    sender: str
    target: str
    third_agency: str
    granted: bool
    transfer_purpose: str


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
    original: MessageMeta, *, to: str, purpose: str, grants: Sequence[Grant]
) -> Grant | None:
    """The grant that authorises forwarding `original` to `to` for `purpose`, or None if no
    grant is needed; Refused otherwise."""
    if to == original.sender:
        raise Refused(Reason.WRONG_RECIPIENT, "a message is not forwarded back to its originator")
    if not needs_consent(original, purpose=purpose):
        return None
    for g in grants:
        if (
            g.sender == original.sender
            and g.target == original.message_id
            and g.third_agency == to
            and g.granted
            and (g.transfer_purpose or original.purpose) == purpose
        ):
            return g
    raise Refused(
        Reason.ONWARD_TRANSFER_NOT_AUTHORISED,
        f"forwarding {original.message_id} to {to} for {purpose!r} needs a "
        f"TRANSFER_AUTHORISATION_GRANT from {original.sender}",
    )


def check_forwarded(
    *,
    outer: MessageMeta,
    inner: tuple[bytes, bytes, bytes],
    authorisation: tuple[bytes, bytes, bytes] | None,
    receiver: str,
    originator_key: ec.EllipticCurvePublicKey | None,
) -> MessageMeta:
    """Checks a third agency runs on a forward it receives; returns the original's meta."""
    inner_content, inner_signature, inner_proof = inner
    original = meta_of(parse_content(inner_content))
    if originator_key is None:
        raise Refused(Reason.UNKNOWN_SENDER, f"originator {original.sender} is not a member")
    if not verify_envelope(originator_key, inner_content, inner_signature, inner_proof):
        raise Refused(Reason.BAD_SIGNATURE, "the forwarded envelope's signature does not verify")
    if original.sender == outer.sender:
        raise Refused(Reason.MALFORMED, "a forward carries another agency's envelope")
    grants: list[Grant] = []
    if authorisation is not None:
        auth_content, auth_signature, auth_proof = authorisation
        if not verify_envelope(originator_key, auth_content, auth_signature, auth_proof):
            raise Refused(Reason.BAD_SIGNATURE, "the transfer authorisation does not verify")
        g = meta_of(parse_content(auth_content))
        if g.type != "TRANSFER_AUTHORISATION_GRANT":
            raise Refused(Reason.MALFORMED, "transfer_authorisation is not a grant")
        grants.append(
            Grant(g.sender, g.control_target, g.third_agency, g.granted, g.transfer_purpose)
        )
    check_forward(original, to=receiver, purpose=outer.purpose, grants=grants)
    return original
