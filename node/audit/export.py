"""An audit log export: JSON lines that `accord audit verify --file` checks offline (no I/O here).

    {"audit_log": ORIGIN, "verifier_key": VKEY, "first": A, "last": B, "size": N}
    {"seq": A, "entry": "<canonical entry text>", "leaf_hash": "<base64>", "proof": [...]}
    ...
    {"checkpoint": "<signed note>"}
    ...
    {"consistency": [M, N], "proof": ["<base64>", ...]}

Every checkpoint of the log is included, smallest first, with a consistency proof from each to
the next. An export of the whole log (A = 1, B = the log's size) is checked like the log itself
(`verify_log`: the tree recomputed, every entry located). An export of a range cannot recompute
the tree: each of its entries then carries its inclusion proof in the checkpoint of size N, the
smallest that covers B, and each is checked against it (docs/audit.md).
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from node import merkle
from node.audit.checkpoint import CheckpointError, NoteKey, open_checkpoint
from node.audit.verify import Finding, Kind, LogEntry, Report, verify_log


class ExportError(ValueError):
    """A file that is not an audit log export."""


@dataclass(slots=True)
class Export:
    origin: str
    verifier_key: str
    first: int
    last: int
    size: int  # the checkpoint the entries' proofs lead to (a range export)
    entries: list[LogEntry] = field(default_factory=list)
    proofs: list[list[bytes]] = field(default_factory=list)
    checkpoints: list[bytes] = field(default_factory=list)
    consistency: dict[tuple[int, int], list[bytes]] = field(default_factory=dict)


def _b64(values: Iterable[bytes]) -> list[str]:
    return [base64.b64encode(v).decode() for v in values]


def lines(export: Export) -> Iterator[str]:
    """The export as JSON lines (each with its newline)."""
    head = {
        "audit_log": export.origin,
        "verifier_key": export.verifier_key,
        "first": export.first,
        "last": export.last,
        "size": export.size,
    }
    yield json.dumps(head) + "\n"
    for n, entry in enumerate(export.entries):
        line: dict[str, object] = {
            "seq": entry.seq,
            "entry": entry.data.decode(),
            "leaf_hash": base64.b64encode(entry.leaf_hash or b"").decode(),
        }
        if export.proofs:
            line["proof"] = _b64(export.proofs[n])
        yield json.dumps(line, ensure_ascii=False) + "\n"
    for note in export.checkpoints:
        yield json.dumps({"checkpoint": note.decode()}) + "\n"
    for (old, new), proof in export.consistency.items():
        yield json.dumps({"consistency": [old, new], "proof": _b64(proof)}) + "\n"


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise ExportError(f"{what}: not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise ExportError(f"{what}: not base64: {exc}") from exc


def parse(text: bytes) -> Export:
    """An export from its bytes; ExportError naming the first line that is not one."""
    try:
        rows = [json.loads(line) for line in text.decode().splitlines() if line.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"not JSON lines: {exc}") from exc
    if not rows or not isinstance(rows[0], dict) or "audit_log" not in rows[0]:
        raise ExportError('the first line is not an audit log export\'s ({"audit_log": ...})')
    head = rows[0]
    try:
        export = Export(
            str(head["audit_log"]),
            str(head["verifier_key"]),
            int(head["first"]),
            int(head["last"]),
            int(head["size"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"line 1: {exc}") from exc
    for n, row in enumerate(rows[1:], 2):
        if not isinstance(row, dict):
            raise ExportError(f"line {n}: not a JSON object")
        try:
            if "entry" in row:
                export.entries.append(
                    LogEntry(
                        int(row["seq"]),
                        str(row["entry"]).encode(),
                        _unb64(row["leaf_hash"], f"line {n} leaf_hash"),
                    )
                )
                if "proof" in row:
                    export.proofs.append([_unb64(h, f"line {n} proof") for h in row["proof"]])
            elif "checkpoint" in row:
                export.checkpoints.append(str(row["checkpoint"]).encode())
            elif "consistency" in row:
                old, new = (int(v) for v in row["consistency"])
                export.consistency[old, new] = [_unb64(h, f"line {n} proof") for h in row["proof"]]
            else:
                raise ExportError(f"line {n}: neither an entry, a checkpoint nor a proof")
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ExportError):
                raise
            raise ExportError(f"line {n}: {exc}") from exc
    if export.proofs and len(export.proofs) != len(export.entries):
        raise ExportError("some entries carry an inclusion proof and some do not")
    return export


def verify_export(export: Export, key: NoteKey, *, trusted: Iterable[bytes] = ()) -> Report:
    """Check an export: the whole log as `verify_log` does; a range by its proofs."""
    whole = export.first == 1 and not export.proofs
    if whole:
        return verify_log(export.entries, export.checkpoints, key, trusted=trusted)
    return _verify_range(export, key, list(trusted))


def _verify_range(export: Export, key: NoteKey, trusted: list[bytes]) -> Report:
    findings: list[Finding] = []
    signed = []
    for n, note in enumerate([*export.checkpoints, *trusted], 1):
        try:
            signed.append(open_checkpoint(note, key))
        except CheckpointError as exc:
            findings.append(Finding(Kind.BAD_CHECKPOINT, f"checkpoint #{n} is refused: {exc}"))
    signed.sort(key=lambda c: c.size)
    for a, b in itertools.pairwise(signed):
        if a.size == b.size:
            ok = a.root == b.root
        else:
            proof = export.consistency.get((a.size, b.size))
            ok = proof is not None and merkle.verify_consistency(
                a.size, b.size, proof, a.root, b.root
            )
        if not ok:
            findings.append(
                Finding(
                    Kind.REWRITTEN,
                    f"checkpoint {b.size} does not extend checkpoint {a.size} (the consistency "
                    "proof between them fails or is missing)",
                    seq=a.size + 1,
                    last=b.size,
                    checkpoint=b.size,
                )
            )
    target = next((c for c in signed if c.size == export.size), None)
    if target is None:
        findings.append(
            Finding(Kind.BAD_CHECKPOINT, f"no signed checkpoint of size {export.size} is included")
        )
    expected = export.first
    for entry, proof in zip(export.entries, export.proofs, strict=True):
        if entry.seq != expected:
            kind = Kind.INSERTED if entry.seq < expected else Kind.REMOVED
            findings.append(
                Finding(kind, f"entry {expected} expected, entry {entry.seq} found", seq=expected)
            )
            break
        leaf = merkle.leaf_hash(entry.data)
        if leaf != entry.leaf_hash or not entry.data.endswith(b'"seq":%d}' % entry.seq):
            why = "its bytes no longer hash to its stored leaf hash"
            findings.append(
                Finding(Kind.CHANGED, f"entry {entry.seq} was changed: {why}", entry.seq)
            )
        elif target is not None and not merkle.verify_inclusion(
            leaf, entry.seq - 1, target.size, proof, target.root
        ):
            findings.append(
                Finding(
                    Kind.CHANGED,
                    f"entry {entry.seq} is not the one checkpoint {target.size} signed (its "
                    "inclusion proof fails)",
                    entry.seq,
                    checkpoint=target.size,
                )
            )
        expected += 1
    if not findings and expected - 1 != export.last:
        findings.append(
            Finding(
                Kind.TRUNCATED,
                f"the export ends at entry {expected - 1}, not {export.last}",
                seq=expected,
                last=export.last,
            )
        )
    findings.sort(key=lambda f: (f.seq is None, f.last or f.seq or 0))
    return Report(
        entries=len(export.entries),
        root=target.root if target else merkle.EMPTY_ROOT,
        checkpoints=len(signed),
        sealed=len(export.entries) if target else 0,
        unchecked=0,
        findings=tuple(findings),
    )
