"""The transparency report (`accord report`): what this node did in a window, as aggregates
only. No message id, user name, justification or content ever enters it; peers appear as
agency codes and purposes as the federation's purpose codes, which are public.

Built from this node's own records (node/store/report.py and the requests' progress, node/
deadlines.py); rendered as JSON or as the Markdown an agency would publish.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from node import deadlines
from node.store import StoredMessage
from node.store.report import Counts, ReportStore

REDRESS_TYPES = ("ERASURE_REQUEST", "RECTIFICATION", "INCIDENT_RETRACT")
_REQUEST_OUTCOMES = ("answered_in_time", "answered_late", "overdue", "open")


@dataclass(frozen=True, slots=True)
class Report:
    agency: str
    since: datetime
    until: datetime
    as_of: datetime  # when the requests' state was judged
    figures: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "agency": self.agency,
            "from": self.since.isoformat(),
            "to": self.until.isoformat(),
            "as_of": self.as_of.isoformat(),
            **self.figures,
        }


def _requests(
    progress: Sequence[tuple[StoredMessage, str, deadlines.Progress]],
    since: datetime,
    until: datetime,
    as_of: datetime,
) -> dict[str, Counts]:
    """Requests received (owed by this node) and sent (owed to it, once per recipient) in the
    window, by how they were answered."""
    out = {side: dict.fromkeys(_REQUEST_OUTCOMES, 0) for side in ("received", "sent")}
    for m, _, p in progress:
        if not since <= m.received_at < until:
            continue
        side = out["received" if m.direction == "in" else "sent"]
        on_time = p.on_time()
        if on_time is None:
            side["overdue" if p.overdue(as_of) else "open"] += 1
        else:
            side["answered_in_time" if on_time else "answered_late"] += 1
    return out


async def build(
    *,
    agency: str,
    store: ReportStore,
    progress: Sequence[tuple[StoredMessage, str, deadlines.Progress]],
    since: datetime,
    until: datetime,
    now: datetime,
) -> Report:
    sent = await store.messages("out", since, until)
    received = await store.messages("in", since, until)
    actions = await store.actions(since, until)

    def count(action: str, *outcomes: str) -> int:
        return sum(n for (a, o), n in actions.items() if a == action and o in outcomes)

    local_refusals: Counts = {}
    for (action, outcome), n in sorted(actions.items()):
        if outcome == "refused":
            local_refusals[action] = local_refusals.get(action, 0) + n
    as_of = min(now, until)
    figures = {
        "messages": {
            "sent": _messages(sent),
            "received": _messages(received),
        },
        "refusals": {
            "by_this_node": await store.refused_by_us(since, until),
            "by_peers": await store.refused_by_peers(since, until),
            "of_local_users": local_refusals,
        },
        "reads": {"granted": count("consult", "granted"), "refused": count("consult", "refused")},
        "evidence_exports": count("export-evidence", "granted"),
        "forwards": count("transfer", "queued", "held"),
        "erasures": {"sent": 0, "received": 0}
        | _renamed(await store.erasures(since, until), {"out": "sent", "in": "received"}),
        "redress": {
            kind: {
                "sent": sent["by_type"].get(kind, 0),
                "received": received["by_type"].get(kind, 0),
            }
            for kind in REDRESS_TYPES
        },
        "holds": {
            "held_for_approval": count("send", "held") + count("transfer", "held"),
            "legal_holds": {
                "placed": count("hold", "granted"),
                "released": count("release", "granted"),
            },
        },
        "approvals": {"approved": 0, "rejected": 0, "pending": 0}
        | await store.approvals(since, until),
        "requests": _requests(progress, since, until, as_of),
    }
    return Report(agency, since, until, as_of, figures)


def _messages(counts: dict[str, Counts]) -> dict[str, Any]:
    return {
        "total": counts["total"].get("total", 0),
        "by_purpose": dict(sorted(counts["by_purpose"].items())),
        "by_type": dict(sorted(counts["by_type"].items())),
        "by_peer": dict(sorted(counts["by_peer"].items())),
    }


def _renamed(counts: Counts, names: Mapping[str, str]) -> Counts:
    return {names[k]: n for k, n in counts.items() if k in names}


# ---- Markdown -------------------------------------------------------------------------------


def _table(title: str, counts: Mapping[str, int], what: str) -> list[str]:
    lines = [f"**{title}**", ""]
    if not counts:
        return [*lines, "None.", ""]
    lines += [f"| {what} | count |", "| --- | ---: |"]
    lines += [f"| {key} | {n} |" for key, n in counts.items()]
    return [*lines, ""]


def to_markdown(doc: Mapping[str, Any]) -> str:
    """The report as an agency would publish it: every figure, no identifier of anything."""
    msgs, ref, req = doc["messages"], doc["refusals"], doc["requests"]
    lines = [
        f"# Transparency report: {doc['agency']}",
        "",
        f"Period: {doc['from']} to {doc['to']} (requests judged as of {doc['as_of']}).",
        "Figures are counts of what this agency's Accord node recorded; they name no person,",
        "message or content.",
        "",
        "## Messages",
        "",
        "| | sent | received |",
        "| --- | ---: | ---: |",
        f"| total | {msgs['sent']['total']} | {msgs['received']['total']} |",
        "",
    ]
    for side in ("sent", "received"):
        m = msgs[side]
        lines += _table(f"{side.capitalize()}, by purpose", m["by_purpose"], "purpose")
        lines += _table(f"{side.capitalize()}, by type", m["by_type"], "type")
        lines += _table(f"{side.capitalize()}, by agency", m["by_peer"], "agency")
    lines += ["## Refusals", ""]
    lines += _table("Messages this agency refused, by reason", ref["by_this_node"], "reason")
    lines += _table("Messages other agencies refused, by reason", ref["by_peers"], "reason")
    lines += _table("Actions refused to this agency's users", ref["of_local_users"], "action")
    lines += [
        "## Requests for information (Directive (EU) 2023/977 time limits)",
        "",
        "| | received | sent |",
        "| --- | ---: | ---: |",
    ]
    for outcome in _REQUEST_OUTCOMES:
        label = outcome.replace("_", " ")
        lines.append(f"| {label} | {req['received'][outcome]} | {req['sent'][outcome]} |")
    erasures, redress, holds = doc["erasures"], doc["redress"], doc["holds"]
    legal = holds["legal_holds"]
    lines += [
        "",
        "## Access, onward transfer, erasure and redress",
        "",
        "| | count |",
        "| --- | ---: |",
        f"| messages read (granted) | {doc['reads']['granted']} |",
        f"| reads refused | {doc['reads']['refused']} |",
        f"| evidence bundles exported | {doc['evidence_exports']} |",
        f"| onward transfers | {doc['forwards']} |",
        f"| messages erased (sent) | {erasures['sent']} |",
        f"| messages erased (received) | {erasures['received']} |",
    ]
    for kind, n in redress.items():
        label = kind.lower().replace("_", " ")
        lines.append(f"| {label}s sent / received | {n['sent']} / {n['received']} |")
    lines += [
        f"| messages held for a second person's approval | {holds['held_for_approval']} |",
        f"| approvals: approved / rejected / pending | {doc['approvals']['approved']} / "
        f"{doc['approvals']['rejected']} / {doc['approvals']['pending']} |",
        f"| legal holds placed / released | {legal['placed']} / {legal['released']} |",
        "",
    ]
    return "\n".join(lines)
