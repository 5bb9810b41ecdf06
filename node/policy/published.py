"""The policy document a node publishes over GetPolicy: what it enforces, from the directory's
agreements and its own configured limits. Every line of it must be true of the code."""

from __future__ import annotations

import json
from datetime import datetime

from certs.directory import TLP_LABELS, Directory, agreement_to_dict
from node.config import LimitsSection, RetentionSection
from node.errors import TRANSIENT


def document(
    *,
    directory: Directory,
    agency: str,
    limits: LimitsSection,
    retention: RetentionSection,
    frame_limit: int,
    now: datetime,
) -> bytes:
    """The JSON document (UTF-8), to be signed under signing.POLICY."""
    mine = [a for a in directory.agreements if agency in a.parties]
    doc = {
        "agency": agency,
        "federation": directory.federation,
        "directory_serial": directory.serial,
        "issued_at": now.isoformat(),
        "purposes": {p.code: p.description for p in directory.purposes},
        "agreements": [agreement_to_dict(a) for a in mine],
        "retention": {
            "rule": "retain_until = min(sender's retention, agreement maximum, local maximum)",
            "local_maximum_days": {
                "all": retention.max_days or None,
                "by_purpose": dict(sorted(retention.purpose.items())),
                "by_type": dict(sorted(retention.type.items())),
            },
            "expiry": "from retain_until on, a message is refused (EXPIRED) for reading, "
            "forwarding and replying, unless under a legal hold; a sweep every "
            f"{retention.sweep_seconds:g} s erases it",
            "erasure": "crypto-shredding: ciphertext and wrapped data key deleted, tombstone "
            "(id, sender, digest, times, reason, actor) kept; each data key is wrapped by a key "
            "of its UTC expiry day kept outside the database, destroyed by the first sweep "
            "after that day; an erasure before expiry (sunset rule, erasure on request) "
            "gives the bucket a new key and destroys the old one at once (or at the next sweep "
            "while a row sealed under it is still being stored)",
            "legal_hold": "a supervisor's hold on a message or correlation id suspends expiry "
            "until released",
            "after_sunset": "per agreement: keep (each message keeps its retain_until) or erase "
            "(erased at the next sweep)",
            "forward": "a forward states the forwarder's own retain_until as a time, so the "
            "third agency keeps it no longer",
        },
        "directory_valid_until": directory.valid_until.isoformat(),
        "handling": {
            "codes": ["H0", "H1", "H2", "H3"],
            "tlp": list(TLP_LABELS),
            "required": "every message but a control message states its TLP, at least one "
            "handling code and a retention (else MARKINGS_MISSING)",
            "rule": "TLP and handling codes at most the agreement's",
        },
        "onward_transfer": {
            "rule": "per the original's onward rule; TLP:RED, TLP:AMBER+STRICT and H2 "
            "always need the originator's grant",
            "forward": "carries the originator's own envelope, never a forward, with terms "
            "at least as strict as the original's (else MARKINGS_LOOSENED)",
            "grant": "only the originator's counts: sent to the forwarding agency alone, "
            "naming the original, the third agency and the purpose, until its valid_until; "
            "the newest for the same original, forwarder and third agency decides",
        },
        "redress": {
            "who": "only the originator, the signer of the message's innermost envelope "
            "(else NOT_ORIGINATOR); a redress of nothing this node holds from its sender is "
            "refused UNKNOWN_TARGET",
            "applied": "ERASURE_REQUEST and INCIDENT_RETRACT erase the message, RECTIFICATION "
            "replaces it and erases the old version, HANDLING_UPDATE only tightens (else "
            "MARKINGS_LOOSENED); from the commit that stores the redress, an erased or "
            "retracted message is refused (REDRESSED) for reading, forwarding and replying; "
            "under a legal hold it is kept (HELD)",
            "relayed": "to every agency this node forwarded the message to, with the "
            "originator's envelope; each holder's signed receipt says what it did, and is "
            "reported back towards the originator hop by hop",
            "after_sunset": "erasure, retraction and handling updates still flow; a "
            "rectification does not",
        },
        "receipts": {
            "deferred": sorted(TRANSIENT),
            "rule": "only decisions about verified content are final; a DEFERRED receipt "
            "keeps nothing and the sender sends again",
        },
        "limits": {
            "max_message_bytes": limits.max_message_bytes,
            "max_frame_bytes": frame_limit,
            "max_envelopes_per_frame": limits.max_envelopes_per_frame,
            "max_streams_per_peer": limits.max_streams_per_peer,
            "refusals_per_second": limits.refusals_per_second,
            "refusal_burst": limits.refusal_burst,
            "refusal_cooldown_seconds": limits.refusal_cooldown_seconds,
            "rejection_retention_days": limits.rejection_retention_days,
            "max_clock_skew_seconds": limits.max_clock_skew_seconds,
            "peer_bytes_per_day": limits.peer_bytes_per_day,
            "peer_bytes_burst": limits.peer_bytes_burst,
        },
    }
    return json.dumps(doc, indent=2, sort_keys=True).encode()
