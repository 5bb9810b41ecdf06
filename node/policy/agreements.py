"""Inbound and outbound checks against cooperation agreements.

`Policy.check_inbound(meta, peer=..., now=...)` returns a Decision or raises `Refused(reason)`;
the sender runs `check_outbound` with the same rules before queueing, so a message that would be
refused never leaves, and the local refusal carries the same reason code the peer would give.
Nothing here does I/O: the directory and clock reading are passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from certs.directory import ONWARD_RULES, TLP_ORDER, Agreement, Directory, tlp_label
from node.errors import Reason, Refused
from node.messages import MessageMeta

# Control messages by which an originator narrows or removes what a receiver holds. They act on
# a message the agreement already let through (node/policy/redress.py checks the target), so
# they need not be listed among its message types.
REDRESS_TYPES = frozenset(
    {"ERASURE_REQUEST", "RECTIFICATION", "INCIDENT_RETRACT", "HANDLING_UPDATE"}
)
# Of those, the ones that only reduce processing (and carry no personal data: their bodies are
# limited to the target, a reason and stricter terms), with the holders' reports on them: the
# provider's right to have its data erased or restricted outlives the agreement it was sent
# under, so these need an agreement between the parties but not one still in force. A
# RECTIFICATION carries a new version of the data: it flows only while the agreement is in
# force, and its corrected incident meets the agreement's field rules like any incident.
REDUCING_TYPES = frozenset(
    {"ERASURE_REQUEST", "INCIDENT_RETRACT", "HANDLING_UPDATE", "REDRESS_REPORT"}
)


@dataclass(frozen=True, slots=True)
class Decision:
    agreement: Agreement
    retain_until: datetime | None
    needs_approval: bool


@dataclass(frozen=True, slots=True)
class Policy:
    directory: Directory
    agency: str
    local_max_retention_days: int | None = None
    # This node's own maximum per purpose code and per message type (node TOML [retention]).
    local_max_by_purpose: Mapping[str, int] = field(default_factory=dict)
    local_max_by_type: Mapping[str, int] = field(default_factory=dict)

    def local_max_days(self, meta: MessageMeta) -> int | None:
        """The shortest of this node's own limits that applies to `meta` (None: none)."""
        limits = [
            d
            for d in (
                self.local_max_retention_days,
                self.local_max_by_purpose.get(meta.purpose),
                self.local_max_by_type.get(meta.type),
            )
            if d is not None
        ]
        return min(limits) if limits else None

    def check_inbound(self, meta: MessageMeta, *, peer: str, now: datetime) -> Decision:
        if meta.sender != peer:
            raise Refused(
                Reason.SENDER_MISMATCH,
                f"sender field {meta.sender!r} is not the authenticated peer {peer!r}",
            )
        if self.agency not in meta.recipients:
            raise Refused(Reason.WRONG_RECIPIENT, f"{self.agency} is not among the recipients")
        return self._check_pair(meta, sender=peer, receiver=self.agency, now=now)

    def check_outbound(
        self, meta: MessageMeta, *, now: datetime, thread: frozenset[str] = frozenset()
    ) -> Decision:
        """Run the receiver's checks for every recipient; all must pass under one agreement.

        `thread` holds the types of the received messages this one answers or shares a thread
        with (in_reply_to, correlation id): an agreement can require approval of e.g.
        `REPLY>HIT_NOTIFICATION`, a reply releasing data after a hit, however it names the hit.
        """
        decision: Decision | None = None
        for recipient in meta.recipients:
            if recipient == self.agency:
                raise Refused(Reason.WRONG_RECIPIENT, "a node does not send to itself")
            if self.directory.member(recipient) is None:
                raise Refused(Reason.WRONG_RECIPIENT, f"{recipient} is not a federation member")
            d = self._check_pair(
                meta, sender=self.agency, receiver=recipient, now=now, thread=thread
            )
            if decision is not None and d.agreement.id != decision.agreement.id:
                raise Refused(
                    Reason.NO_AGREEMENT,
                    "recipients fall under different agreements; send one message per agreement",
                )
            decision = d
        if decision is None:
            raise Refused(Reason.MALFORMED, "recipients is empty")
        return decision

    # ---- the rules --------------------------------------------------------------------------

    def _check_pair(
        self,
        meta: MessageMeta,
        *,
        sender: str,
        receiver: str,
        now: datetime,
        thread: frozenset[str] = frozenset(),
    ) -> Decision:
        if meta.purpose not in self.directory.purpose_codes():
            raise Refused(
                Reason.UNKNOWN_PURPOSE,
                f"purpose {meta.purpose!r} is not in the federation's purpose vocabulary",
            )
        candidates = [
            a
            for a in self.directory.agreements
            if a.covers(sender, receiver) and (not meta.agreement_id or a.id == meta.agreement_id)
        ]
        if not candidates:
            named = f" {meta.agreement_id!r}" if meta.agreement_id else ""
            raise Refused(Reason.NO_AGREEMENT, f"no agreement{named} covers {sender} -> {receiver}")
        first_error: Refused | None = None
        for agreement in candidates:
            try:
                return self._check_agreement(meta, agreement, now=now, thread=thread)
            except Refused as exc:
                first_error = first_error or exc
        assert first_error is not None
        raise first_error

    def _check_agreement(
        self,
        meta: MessageMeta,
        a: Agreement,
        *,
        now: datetime,
        thread: frozenset[str],
    ) -> Decision:
        if meta.type not in REDUCING_TYPES:
            if now < a.valid_from:
                raise Refused(
                    Reason.AGREEMENT_NOT_YET_VALID,
                    f"agreement {a.id} is in force from {a.valid_from.isoformat()}",
                )
            if now >= a.valid_until:
                raise Refused(
                    Reason.AGREEMENT_EXPIRED,
                    f"agreement {a.id} ended (sunset) at {a.valid_until.isoformat()}",
                )
            if meta.type not in a.message_types and meta.type not in REDRESS_TYPES:
                raise Refused(
                    Reason.TYPE_NOT_PERMITTED,
                    f"agreement {a.id} does not permit {meta.type} messages",
                )
        if meta.purpose not in a.purposes:
            raise Refused(
                Reason.PURPOSE_NOT_PERMITTED,
                f"agreement {a.id} does not permit the purpose {meta.purpose!r}",
            )
        agreement_limit = now + timedelta(days=a.max_retention_days)
        sender_limit = meta.retain_until(now)
        if sender_limit is not None and sender_limit > agreement_limit + timedelta(minutes=5):
            raise Refused(
                Reason.RETENTION_EXCEEDS_AGREEMENT,
                f"retention asked ({_days(meta)}) exceeds agreement {a.id}'s maximum of "
                f"{a.max_retention_days} days",
            )
        if meta.tlp != "UNSPECIFIED" and TLP_ORDER.index(meta.tlp) > TLP_ORDER.index(a.max_tlp):
            raise Refused(
                Reason.TLP_EXCEEDS_AGREEMENT,
                f"TLP:{tlp_label(meta.tlp)} is above agreement {a.id}'s maximum "
                f"TLP:{tlp_label(a.max_tlp)}",
            )
        extra = [h for h in meta.handling_codes if h not in a.handling_codes]
        if extra:
            raise Refused(
                Reason.HANDLING_EXCEEDS_AGREEMENT,
                f"handling code(s) {', '.join(extra)} not permitted by agreement {a.id}",
            )
        if meta.onward_transfer != "UNSPECIFIED" and ONWARD_RULES.index(
            meta.onward_transfer
        ) > ONWARD_RULES.index(a.onward_transfer):
            raise Refused(
                Reason.ONWARD_TRANSFER_EXCEEDS_AGREEMENT,
                f"onward transfer {meta.onward_transfer} is looser than agreement {a.id} allows "
                f"({a.onward_transfer})",
            )
        allowed = a.allowed_fields.get(meta.purpose)
        if allowed is not None and meta.incident_fields:
            beyond = sorted(
                f
                for f in meta.incident_fields
                if f not in allowed and f.split(".")[0] not in allowed
            )
            if beyond:
                raise Refused(
                    Reason.FIELDS_NOT_PERMITTED,
                    f"for purpose {meta.purpose!r} agreement {a.id} allows only "
                    f"{', '.join(allowed)}; the message also carries {', '.join(beyond)}",
                )
        limits = [agreement_limit]
        if sender_limit is not None:
            limits.append(sender_limit)
        local = self.local_max_days(meta)
        if local is not None:
            limits.append(now + timedelta(days=local))
        return Decision(
            agreement=a,
            retain_until=min(limits),
            needs_approval=meta.type in a.approval_required
            or _answers_held(meta.type, thread, a.approval_required),
        )


