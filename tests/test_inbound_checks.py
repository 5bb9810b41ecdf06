"""The receiver's checks (node/policy/inbound.py), each alone and composed: pure objects, no
server, no store, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from accord.v1 import message_pb2 as pb
from certs.directory import Directory, Purpose
from node.errors import Reason, Refused
from node.policy import Policy
from node.policy.inbound import (
    Agreement,
    AllOf,
    Check,
    CreatedAt,
    Forwarding,
    Framed,
    Inbound,
    Keep,
    Signed,
    Size,
    Structure,
    inbound_checks,
)
from node.signing import ENVELOPE, sign
from tests.harness import ALL_PURPOSES, complete, grant, incident, liaison, open_agreement

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NL, DE, FR = "NL-POL", "DE-BKA", "FR-PN"
KEYS = {agency: ec.generate_private_key(ec.SECP256R1()) for agency in (NL, DE, FR)}


def policy(local_max_retention_days: int | None = None, **changes: object) -> Policy:
    directory = Directory(
        federation="accord.test",
        serial=1,
        issued_at=NOW,
        valid_until=NOW + timedelta(days=30),
        purposes=tuple(Purpose(p, p) for p in ALL_PURPOSES),
        agreements=(open_agreement((NL, DE, FR), NOW, **changes),),
    )
    return Policy(directory=directory, agency=DE, local_max_retention_days=local_max_retention_days)


def arriving(
    content: bytes, *, peer: str = NL, framed: bool = True, verified: bool = True
) -> Inbound:
    return Inbound(peer=peer, content=content, framed=framed, verified=verified, now=NOW)


def from_nl(draft: pb.MessageContent, **fields: object) -> bytes:
    content = complete(draft, sender=NL)
    content.created_at.FromDatetime(NOW)
    for key, value in fields.items():
        setattr(content, key, value)
    return content.SerializeToString()


def kept(check: Check, inbound: Inbound) -> Keep | None:
    """What a check that passes asks of the row (typed as any check: most ask nothing)."""
    return check.check(inbound)


def refused(check: object, inbound: Inbound) -> Reason:
    with pytest.raises(Refused) as caught:
        check.check(inbound)  # type: ignore[attr-defined]
    return caught.value.reason


GOOD = from_nl(incident(to=[DE]))


def test_framed() -> None:
    assert refused(Framed(), arriving(GOOD, framed=False)) == Reason.MALFORMED
    assert kept(Framed(), arriving(GOOD)) is None


def test_size() -> None:
    assert refused(Size(len(GOOD) - 1), arriving(GOOD)) == Reason.OVERSIZE
    assert kept(Size(len(GOOD)), arriving(GOOD)) is None


def test_signed() -> None:
    assert refused(Signed(), arriving(GOOD, verified=False)) == Reason.BAD_SIGNATURE
    assert kept(Signed(), arriving(GOOD)) is None


def test_structure() -> None:
    assert refused(Structure(), arriving(b"\xff not a message")) == Reason.MALFORMED
    unknown = complete(incident(to=[DE]), sender=NL)
    unknown.type = 999  # type: ignore[assignment]
    assert refused(Structure(), arriving(unknown.SerializeToString())) == (
        Reason.UNKNOWN_MESSAGE_TYPE
    )
    unmarked = complete(incident(to=[DE]), sender=NL)
    unmarked.tlp = pb.TLP_UNSPECIFIED
    assert refused(Structure(), arriving(unmarked.SerializeToString())) == (Reason.MARKINGS_MISSING)
    inbound = arriving(GOOD)
    assert kept(Structure(), inbound) is None
    assert inbound.message.meta.sender == NL  # decoded once, kept for the checks after


def test_created_at() -> None:
    skew = timedelta(minutes=5)
    ahead = from_nl(incident(to=[DE]))
    inbound = arriving(ahead)
    inbound.now = NOW - timedelta(minutes=6)
    assert refused(CreatedAt(skew), inbound) == Reason.CREATED_AT_IN_FUTURE
    inbound = arriving(ahead)
    inbound.now = NOW - timedelta(minutes=4)
    assert kept(CreatedAt(skew), inbound) is None


def test_agreement_sets_the_retention() -> None:
    check = Agreement(lambda: policy(max_retention_days=60))  # the sender asks for 30 days
    assert check.check(arriving(GOOD)) == Keep(until=NOW + timedelta(days=30))
    local = Agreement(lambda: policy(local_max_retention_days=20))
    assert local.check(arriving(GOOD)) == Keep(until=NOW + timedelta(days=20))
    short = Agreement(lambda: policy(max_retention_days=20))
    assert refused(short, arriving(GOOD)) == Reason.RETENTION_EXCEEDS_AGREEMENT
    assert refused(check, arriving(GOOD, peer=FR)) == Reason.SENDER_MISMATCH
    elsewhere = from_nl(incident(to=[FR]))
    assert refused(check, arriving(elsewhere)) == Reason.WRONG_RECIPIENT
    ended = Agreement(lambda: policy(valid_until=NOW - timedelta(days=1)))
    assert refused(ended, arriving(GOOD)) == Reason.AGREEMENT_EXPIRED


def forwarding() -> Forwarding:
    return Forwarding(FR, lambda agency: KEYS[agency].public_key() if agency in KEYS else None)


def forward_of(original: pb.MessageContent, *, to: str = FR, **outer: object) -> pb.MessageContent:
    """DE's forward of NL's `original` to `to`, signed by NL as the originator."""
    inner = original.SerializeToString()
    forward = complete(incident(to=[to]), sender=DE)
    forward.created_at.FromDatetime(NOW)
    forward.forwarded.CopyFrom(
        pb.Envelope(content=inner, signature=sign(KEYS[NL], inner, ENVELOPE))
    )
    for key, value in outer.items():
        if isinstance(value, pb.Retention):
            forward.retention.CopyFrom(value)
        else:
            setattr(forward, key, value)
    return forward


def test_forwarding_needs_the_originators_consent_and_keeps_the_stricter_terms() -> None:
    original = complete(incident(to=[DE]), sender=NL)
    original.created_at.FromDatetime(NOW)
    check = forwarding()
    # Not a forward, no grant: nothing to check.
    assert check.check(arriving(from_nl(incident(to=[FR])), peer=NL)) is None
    # A grant alone is not a forward.
    stray = complete(incident(to=[FR]), sender=DE)
    envelope = pb.Envelope(content=b"x", signature=b"y")
    stray.transfer_authorisation.CopyFrom(envelope)
    assert refused(check, arriving(stray.SerializeToString(), peer=DE)) == Reason.MALFORMED
    # The original's rule is unspecified: consent needed, none given.
    needs = forward_of(original)
    assert refused(check, arriving(needs.SerializeToString(), peer=DE)) == (
        Reason.ONWARD_TRANSFER_NOT_AUTHORISED
    )
    # Allowed onward, same purpose: passes; the row keeps the original's retention and TLP.
    original.onward_transfer = pb.ONWARD_TRANSFER_ALLOWED
    original.retention.days = 10
    allowed = forward_of(original, retention=pb.Retention(days=10))
    keep = check.check(arriving(allowed.SerializeToString(), peer=DE))
    assert keep == Keep(until=NOW + timedelta(days=10), tlp="AMBER")
    # Terms looser than the original's do not pass.
    longer = forward_of(original)  # the sample's 30 days
    assert refused(check, arriving(longer.SerializeToString(), peer=DE)) == (
        Reason.MARKINGS_LOOSENED
    )
    # An original signed by someone other than its sender does not pass.
    forged = forward_of(original, retention=pb.Retention(days=10))
    forged.forwarded.signature = sign(KEYS[DE], forged.forwarded.content, ENVELOPE)
    assert refused(check, arriving(forged.SerializeToString(), peer=DE)) == (Reason.BAD_SIGNATURE)


def test_a_grant_in_a_forward_is_checked_as_the_originators() -> None:
    original = complete(incident(to=[DE]), sender=NL)
    original.created_at.FromDatetime(NOW)
    consent = complete(
        grant(target=original.message_id, to=DE, third=FR, purpose=original.purpose),
        sender=NL,
    )
    consent.created_at.FromDatetime(NOW)
    consent.control.valid_until.FromDatetime(NOW + timedelta(days=1))
    forward = forward_of(original)
    data = consent.SerializeToString()
    forward.transfer_authorisation.CopyFrom(
        pb.Envelope(content=data, signature=sign(KEYS[NL], data, ENVELOPE))
    )
    assert forwarding().check(arriving(forward.SerializeToString(), peer=DE)) is not None
    forward.transfer_authorisation.signature = sign(KEYS[DE], data, ENVELOPE)
    assert refused(forwarding(), arriving(forward.SerializeToString(), peer=DE)) == (
        Reason.BAD_SIGNATURE
    )


class Asks:
    def __init__(self, keep: Keep | None) -> None:
        self.keep = keep
        self.ran = False

    def check(self, inbound: Inbound) -> Keep | None:
        self.ran = True
        return self.keep


def test_all_of_stops_at_the_first_refusal_and_combines_what_is_kept() -> None:
    after = Asks(None)
    composed = AllOf([Size(10), Signed(), after])
    assert refused(composed, arriving(GOOD, verified=False)) == Reason.OVERSIZE
    assert not after.ran
    sooner, later = NOW + timedelta(days=5), NOW + timedelta(days=9)
    verdict = AllOf(
        [Asks(Keep(until=later)), Asks(Keep(until=sooner, tlp="RED")), Asks(Keep(tlp="AMBER"))]
    ).check(arriving(GOOD))
    assert verdict.retain_until == sooner
    assert verdict.meta.tlp == "RED"  # the strictest asked, above the message's own AMBER
    assert AllOf([]).check(arriving(GOOD)).retain_until is None


def test_the_receivers_checks_run_in_their_documented_order() -> None:
    checks = inbound_checks(
        agency=DE,
        max_message_bytes=1 << 20,
        clock_skew=timedelta(minutes=5),
        policy=policy,
        member_key=lambda agency: None,
    )
    assert [type(c).__name__ for c in checks.checks] == [
        "Framed",
        "Size",
        "Signed",
        "Structure",
        "CreatedAt",
        "Agreement",
        "Redress",
        "Forwarding",
    ]
    verdict = checks.check(arriving(GOOD))
    assert verdict.meta.sender == NL and verdict.retain_until == NOW + timedelta(days=30)
    request = from_nl(liaison(to=[DE]), sender=FR)
    assert refused(checks, arriving(request)) == Reason.SENDER_MISMATCH
