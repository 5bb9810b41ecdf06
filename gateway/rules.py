"""What the compose form offers: the recipients, purposes, types, TLP, handling, onward rules
and retention that the agreements in force (from the node's signed policy) and the user's role
and clearances allow, each choice not offered with the reason why.

Pure: no I/O. The node checks every message again when it is sent (and refuses it with a reason
code); this only keeps people from composing what would be refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from certs.directory import (
    HANDLING_CODES,
    ONWARD_RULES,
    TLP_LABELS,
    TLP_ORDER,
    Agreement,
    agreement_from_dict,
)
from node.wire import CONTROL_TYPES, MESSAGE_TYPES

OPERATIONAL = frozenset({"liaison_officer", "supervisor"})


@dataclass(frozen=True, slots=True)
class Option:
    value: str
    offered: bool
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "offered": self.offered, "why": self.why}


def _ids(terms: Iterable[Agreement]) -> str:
    return ", ".join(t.id for t in terms)


def _recipient(code: str, me: str, agreements: Sequence[Agreement], now: datetime) -> Option:
    covering = [a for a in agreements if me in a.parties and code in a.parties]
    if any(a.valid_from <= now < a.valid_until for a in covering):
        return Option(code, True)
    if not covering:
        return Option(code, False, f"no cooperation agreement between {me} and {code}")
    a = covering[0]
    if now < a.valid_from:
        return Option(code, False, f"agreement {a.id} is in force from {a.valid_from:%Y-%m-%d}")
    return Option(code, False, f"agreement {a.id} ended (sunset) on {a.valid_until:%Y-%m-%d}")


def compose_options(
    *,
    policy: dict[str, Any],
    members: Sequence[str],
    me: str,
    role: str,
    clearances: Iterable[str],
    now: datetime,
    recipient: str | None,
) -> dict[str, Any]:
    # The policy document states agreements as the directory does.
    agreements = [
        agreement_from_dict(a, f"policy.agreements[{i}]")
        for i, a in enumerate(policy.get("agreements", []))
    ]
    recipients = [_recipient(m, me, agreements, now) for m in sorted(members) if m != me]
    chosen = next((r for r in recipients if r.value == recipient and r.offered), None)
    live = (
        [
            a
            for a in agreements
            if me in a.parties and recipient in a.parties and a.valid_from <= now < a.valid_until
        ]
        if chosen
        else []
    )
    cleared = frozenset(clearances)

    def judged(
        values: Iterable[str], allows: Any, refusal: str, extra: Any = None
    ) -> list[dict[str, Any]]:
        """Each value: offered if an agreement in force allows it (and `extra` has no
        objection), else the reason."""
        out = []
        for value in values:
            if role not in OPERATIONAL:
                out.append(Option(value, False, "sending needs a liaison officer or supervisor"))
                continue
            if chosen is None:
                out.append(Option(value, False, "choose a recipient first"))
                continue
            by = [a for a in live if allows(a, value)]
            if not by:
                out.append(Option(value, False, refusal.format(value=value, ids=_ids(live))))
                continue
            objection, note = extra(value, by) if extra else ("", "")
            out.append(Option(value, not objection, objection or note))
        return [o.as_dict() for o in out]

    def purpose_check(value: str, by: list[Agreement]) -> tuple[str, str]:
        if value not in cleared:
            return "you are not cleared for this purpose", ""
        return "", ""

    def type_check(value: str, by: list[Agreement]) -> tuple[str, str]:
        if value in CONTROL_TYPES:
            return "control messages are sent from the message they act on", ""
        held = [a for a in by if value in a.approval_required]
        if held and len(held) == len(by):
            return "", f"held until a supervisor approves it ({_ids(held)})"
        return "", ""

    vocabulary = sorted(policy.get("purposes", {}))
    return {
        "recipients": [r.as_dict() for r in recipients],
        "recipient": chosen.value if chosen else None,
        "purposes": judged(
            vocabulary,
            lambda a, v: v in a.purposes,
            "not a purpose of agreement {ids}",
            purpose_check,
        ),
        "types": judged(
            MESSAGE_TYPES,
            lambda a, v: v in a.message_types,
            "agreement {ids} does not permit {value} messages",
            type_check,
        ),
        "tlp": judged(
            TLP_LABELS,  # offered in the TLP 2.0 spelling, as every output shows it
            lambda a, v: TLP_LABELS.index(v) <= TLP_ORDER.index(a.max_tlp),
            "above the highest TLP agreement {ids} allows",
        ),
        "handling_codes": judged(
            HANDLING_CODES,
            lambda a, v: v in a.handling_codes,
            "agreement {ids} does not permit handling code {value}",
        ),
        "onward_transfer": judged(
            ONWARD_RULES,
            lambda a, v: ONWARD_RULES.index(v) <= ONWARD_RULES.index(a.onward_transfer),
            "looser than agreement {ids} allows",
        ),
        "max_retention_days": max((a.max_retention_days for a in live), default=None),
        "agreements": [a.id for a in live],
    }