# Messages that act on an earlier message's terms, consent or existence and carry no data of
# their own (a reason at most): they never release data in answer to anything, and redress
# must not wait for a second person. A RECTIFICATION carries a corrected body: not here.
_CARRY_NO_DATA = frozenset(
    {
        "HANDLING_UPDATE",
        "ERASURE_REQUEST",
        "INCIDENT_RETRACT",
        "TRANSFER_AUTHORISATION_REQUEST",
        "TRANSFER_AUTHORISATION_GRANT",
    }
)


def _answers_held(type_: str, thread: frozenset[str], rules: Sequence[str]) -> bool:
    """Whether a message answers, in its thread, a received message whose answers the
    agreement holds for a second person (`TYPE>REPLIED`). Decided by what the message does,
    not the type it claims: any message that can carry data (everything but `_CARRY_NO_DATA`)
    sent into a REPLIED message's thread is held, so a hit answered as a CLARIFICATION or a
    SPONTANEOUS_PROVISION waits as a REPLY does."""
    if type_ in _CARRY_NO_DATA:
        return False
    answered = {rule.partition(">")[2] for rule in rules if ">" in rule}
    return bool(answered & thread)


def _days(meta: MessageMeta) -> str:
    if meta.retention_days is not None:
        return f"{meta.retention_days} days"
    if meta.retention_until is not None:
        return f"until {meta.retention_until.isoformat()}"
    return "unspecified"
