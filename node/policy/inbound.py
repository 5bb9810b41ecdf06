"""What an envelope from a peer must pass to be kept: pure checks, composed.

Like sigstore-python's verification policies: each check looks at one `Inbound` envelope and
either passes or raises one typed `Refused(reason)`; `AllOf` runs a list of them in order and
stops at the first refusal. A check that passes may also narrow what is kept (`Keep`: a shorter
retention, a stricter TLP). No check does I/O: the receiver verifies signatures and stores
before and after running them (node/delivery/receiver.py).

The receiver's list, in order (`inbound_checks`): the frame is an envelope, its size, the
signature result, the content's structure, its creation time, sender, recipient and agreement,
a redress's target and originator (node/policy/redress.py), and a forward's original and the
originator's consent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from node import wire
from node.errors import Reason, Refused
from node.messages import Message, MessageMeta
from node.policy.agreements import REDRESS_TYPES, Policy
from node.policy.onward import check_forwarded, tlp_rank
from node.policy.redress import Decision, Held, check_redress, check_report


def _nothing(message_id: str) -> None:
    return None


class Inbound:
    """One envelope from an authenticated peer, as the checks see it: its bytes, whether it
    came as an envelope at all, whether its signature verified with the peer's key, and the
    message it holds (decoded when a check first asks for it)."""

    __slots__ = ("_message", "content", "framed", "held", "now", "peer", "sent", "verified")

    def __init__(
        self,
        *,
        peer: str,
        content: bytes,
        framed: bool,
        verified: bool,
        now: datetime,
        held: Callable[[str], Held | None] = _nothing,
        sent: Callable[[str], str | None] = _nothing,
    ) -> None:
        """`held(id)`: the message this node holds from the peer under that id, as a redress
        sees it; `sent(id)`: the type of a message this node sent the peer under that id (both
        looked up before the checks, for the redress an envelope names)."""
        self.peer = peer
        self.content = content
        self.framed = framed
        self.verified = verified
        self.now = now
        self.held = held
        self.sent = sent
        self._message: Message | None = None

    @property
    def message(self) -> Message:
        """The content's message; Refused if its structure is not sound."""
        if self._message is None:
            self._message = wire.decode(self.content)
        return self._message


@dataclass(frozen=True, slots=True)
class Keep:
    """What a check that passed asks of the row that keeps the message: until `until` at the
    longest, with a TLP no lower than `tlp` (None and "": nothing asked)."""

    until: datetime | None = None
    tlp: str = ""
    redress: Decision | None = None  # a redress that passed: what it does here


@dataclass(frozen=True, slots=True)
class Verdict:
    """An envelope every check passed: the meta its row keeps (the strictest TLP asked), until
    when (None: no limit), and for a redress what it does to the message it acts on."""

    meta: MessageMeta
    retain_until: datetime | None
    redress: Decision | None = None


class Check(Protocol):
    def check(self, inbound: Inbound) -> Keep | None:
        """Pass (returning what it asks of the row, if anything), or raise Refused."""
        ...


class AllOf:
    """Every check, in order; the first refusal stands."""

    def __init__(self, checks: Sequence[Check]) -> None:
        self.checks = tuple(checks)

    def check(self, inbound: Inbound) -> Verdict:
        asks = [keep for c in self.checks if (keep := c.check(inbound)) is not None]
        meta = inbound.message.meta
        until: datetime | None = None
        redress: Decision | None = None
        for keep in asks:
            redress = redress or keep.redress
            if keep.until is not None and (until is None or keep.until < until):
                until = keep.until
            if keep.tlp and tlp_rank(keep.tlp) > tlp_rank(meta.tlp):
                meta = replace(meta, tlp=keep.tlp)
        return Verdict(meta, until, redress)


class Framed:
    def check(self, inbound: Inbound) -> None:
        if not inbound.framed:
            raise Refused(Reason.MALFORMED, "frame is not an accord.v1.Envelope")


@dataclass(frozen=True, slots=True)
class Size:
    max_bytes: int

    def check(self, inbound: Inbound) -> None:
        if len(inbound.content) > self.max_bytes:
            raise Refused(
                Reason.OVERSIZE,
                f"content is {len(inbound.content)} bytes; this node accepts {self.max_bytes}",
            )


class Signed:
    """The signature check's result (made before the checks: one verification per distinct
    batch root)."""

    def check(self, inbound: Inbound) -> None:
        if not inbound.verified:
            raise Refused(
                Reason.BAD_SIGNATURE, f"signature does not verify with {inbound.peer}'s key"
            )


class Structure:
    def check(self, inbound: Inbound) -> None:
        inbound.message  # noqa: B018 (decoding is the check)


