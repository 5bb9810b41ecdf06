"""What an auditor checks over an audit log, without I/O: given the entries in order and the
signed checkpoints, recompute the tree, check every checkpoint's signature and its root at its
size, check each checkpoint is consistent with the next, and name the first problem.

Entry n (seq n, from 1) is leaf n - 1 of an RFC 6962 tree whose leaf data is the entry's
canonical encoding (`canonical`); a checkpoint of size N signs the root over entries 1..N.
Each entry may come with the leaf hash stored beside it; the tree is then built from the stored
hashes, so the entries' bytes are checked against the stored hashes and the stored hashes
against the checkpoints, and each check locates what the other cannot.

How precisely each kind of tampering is located (`Finding.seq` .. `Finding.last`):

- An entry edited in place, its stored hash left alone: that entry (CHANGED).
- An entry edited and its stored hash recomputed (or a log with no stored hashes): the tree
  differs from the first checkpoint after the edit. One hash signs all of a checkpoint's
  entries, so the edit is located only to the entries between the last checkpoint whose root
  still matches and that checkpoint, a + 1 .. b (ALTERED). That holds if checkpoint a is
  genuine; an attacker holding the node's key could have signed it again, which only a
  checkpoint kept outside the node rules out.
- An entry removed: its number is missing (REMOVED, the missing range). Removed with the later
  entries renumbered: the entries after it hash to the stored hashes one place on, so it is
  still named.
- An entry inserted: a number appears twice (INSERTED, naming it); inserted with the later
  entries renumbered: named as above, one place the other way.
- Entries reordered: a number ahead of its place while the number skipped comes later
  (REORDERED, naming the first place out of order); two entries' contents exchanged: each hashes
  to the other's stored hash (REORDERED, naming both).
- The tail cut after a checkpoint: the log ends before the checkpoint's size (TRUNCATED, the
  missing range). A tail cut after the last checkpoint, or together with the checkpoints that
  cover it, leaves no trace in the node: only a checkpoint kept outside that covers it shows it.
- The whole log (or a part) rewritten and re-signed with the node's key: its own checkpoints
  match it. A checkpoint signed earlier and kept outside (`trusted`) does not, and a consistency
  proof from it to a checkpoint of the rewritten log fails (REWRITTEN). So does one of the
  node's own old checkpoints, if the rewrite left it in place. Once the key is known to have
  signed a rewritten history, only trusted checkpoints bound the location: entries between the
  last trusted checkpoint that matches and the checkpoint that does not.
- Entries after the last checkpoint are covered by nothing signed yet (`Report.unsealed`): one
  added there looks like any new entry, and the node's next checkpoint will cover it.

The first removal, insertion or reordering ends what can be compared with checkpoints: every
later position has moved, so a mismatch there would only repeat it. Checkpoints beyond it are
not compared (`Report.unchecked`). Findings are ordered by the last entry of the range they
are located to (the earliest point by which something certainly went wrong), so an entry named
exactly comes before a range that holds it; a problem of a checkpoint itself (malformed, signed
by another key) concerns no entry and comes last. Nothing here raises for a finding.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import NamedTuple

from node import merkle
from node.audit.checkpoint import Checkpoint, CheckpointError, NoteKey, open_checkpoint

FIELDS = (
    "seq",
    "at",
    "actor",
    "action",
    "message_id",
    "peer",
    "purpose",
    "justification",
    "outcome",
    "detail",
)
MAX_LISTED = 100  # changed entries named one by one; the rest are counted
_KEPT = 1024  # mismatched entries kept to explain the first one (shifts, swaps)
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str  # a user name, or "node"
    action: str
    message_id: str = ""
    peer: str = ""
    purpose: str = ""
    justification: str = ""
    outcome: str = ""
    detail: str = ""


_TIMES: dict[datetime, str] = {}


def format_time(at: datetime) -> str:
    """RFC 3339 in UTC, always with microseconds: one text for each instant. Texts are
    remembered: the entries of one commit mostly share their time (a batch received)."""
    text = _TIMES.get(at)
    if text is None or at.tzinfo is None:
        if at.tzinfo is None:
            raise ValueError("an audit time must carry its zone")
        if len(_TIMES) >= 1024:
            _TIMES.clear()
        text = _TIMES[at] = at.astimezone(UTC).strftime(_TIME_FORMAT)
    return text


def canonical(entry: AuditEntry) -> bytes:
    """The bytes a leaf hashes: a JSON object with exactly the fields of FIELDS, keys sorted,
    no whitespace, non-ASCII characters as UTF-8 (not escaped), `seq` an integer, `at` as
    `format_time` writes it, every other field a string (empty when it does not apply). Sorted
    keys put `seq` last, so the bytes end with `"seq":N}`."""
    return encode(
        entry.seq, entry.at, entry.actor, entry.action, entry.message_id, entry.peer,
        entry.purpose, entry.justification, entry.outcome, entry.detail,
    )  # fmt: skip


# json's own string encoder (json.dumps uses it with ensure_ascii=False), field by field in
# sorted key order: what json.dumps(..., sort_keys=True) writes, without a dict and an
# encoder per entry (the node encodes every entry it appends).
_STR = encode_basestring


def encode(
    seq: int, at: datetime, actor: str, action: str, message_id: str, peer: str, purpose: str,
    justification: str, outcome: str, detail: str,
) -> bytes:  # fmt: skip
    """`canonical` of the entry with these fields."""
    if type(seq) is not int or seq < 1:
        raise ValueError(f"seq {seq} is not a log position (they start at 1)")
    texts = (action, actor, detail, justification, message_id, outcome, peer, purpose)
    if any(type(t) is not str for t in texts):
        raise ValueError("an audit entry's fields other than seq and at are strings")
    return (
        f'{{"action":{_STR(action)},"actor":{_STR(actor)},"at":"{format_time(at)}",'
        f'"detail":{_STR(detail)},"justification":{_STR(justification)},'
        f'"message_id":{_STR(message_id)},"outcome":{_STR(outcome)},"peer":{_STR(peer)},'
        f'"purpose":{_STR(purpose)},"seq":{seq}}}'
    ).encode()


def parse_entry(data: bytes) -> AuditEntry:
    """An entry from its canonical bytes; ValueError for anything `canonical` would not write."""
    try:
        fields = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"an audit entry is not JSON: {exc}") from exc
    if not isinstance(fields, dict) or sorted(fields) != sorted(FIELDS):
        raise ValueError(f"an audit entry has exactly the fields {', '.join(FIELDS)}")
    seq = fields.pop("seq")
    if type(seq) is not int or any(type(v) is not str for v in fields.values()):
        raise ValueError("an audit entry's seq is an integer and its other fields strings")
    try:
        at = datetime.strptime(fields.pop("at"), _TIME_FORMAT).replace(tzinfo=UTC)
        entry = AuditEntry(seq=seq, at=at, **fields)
        canonical_bytes = canonical(entry)
    except ValueError as exc:
        raise ValueError(f"audit entry {seq}: {exc}") from exc
    if canonical_bytes != data:
        raise ValueError(f"audit entry {seq} is not in its canonical encoding")
    return entry


class LogEntry(NamedTuple):
    """An entry as verification reads it: its number, its canonical bytes, and the leaf hash
    stored with it (None when the log keeps none)."""

    seq: int
    data: bytes
    leaf_hash: bytes | None = None


class Kind(enum.StrEnum):
    CHANGED = "CHANGED"
    REMOVED = "REMOVED"
    INSERTED = "INSERTED"
    REORDERED = "REORDERED"
    TRUNCATED = "TRUNCATED"
    ALTERED = "ALTERED"  # located between two checkpoints only
    REWRITTEN = "REWRITTEN"  # and re-signed: signed checkpoints disagree
    BAD_CHECKPOINT = "BAD_CHECKPOINT"


_STRUCTURAL = frozenset({Kind.REMOVED, Kind.INSERTED, Kind.REORDERED})


@dataclass(frozen=True, slots=True)
class Finding:
    kind: Kind
    message: str
    seq: int | None = None  # the entry named, or the first of the range it is located to
    last: int | None = None  # the last entry of that range
    other: int | None = None  # the other entry of a swap
    checkpoint: int | None = None  # the size of the checkpoint that shows it


@dataclass(frozen=True, slots=True)
class Report:
    entries: int  # entries read in order, up to the first removal, insertion or reordering
    root: bytes  # the recomputed root over them
    checkpoints: int  # checkpoints whose signature verified (the log's and trusted ones)
    sealed: int  # entries covered by the largest checkpoint that matches the log
    unchecked: int  # checkpoints not compared: beyond the first structural problem
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    @property
    def unsealed(self) -> int:
        """Entries after the last matching checkpoint: nothing signed covers them yet."""
        return self.entries - self.sealed


@dataclass(frozen=True, slots=True)
class _Signed:
    checkpoint: Checkpoint
    trusted: bool  # kept outside the node, not one of the log's own

    @property
    def label(self) -> str:
        where = "kept outside" if self.trusted else "of the log"
        return f"checkpoint {self.checkpoint.size} ({where})"


def _seq_suffix(seq: int) -> bytes:
    return b'"seq":%d}' % seq


def _renumbered(data: bytes, seq: int, to: int) -> bytes | None:
    suffix = _seq_suffix(seq)
    return data[: -len(suffix)] + _seq_suffix(to) if data.endswith(suffix) else None


def _hashes_to(data: bytes, seq: int, to: int, *stored: bytes | None) -> bool:
    """Whether the entry, numbered `to` instead, hashes to one of the stored hashes."""
    moved = _renumbered(data, seq, to)
    return moved is not None and merkle.leaf_hash(moved) in stored


def _explain(mismatched: list[LogEntry]) -> Finding | None:
    """A removal, insertion or swap that explains the first mismatched entry, if the entries
    around it hash to stored hashes one place or a few places away."""
    first = mismatched[0]
    j, data, stored = first
    by_seq = {e.seq: e for e in mismatched}
    after = by_seq.get(j + 1)
    if stored is None:
        return None
    # The stored hash either stays with the row (it moves when rows are renumbered) or stays
    # with the position (a store of subtrees): each test accepts either.
    if j > 1 and _hashes_to(data, j, j - 1, stored):
        return Finding(
            Kind.INSERTED,
            f"entry {j - 1} was inserted: the entries after it were renumbered one up",
            seq=j - 1,
        )
    if after is not None and _hashes_to(after.data, j + 1, j, stored, after.leaf_hash):
        return Finding(
            Kind.INSERTED,
            f"entry {j} was inserted: the entries after it were renumbered one up",
            seq=j,
        )
    if _hashes_to(data, j, j + 1, stored, after.leaf_hash if after else None):
        return Finding(
            Kind.REMOVED,
            f"entry {j} was removed: the entries after it were renumbered one down",
            seq=j,
            last=j,
        )
    for other in mismatched[1:]:
        pair = (stored, other.leaf_hash)
        if _hashes_to(data, j, other.seq, *pair) and _hashes_to(other.data, other.seq, j, *pair):
            return Finding(
                Kind.REORDERED,
                f"entries {j} and {other.seq} were swapped",
                seq=j,
                other=other.seq,
            )
    return None


def _changed(mismatched: list[LogEntry], more: int) -> list[Finding]:
    findings = []
    for entry in mismatched[:MAX_LISTED]:
        if entry.leaf_hash is None or not entry.data.endswith(_seq_suffix(entry.seq)):
            why = f"its bytes are not those of an entry numbered {entry.seq}"
        else:
            why = "its bytes no longer hash to its stored leaf hash"
        findings.append(Finding(Kind.CHANGED, f"entry {entry.seq} was changed: {why}", entry.seq))
    rest = len(mismatched) - MAX_LISTED + more
    if rest > 0:
        seq = mismatched[MAX_LISTED].seq if len(mismatched) > MAX_LISTED else None
        findings.append(
            Finding(Kind.CHANGED, f"{rest} more entries no longer hash to their stored hashes", seq)
        )
    return findings


def _sequence_break(entry: LogEntry, expected: int, rest: Iterator[LogEntry]) -> Finding:
    """What an entry numbered other than expected means; reads on through `rest` to see
    whether the expected number comes later."""
    seq = entry.seq
    if seq < 1:
        return Finding(
            Kind.INSERTED, f"an entry numbered {seq} stands at position {expected}", seq=expected
        )
    if seq < expected:  # every number below expected was seen: a second entry numbered seq
        return Finding(
            Kind.INSERTED,
            f"entry {seq} appears twice (at positions {seq} and {expected}): one was inserted",
            seq=seq,
        )
    if any(later.seq == expected for later in rest):
        return Finding(
            Kind.REORDERED,
            f"entry {seq} stands where entry {expected} belongs; {expected} comes later",
            seq=expected,
            other=seq,
        )
    return Finding(
        Kind.REMOVED,
        f"entries {expected}..{seq - 1} are missing" if seq > expected + 1
        else f"entry {expected} is missing",
        seq=expected,
        last=seq - 1,
    )  # fmt: skip


def _open(
    notes: Iterable[bytes], key: NoteKey, *, trusted: bool
) -> tuple[list[_Signed], list[Finding]]:
    signed, bad = [], []
    for n, note in enumerate(notes, 1):
        try:
            signed.append(_Signed(open_checkpoint(note, key), trusted))
        except CheckpointError as exc:
            source = "trusted checkpoint" if trusted else "checkpoint note"
            bad.append(Finding(Kind.BAD_CHECKPOINT, f"{source} #{n} is refused: {exc}"))
    return signed, bad


def verify_log(
    entries: Iterable[LogEntry],
    checkpoints: Iterable[bytes],
    key: NoteKey,
    *,
    trusted: Iterable[bytes] = (),
) -> Report:
    """Check a log: entries in the order the log keeps them, the log's checkpoint notes, and
    checkpoint notes kept outside the node (`trusted`: a witness's or an auditor's copies).
    Every note must be signed by `key` for the log `key.name`."""
    own, bad = _open(checkpoints, key, trusted=False)
    kept, bad_trusted = _open(trusted, key, trusted=True)
    signed = sorted(own + kept, key=lambda s: s.checkpoint.size)
    tree = merkle.BoundaryNodes(s.checkpoint.size for s in signed)

    # The hot loop: one leaf hash, one comparison and one append per entry.
    sha256 = hashlib.sha256
    append = tree.append
    mismatched: list[LogEntry] = []
    more = 0
    expected = 1
    broken: Finding | None = None
    rest = iter(entries)
    for entry in rest:
        seq, data, stored = entry
        if seq != expected:
            broken = _sequence_break(entry, expected, rest)
            break
        leaf = sha256(b"\x00" + data).digest()
        if (stored is not None and stored != leaf) or not data.endswith(b'"seq":%d}' % seq):
            if len(mismatched) < _KEPT:
                mismatched.append(entry)
            else:
                more += 1
        append(leaf if stored is None else stored)
        expected += 1

    findings: list[Finding] = []
    if broken is not None:
        findings.append(broken)
    if mismatched:
        explained = _explain(mismatched)
        if explained is not None:
            findings.append(explained)
        else:
            findings.extend(_changed(mismatched, more))
    # The first structural problem ends what checkpoints can be compared with.
    structural = [f.seq for f in findings if f.kind in _STRUCTURAL and f.seq is not None]
    checkable = signed
    if structural:
        limit = min(structural)
        findings = [f for f in findings if f.seq is None or f.seq <= limit]
        checkable = [s for s in signed if s.checkpoint.size < limit]
    sealed, compared = _compare(tree, checkable)
    findings.extend(compared)
    findings.sort(key=_order)
    return Report(
        entries=tree.size,
        root=tree.frontier.root(),
        checkpoints=len(signed),
        sealed=sealed,
        unchecked=len(signed) - len(checkable),
        findings=(*findings, *bad, *bad_trusted),
    )


def _order(finding: Finding) -> tuple[bool, int, int]:
    """The earliest entry by which something certainly went wrong: a range's last entry, so an
    entry named exactly comes before a range that holds it."""
    last = finding.last if finding.last is not None else finding.seq
    return (last is None, last or 0, finding.seq or 0)


def _matches(tree: merkle.BoundaryNodes, checkpoint: Checkpoint) -> bool:
    return merkle.root_at(tree, checkpoint.size) == checkpoint.root


def _compare(tree: merkle.BoundaryNodes, signed: list[_Signed]) -> tuple[int, list[Finding]]:
    """How far a chain of consistent checkpoints covers the log, and what breaks it.

    In order of size, each checkpoint's root must be the recomputed tree's at its size, and a
    consistency proof computed from the tree must show it extends the one before (the empty
    log, for the first). The first that fails is the first checkpoint the log does not match."""
    findings = []
    within = [s for s in signed if s.checkpoint.size <= tree.size]
    previous: Checkpoint | None = None
    sealed, root = 0, merkle.EMPTY_ROOT
    for i, s in enumerate(within):
        size = s.checkpoint.size
        proof = merkle.consistency_proof(tree, sealed, size)
        if _matches(tree, s.checkpoint) and merkle.verify_consistency(
            sealed, size, proof, root, s.checkpoint.root
        ):
            previous, sealed, root = s.checkpoint, size, s.checkpoint.root
            continue
        findings.append(_breach(tree, within, i, previous))
        break

    beyond = [s for s in signed if s.checkpoint.size > tree.size]
    if beyond:
        top = beyond[-1]
        findings.append(
            Finding(
                Kind.TRUNCATED,
                f"the log ends at entry {tree.size}, but {top.label} covers "
                f"{top.checkpoint.size}: entries {tree.size + 1}..{top.checkpoint.size} are gone",
                seq=tree.size + 1,
                last=top.checkpoint.size,
                checkpoint=top.checkpoint.size,
            )
        )
    return sealed, findings


def _breach(
    tree: merkle.BoundaryNodes, within: list[_Signed], i: int, previous: Checkpoint | None
) -> Finding:
    """Checkpoint i is the first that does not match the log. If the node's key signed a
    checkpoint of the same or a larger size that matches, the log was rewritten and signed
    again, and only trusted checkpoints bound where; otherwise entries changed after the last
    checkpoint that matches."""
    x = within[i]
    size = x.checkpoint.size
    later = [s for j, s in enumerate(within) if j != i and s.checkpoint.size >= size]
    agree = [s for s in later if _matches(tree, s.checkpoint)]
    # One kept outside that agrees with the log says the log is what was signed then.
    d = next((s for s in agree if s.trusted), agree[0] if agree else None)
    if d is not None:
        proof = merkle.consistency_proof(tree, size, d.checkpoint.size)
        if not merkle.verify_consistency(
            size, d.checkpoint.size, proof, x.checkpoint.root, d.checkpoint.root
        ):
            a = max((s.checkpoint.size for s in within[:i] if s.trusted), default=0)
            if d.trusted and not x.trusted:  # the log agrees with what was kept outside
                what = f"{x.label} was signed for another history than entries {a + 1}..{size}"
            else:
                what = f"entries {a + 1}..{size} were rewritten and signed again"
            return Finding(
                Kind.REWRITTEN,
                f"{what}: {d.label} does not extend {x.label} (the consistency proof between "
                "them fails)",
                seq=a + 1,
                last=size,
                checkpoint=size,
            )
    a = previous.size if previous else 0
    return Finding(
        Kind.ALTERED,
        f"entries {a + 1}..{size} are not those {x.label} signed: one or more were changed, "
        f"with their stored hashes, after checkpoint {a}",
        seq=a + 1,
        last=size,
        checkpoint=size,
    )
