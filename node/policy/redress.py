"""Redress: what an originator's ERASURE_REQUEST, RECTIFICATION, INCIDENT_RETRACT or
HANDLING_UPDATE may do to a message a node holds, and what a holder answers.

Only the originator redresses: the agency whose signature covers the message (for a forward,
the innermost envelope's signer; docs/redress.md). A redress reaches an onward holder as a
relay: the holder that forwarded the message sends the originator's redress envelope on,
unchanged, inside its own, so every hop checks the originator's signature and that the message
it holds from that holder carries the originator's envelope the redress names. No I/O here: the
receiver looks the held message up before the checks run (node/delivery/receiver.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric import ec

from certs.identity import AGENCY_CODE
from node import signing, wire
from node.errors import Reason, Refused
from node.messages import Message, MessageMeta, RedressOutcome, SignedReceipt
from node.policy.agreements import REDRESS_TYPES
from node.policy.onward import tlp_rank

# What each redress does to the message it acts on (RedressOutcome.result).
RESULT_OF = {
    "ERASURE_REQUEST": "ERASED",
    "INCIDENT_RETRACT": "RETRACTED",
    "RECTIFICATION": "REPLACED",
    "HANDLING_UPDATE": "HANDLING_UPDATED",
}
# Results after which the message is not read, forwarded or replied to any more.
GONE = frozenset({"ERASED", "RETRACTED"})
# Results whose old body is erased.
ERASING = frozenset({"ERASED", "RETRACTED", "REPLACED"})
# The control-body fields each redress may carry (anything else is refused: an erasure is not a
# way to carry data).
_FIELDS = {
    "ERASURE_REQUEST": frozenset({"target_message_id", "reason"}),
    "INCIDENT_RETRACT": frozenset({"target_message_id", "reason"}),
    "HANDLING_UPDATE": frozenset(
        {"target_message_id", "reason", "tlp", "handling_codes", "handling_conditions"}
    ),
    "RECTIFICATION": frozenset({"target_message_id", "reason", "corrected_incident"}),
}
_INCIDENTS = frozenset({"INCIDENT_PUBLISH", "INCIDENT_UPDATE"})
# A redress's free text (its reason, added conditions) is short: it explains, it carries no file.
MAX_TEXT = 500
# A report names at most this many holders (receipts and relays together).
MAX_REPORTED = 256


@dataclass(frozen=True, slots=True)
class Markings:
    """The handling terms in force for a held message: its own, tightened by any update."""

    tlp: str
    handling_codes: tuple[str, ...]
    handling_conditions: str

    def tightened(self, meta: MessageMeta) -> Markings:
        """These terms with a HANDLING_UPDATE's applied (MARKINGS_LOOSENED if it would lower
        the TLP: an update only tightens; codes and conditions are only ever added)."""
        tlp = self.tlp
        if meta.new_tlp:
            if tlp_rank(meta.new_tlp) < tlp_rank(self.tlp):
                raise Refused(
                    Reason.MARKINGS_LOOSENED,
                    f"a handling update only tightens: TLP {meta.new_tlp} is below the "
                    f"message's {self.tlp}",
                )
            tlp = meta.new_tlp
        codes = self.handling_codes + tuple(
            c for c in meta.new_handling_codes if c not in self.handling_codes
        )
        conditions = self.handling_conditions
        added = meta.new_handling_conditions.strip()
        if added and added not in conditions:
            conditions = f"{conditions}; {added}" if conditions else added
        return Markings(tlp, codes, conditions)


@dataclass(frozen=True, slots=True)
class Held:
    """A message this node holds, as a redress sees it: the row (its id and the peer it came
    from), whose envelope the originator signed and under which id, and its terms now."""

    message_id: str
    sender: str
    originator: str
    origin_id: str
    type: str
    purpose: str
    markings: Markings
    retain_until: datetime | None
    result: str = ""  # the last redress applied ("" none)
    hold_reference: str = ""  # a legal hold that keeps it from erasure ("" none)
    # Only a tombstone is left (erased at expiry, say): no envelope to check an originator
    # against, and nothing a redress could change.
    tombstone: bool = False

    @property
    def gone(self) -> bool:
        return self.result in GONE


def held_of(
    message: Message,
    *,
    row_tlp: str,
    retain_until: datetime | None,
    result: str = "",
    markings: Markings | None = None,
) -> Held:
    """A stored message (decoded) as a redress sees it; `markings`: the terms a handling
    update put in force (None: the message's own, the strictest of row, content and
    original)."""
    meta = message.meta
    original = wire.decode(message.forwarded.content).meta if message.forwarded else meta
    if markings is None:
        tlp = max((row_tlp, meta.tlp, original.tlp), key=tlp_rank)
        codes = meta.handling_codes + tuple(
            c for c in original.handling_codes if c not in meta.handling_codes
        )
        markings = Markings(tlp, codes, meta.handling_conditions)
    return Held(
        message_id=meta.message_id,
        sender=meta.sender,
        originator=original.sender,
        origin_id=original.message_id,
        type=original.type,
        purpose=meta.purpose,
        markings=markings,
        retain_until=retain_until,
        result=result,
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """A redress that passed: the message it acts on, the originator's redress (the inner one
    of a relay), what it does there and the terms in force afterwards."""

    held: Held
    redress: MessageMeta
    outcome: RedressOutcome
    markings: Markings


def redress_target(message: Message) -> str:
    """The id of the held message a redress (or a relay of one) names."""
    return message.meta.control_target


def check_redress(
    message: Message,
    *,
    peer: str,
    held: Callable[[str], Held | None],
    member_key: Callable[[str], ec.EllipticCurvePublicKey | None],
) -> Decision:
    """Whether `peer` may have this redress applied here, and what it does; Refused
    otherwise (UNKNOWN_TARGET, NOT_ORIGINATOR, REDRESS_NOT_APPLICABLE, MARKINGS_LOOSENED).
    `held(id)`: the message this node holds from `peer` under that id, or None."""
    outer = message.meta
    redress = outer
    if message.forwarded is not None:
        inner = message.forwarded
        redress = wire.decode(inner.content).meta
        key = member_key(redress.sender)
        if key is None:
            raise Refused(Reason.UNKNOWN_SENDER, f"originator {redress.sender} is not a member")
        if not signing.verify(key, inner.content, inner.signature, signing.ENVELOPE, inner.proof):
            raise Refused(Reason.BAD_SIGNATURE, "the relayed redress's signature does not verify")
        if redress.type != outer.type or redress.forwarded or message.authorisation:
            raise Refused(
                Reason.MALFORMED, "a relay carries the originator's own redress, of its type"
            )
        if outer.control_fields - {"target_message_id", "reason"}:
            raise Refused(Reason.MALFORMED, "a relay's own body names only its target")
    elif message.authorisation is not None:
        raise Refused(Reason.MALFORMED, "transfer_authorisation travels only with a forward")
    allowed = _FIELDS[redress.type]
    if max(len(redress.control_reason), len(redress.new_handling_conditions)) > MAX_TEXT:
        raise Refused(
            Reason.REDRESS_NOT_APPLICABLE,
            f"a redress's reason and conditions are at most {MAX_TEXT} characters each",
        )
    extra = sorted(redress.control_fields - allowed)
    if extra:
        raise Refused(
            Reason.REDRESS_NOT_APPLICABLE,
            f"{redress.type} carries {', '.join(extra)}; it may carry only "
            f"{', '.join(sorted(allowed))}",
        )
    target = held(outer.control_target)
    if target is None:
        raise Refused(
            Reason.UNKNOWN_TARGET,
            f"{outer.control_target} is not a message this node holds from {peer}: "
            "there is nothing here to redress",
        )
    if target.tombstone:
        # Erased already: the answer says so, and the redress is passed on to whom this node
        # forwarded the originator's message (each of them checks the originator itself).
        target = replace(
            target,
            originator=redress.sender,
            origin_id=redress.control_target,
            type="",
            result="",
        )
        outcome = RedressOutcome(
            redress_id=redress.message_id,
            originator=redress.sender,
            target_message_id=redress.control_target,
            held_as=target.message_id,
            result="ERASED",
        )
        return Decision(held=target, redress=redress, outcome=outcome, markings=target.markings)
    if target.originator != redress.sender or (
        message.forwarded is None and target.sender != redress.sender
    ):
        raise Refused(
            Reason.NOT_ORIGINATOR,
            f"only {target.originator}, the originator of {target.origin_id}, may redress it "
            f"({redress.sender} asked)",
        )
    if redress.control_target != target.origin_id:
        raise Refused(
            Reason.NOT_ORIGINATOR,
            f"the originator's redress names {redress.control_target}, but the message held as "
            f"{target.message_id} is its {target.origin_id}",
        )
    if outer.purpose != target.purpose:
        raise Refused(
            Reason.REDRESS_NOT_APPLICABLE,
            f"a redress is made under its message's purpose {target.purpose!r}, "
            f"not {outer.purpose!r}",
        )
    if target.type in REDRESS_TYPES or target.type == "REDRESS_REPORT":
        raise Refused(Reason.REDRESS_NOT_APPLICABLE, "a redress acts on a message, not a redress")
    if (
        not target.gone
        and redress.type in ("INCIDENT_RETRACT", "RECTIFICATION")
        and target.type not in _INCIDENTS
    ):
        raise Refused(
            Reason.REDRESS_NOT_APPLICABLE,
            f"{redress.type} acts on an incident; {target.origin_id} is a {target.type}",
        )
    if redress.type == "RECTIFICATION" and "corrected_incident" not in redress.control_fields:
        raise Refused(Reason.REDRESS_NOT_APPLICABLE, "a RECTIFICATION carries the new version")
    if redress.type == "HANDLING_UPDATE" and not (
        redress.new_tlp or redress.new_handling_codes or redress.new_handling_conditions.strip()
    ):
        raise Refused(Reason.REDRESS_NOT_APPLICABLE, "a HANDLING_UPDATE names its new terms")
    markings = target.markings
    result = RESULT_OF[redress.type]
    if target.gone:
        result = target.result  # nothing left to act on: said as it is
    elif result in ERASING and target.hold_reference:
        result = "HELD"
    elif redress.type == "HANDLING_UPDATE":
        markings = markings.tightened(redress)
    outcome = RedressOutcome(
        redress_id=redress.message_id,
        originator=redress.sender,
        target_message_id=target.origin_id,
        held_as=target.message_id,
        result=result,
        tlp=markings.tlp,
        handling_codes=markings.handling_codes,
        handling_conditions=markings.handling_conditions,
        hold_reference=target.hold_reference if result == "HELD" else "",
    )
    return Decision(held=target, redress=redress, outcome=outcome, markings=markings)


def check_report(
    message: Message,
    *,
    member_key: Callable[[str], ec.EllipticCurvePublicKey | None],
    receipts: Sequence[SignedReceipt],
    relayed_to: Sequence[str],
) -> None:
    """A REDRESS_REPORT carries only holders' receipts, each signed by the holder it names and
    answering a redress, and "RELAYER>HOLDER" agency pairs: nothing else travels back (it flows
    after sunset, like the redress it answers)."""
    meta = message.meta
    if message.forwarded is not None or message.authorisation is not None:
        raise Refused(Reason.MALFORMED, "a redress report carries no envelope")
    extra = meta.control_fields - {"target_message_id", "holder_receipts", "relayed_to"}
    if extra:
        raise Refused(
            Reason.REDRESS_NOT_APPLICABLE,
            f"a redress report carries only receipts and relays, not {', '.join(sorted(extra))}",
        )
    if len(receipts) + len(relayed_to) > MAX_REPORTED:
        raise Refused(Reason.OVERSIZE, f"a redress report names at most {MAX_REPORTED} holders")
    if not all(
        len(pair := r.split(">")) == 2 and all(AGENCY_CODE.match(code) for code in pair)
        for r in relayed_to
    ):
        raise Refused(Reason.MALFORMED, "relayed_to holds RELAYER>HOLDER agency codes")
    for receipt in receipts:
        info = wire.parse_receipt(receipt.content)
        key = member_key(info.receiver)
        if key is None:
            raise Refused(Reason.UNKNOWN_SENDER, f"holder {info.receiver} is not a member")
        if not signing.verify(
            key, receipt.content, receipt.signature, signing.RECEIPT, receipt.proof
        ):
            raise Refused(
                Reason.MALFORMED, f"a receipt in the report is not signed by {info.receiver}"
            )
        if info.redress is None and info.accepted:
            raise Refused(Reason.MALFORMED, "a receipt in the report answers no redress")