def check_created_at(meta: MessageMeta, *, now: datetime, skew: timedelta) -> None:
    """Refused if the message says it was made further in the future than clocks disagree."""
    if meta.created_at > now + skew:
        raise Refused(
            Reason.CREATED_AT_IN_FUTURE,
            f"created_at {meta.created_at.isoformat()} is more than {skew.total_seconds():.0f} s "
            f"ahead of the receiving clock ({now.isoformat()})",
        )


@dataclass(frozen=True, slots=True)
class CreatedAt:
    skew: timedelta

    def check(self, inbound: Inbound) -> None:
        check_created_at(inbound.message.meta, now=inbound.now, skew=self.skew)


@dataclass(frozen=True, slots=True)
class Agreement:
    """Sender is the authenticated peer, this node a recipient, and an agreement in force
    covers them (node/policy/agreements.py); the agreement sets the retention."""

    policy: Callable[[], Policy]  # the policy of the directory loaded now

    def check(self, inbound: Inbound) -> Keep:
        message = inbound.message
        meta = message.meta
        if meta.type == "RECTIFICATION" and message.forwarded is not None:
            # A relayed rectification's new version is inside the originator's envelope: the
            # field rules of this pair's agreement apply to it all the same.
            inner = wire.decode(message.forwarded.content).meta
            meta = replace(meta, fields_of=inner.fields_of)
        decision = self.policy().check_inbound(meta, peer=inbound.peer, now=inbound.now)
        return Keep(until=decision.retain_until)


@dataclass(frozen=True, slots=True)
class Forwarding:
    """A forward carries its originator's envelope, signed by the originator, with the
    originator's consent where needed and terms at least as strict (node/policy/onward.py);
    the row keeps the stricter markings and the shorter retention of the two. A grant travels
    only inside a forward."""

    receiver: str
    member_key: Callable[[str], ec.EllipticCurvePublicKey | None]  # a member's key, or None

    def check(self, inbound: Inbound) -> Keep | None:
        message = inbound.message
        if message.meta.type in REDRESS_TYPES:
            return None  # a relay of a redress carries the originator's redress (Redress)
        if message.forwarded is None:
            if message.authorisation is not None:
                raise Refused(
                    Reason.MALFORMED, "transfer_authorisation travels only with a forward"
                )
            return None
        inner = message.forwarded
        originator = wire.decode(inner.content).meta.sender
        auth = message.authorisation
        original = check_forwarded(
            outer=message.meta,
            inner=(inner.content, inner.signature, inner.proof),
            authorisation=(auth.content, auth.signature, auth.proof) if auth else None,
            receiver=self.receiver,
            originator_key=self.member_key(originator),
            now=inbound.now,
        )
        return Keep(until=original.retain_until(inbound.now), tlp=original.tlp)


@dataclass(frozen=True, slots=True)
class Redress:
    """A redress acts on a message this node holds from the peer, and comes from (or, relayed,
    carries the signed redress of) that message's originator (node/policy/redress.py); its row
    is kept under the terms and retention of the message it acts on, since a RECTIFICATION
    carries the new version. A REDRESS_REPORT answers a redress this node sent the peer."""

    member_key: Callable[[str], ec.EllipticCurvePublicKey | None]

    def check(self, inbound: Inbound) -> Keep | None:
        message = inbound.message
        meta = message.meta
        if meta.type == "REDRESS_REPORT":
            receipts, relayed_to = wire.report_of(inbound.content)
            check_report(
                message, member_key=self.member_key, receipts=receipts, relayed_to=relayed_to
            )
            if inbound.sent(meta.control_target) not in REDRESS_TYPES:
                raise Refused(
                    Reason.UNKNOWN_TARGET,
                    f"{meta.control_target} is not a redress this node sent {inbound.peer}",
                )
            return None
        if meta.type not in REDRESS_TYPES:
            return None
        decision = check_redress(
            message, peer=inbound.peer, held=inbound.held, member_key=self.member_key
        )
        held = decision.held
        return Keep(until=held.retain_until, tlp=held.markings.tlp, redress=decision)


def inbound_checks(
    *,
    agency: str,
    max_message_bytes: int,
    clock_skew: timedelta,
    policy: Callable[[], Policy],
    member_key: Callable[[str], ec.EllipticCurvePublicKey | None],
) -> AllOf:
    """The receiver's checks, in the order they run."""
    return AllOf(
        [
            Framed(),
            Size(max_message_bytes),
            Signed(),
            Structure(),
            CreatedAt(clock_skew),
            Agreement(policy),
            Redress(member_key),
            Forwarding(agency, member_key),
        ]
    )
