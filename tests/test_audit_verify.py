"""The auditor's verification over in-memory logs: each kind of tampering, as an attacker with
write access to the node's SQLite file (and, for a rewrite, the node's key) would do it, is
found and the right entry named. Two ways a store may keep leaf hashes are tried where it
matters: with the row (the hash moves when the row is renumbered), or by position (a table
of subtrees keyed by index: the hash stays where it was)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from node.audit.checkpoint import Checkpoint, NoteKey, origin_for, sign
from node.audit.verify import (
    MAX_LISTED,
    AuditEntry,
    Kind,
    LogEntry,
    Report,
    canonical,
    parse_entry,
    verify_log,
)
from node.merkle import EMPTY_ROOT, Frontier, leaf_hash, root

KEY = ec.generate_private_key(ec.SECP256R1())
ORIGIN = origin_for("accord.test", "NL-POL")
NOTE_KEY = NoteKey(ORIGIN, KEY.public_key())
T0 = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
N = 95  # checkpoints every 10 entries: 10..90, and 91..95 not yet covered
EVERY = 10


def entry(seq: int) -> AuditEntry:
    return AuditEntry(
        seq=seq,
        at=T0 + timedelta(seconds=seq),
        actor="node" if seq % 3 == 0 else "alice",
        action=("collect", "consult", "disclose")[seq % 3],
        message_id=f"0193a1b2-c3d4-7e5f-8a9b-{seq:012d}",
        peer="DE-BKA",
        purpose="criminal-investigation",
        justification=f"case 2026/{seq}" if seq % 3 == 1 else "",
        outcome="ok",
    )


ENTRIES = [entry(s) for s in range(1, N + 1)]
LEAVES = [leaf_hash(canonical(e)) for e in ENTRIES]


def checkpoints(
    entries: list[AuditEntry], sizes: range | list[int], key: ec.EllipticCurvePrivateKey = KEY
) -> list[bytes]:
    frontier, notes = Frontier(), []
    for e in entries:
        frontier.append(leaf_hash(canonical(e)))
        if frontier.size in sizes:
            notes.append(sign(Checkpoint(ORIGIN, frontier.size, frontier.root()), key))
    return notes


NOTES = checkpoints(ENTRIES, range(EVERY, N + 1, EVERY))


def rows(entries: list[AuditEntry], hashes: Sequence[bytes | None] | None = None) -> list[LogEntry]:
    """The log as a store would read it. Without hashes, each row keeps its original leaf
    hash (the hashes stay with positions)."""
    stored: list[bytes | None] = list(LEAVES if hashes is None else hashes)
    stored += [None] * (len(entries) - len(stored))
    return [LogEntry(e.seq, canonical(e), h) for e, h in zip(entries, stored, strict=False)]


def check(
    log: list[LogEntry], notes: list[bytes] = NOTES, trusted: list[bytes] | None = None
) -> Report:
    return verify_log(log, notes, NOTE_KEY, trusted=trusted or [])


def only(report: Report, kind: Kind, seq: int, last: int | None = None) -> None:
    """Exactly one finding, of this kind, naming these entries."""
    assert [(f.kind, f.seq, f.last) for f in report.findings] == [(kind, seq, last)], [
        f.message for f in report.findings
    ]


def renumbered(entries: list[AuditEntry], by: int) -> list[AuditEntry]:
    return [dataclasses.replace(e, seq=e.seq + by) for e in entries]


def edited(e: AuditEntry) -> AuditEntry:
    return dataclasses.replace(e, justification="nothing to see here")


# ---- a good log ----


def test_an_untouched_log_verifies() -> None:
    report = check(rows(ENTRIES))
    assert report.ok and report.first is None
    assert report.entries == N and report.root == root(LEAVES)
    assert report.checkpoints == 9 and report.sealed == 90 and report.unsealed == 5
    assert report.unchecked == 0


def test_trusted_copies_and_a_log_without_stored_hashes_verify() -> None:
    extra = checkpoints(ENTRIES, [37, 95])
    report = check(rows(ENTRIES, [None] * N), NOTES, trusted=[NOTES[2], *extra])
    assert report.ok and report.sealed == 95 and report.checkpoints == 12


def test_the_empty_log() -> None:
    assert check([], []).ok
    empty = sign(Checkpoint(ORIGIN, 0, EMPTY_ROOT), KEY)
    report = check([], [empty])
    assert report.ok and report.root == EMPTY_ROOT and report.checkpoints == 1


# ---- tampering, each named ----


def test_an_entry_edited_in_place_is_named() -> None:
    entries = list(ENTRIES)
    entries[41] = edited(entries[41])
    report = check(rows(entries))
    only(report, Kind.CHANGED, 42)
    assert report.sealed == 90  # the stored hashes still match every checkpoint


def test_an_edit_that_rewrote_the_stored_hash_is_located_between_two_checkpoints() -> None:
    entries = list(ENTRIES)
    entries[41] = edited(entries[41])
    hashes: list[bytes | None] = list(LEAVES)
    hashes[41] = leaf_hash(canonical(entries[41]))
    report = check(rows(entries, hashes))
    only(report, Kind.ALTERED, 41, 50)
    assert report.findings[0].checkpoint == 50 and report.sealed == 40
    # a log that keeps no hashes is located the same way
    only(check(rows(entries, [None] * N)), Kind.ALTERED, 41, 50)


def test_an_edit_before_the_first_checkpoint() -> None:
    entries = list(ENTRIES)
    entries[0] = edited(entries[0])
    only(check(rows(entries, [None] * N)), Kind.ALTERED, 1, 10)


def test_a_deleted_entry_is_named() -> None:
    report = check(rows(ENTRIES[:41] + ENTRIES[42:], LEAVES[:41] + LEAVES[42:]))
    only(report, Kind.REMOVED, 42, 42)
    assert report.entries == 41 and report.sealed == 40
    assert report.unchecked == 5  # checkpoints 50..90 hold entry 42: not compared


def test_several_deleted_entries_are_named() -> None:
    report = check(rows(ENTRIES[:41] + ENTRIES[44:], LEAVES[:41] + LEAVES[44:]))
    only(report, Kind.REMOVED, 42, 44)


@pytest.mark.parametrize("hashes", ["with rows", "by position"])
def test_a_deleted_entry_with_the_rest_renumbered_is_named(hashes: str) -> None:
    entries = ENTRIES[:41] + renumbered(ENTRIES[42:], -1)
    moved = LEAVES[:41] + LEAVES[42:] if hashes == "with rows" else LEAVES[: N - 1]
    only(check(rows(entries, moved)), Kind.REMOVED, 42, 42)


def test_an_entry_inserted_under_a_taken_number_is_named() -> None:
    forged = dataclasses.replace(edited(ENTRIES[41]), action="erase")
    entries = [*ENTRIES[:42], forged, *ENTRIES[42:]]
    hashes = [*LEAVES[:42], leaf_hash(canonical(forged)), *LEAVES[42:]]
    only(check(rows(entries, hashes)), Kind.INSERTED, 42)


def test_an_entry_numbered_below_one_is_an_insertion() -> None:
    log = rows(ENTRIES)
    log.insert(10, LogEntry(0, canonical(ENTRIES[10]).replace(b'"seq":11}', b'"seq":0}'), None))
    report = check(log)
    only(report, Kind.INSERTED, 11)
    assert "numbered 0" in report.findings[0].message


@pytest.mark.parametrize("hashes", ["with rows", "with rows, forged hash bad", "by position"])
def test_an_entry_inserted_with_the_rest_renumbered_is_named(hashes: str) -> None:
    forged = dataclasses.replace(entry(42), action="erase", actor="mallory")
    entries = [*ENTRIES[:41], forged, *renumbered(ENTRIES[41:], 1)]
    moved: Sequence[bytes | None] = {
        "with rows": [*LEAVES[:41], leaf_hash(canonical(forged)), *LEAVES[41:]],
        "with rows, forged hash bad": [*LEAVES[:41], bytes(32), *LEAVES[41:]],
        "by position": list(LEAVES),
    }[hashes]
    only(check(rows(entries, moved)), Kind.INSERTED, 42)


def test_two_entries_out_of_order_are_named() -> None:
    log = rows(ENTRIES)
    log[41], log[56] = log[56], log[41]
    report = check(log)
    only(report, Kind.REORDERED, 42)
    assert report.findings[0].other == 57


@pytest.mark.parametrize("hashes", ["with rows", "by position"])
def test_two_entries_with_swapped_contents_are_named(hashes: str) -> None:
    entries = list(ENTRIES)
    entries[41] = dataclasses.replace(ENTRIES[56], seq=42)
    entries[56] = dataclasses.replace(ENTRIES[41], seq=57)
    moved: list[bytes | None] = list(LEAVES)
    if hashes == "with rows":
        moved[41], moved[56] = LEAVES[56], LEAVES[41]
    report = check(rows(entries, moved))
    only(report, Kind.REORDERED, 42)
    assert report.findings[0].other == 57


def test_a_tail_truncated_after_a_checkpoint_is_named() -> None:
    report = check(rows(ENTRIES[:85]))
    only(report, Kind.TRUNCATED, 86, 90)
    assert report.findings[0].checkpoint == 90 and report.sealed == 80


def test_a_tail_cut_past_every_checkpoint_shows_only_against_one_kept_outside() -> None:
    cut = rows(ENTRIES[:92])
    report = check(cut)
    assert report.ok and report.unsealed == 2  # nothing the node signed covers 93..95
    kept = checkpoints(ENTRIES, [95])
    only(check(cut, trusted=kept), Kind.TRUNCATED, 93, 95)


def rewritten(at: int) -> tuple[list[AuditEntry], list[LogEntry]]:
    """The log with entry `at` edited and every hash recomputed."""
    entries = list(ENTRIES)
    entries[at - 1] = edited(entries[at - 1])
    return entries, rows(entries, [leaf_hash(canonical(e)) for e in entries])


def test_a_log_rewritten_and_signed_again_is_caught_by_a_checkpoint_kept_outside() -> None:
    entries, log = rewritten(42)
    resigned = checkpoints(entries, range(EVERY, N + 1, EVERY))
    assert check(log, resigned).ok  # the node's own checkpoints agree with the rewrite
    kept = [NOTES[4]]  # checkpoint 50, signed before the rewrite and kept by an auditor
    report = check(log, resigned, trusted=kept)
    only(report, Kind.REWRITTEN, 1, 50)
    assert "consistency proof" in report.findings[0].message
    assert "checkpoint 50 (kept outside)" in report.findings[0].message
    # an earlier checkpoint kept outside that still matches narrows it
    only(check(log, resigned, trusted=[NOTES[2], NOTES[4]]), Kind.REWRITTEN, 31, 50)


def test_a_rewrite_that_left_old_checkpoints_in_place_is_caught_by_them() -> None:
    entries, log = rewritten(42)
    newest = checkpoints(entries, [95])
    report = check(log, NOTES + newest)
    only(report, Kind.REWRITTEN, 1, 50)
    assert "checkpoint 95 (of the log) does not extend checkpoint 50 (of the log)" in (
        report.findings[0].message
    )


def test_a_checkpoint_of_another_history_signed_with_the_key_is_caught() -> None:
    """The log is intact and agrees with a checkpoint kept outside; one of the node's own
    checkpoints, signed with its key, is of another history."""
    entries, _ = rewritten(42)
    forged = checkpoints(entries, [50])
    report = check(rows(ENTRIES), [*NOTES[:4], *forged, *NOTES[5:]], trusted=[NOTES[5]])
    only(report, Kind.REWRITTEN, 1, 50)
    assert report.findings[0].message.startswith(
        "checkpoint 50 (of the log) was signed for another history than entries 1..50: "
        "checkpoint 60 (kept outside) does not extend checkpoint 50 (of the log)"
    )


def test_two_different_checkpoints_of_one_size_are_a_rewrite() -> None:
    entries, log = rewritten(42)
    report = check(log, NOTES[:5] + checkpoints(entries, [50]))
    only(report, Kind.REWRITTEN, 1, 50)


def test_refused_checkpoint_notes_are_reported_last_and_not_used() -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    forged = checkpoints(ENTRIES[:20], [20], key=forger)[0]
    other_log = sign(Checkpoint("accord.test/agency/DE-BKA/audit", 3, LEAVES[0]), KEY)
    entries = list(ENTRIES)
    entries[3] = edited(entries[3])
    report = check(rows(entries), [*NOTES, forged, b"garbage"], trusted=[other_log])
    kinds = [(f.kind, f.seq) for f in report.findings]
    assert kinds == [
        (Kind.CHANGED, 4),
        (Kind.BAD_CHECKPOINT, None),
        (Kind.BAD_CHECKPOINT, None),
        (Kind.BAD_CHECKPOINT, None),
    ]
    messages = [f.message for f in report.findings[1:]]
    assert "checkpoint note #10" in messages[0] and "UNSIGNED" in messages[0]
    assert "checkpoint note #11" in messages[1] and "MALFORMED" in messages[1]
    assert "trusted checkpoint #1" in messages[2] and "UNSIGNED" in messages[2]  # another log
    assert report.checkpoints == 9


def test_an_entry_whose_bytes_carry_another_number_is_changed() -> None:
    log = rows(ENTRIES)
    log[41] = LogEntry(42, log[42].data, log[41].leaf_hash)
    report = check(log)
    assert report.first is not None and report.first.kind == Kind.CHANGED
    assert report.first.seq == 42 and "numbered 42" in report.first.message


def test_many_changed_entries_are_listed_up_to_a_bound() -> None:
    entries = [edited(e) if e.seq % 2 else e for e in (entry(s) for s in range(1, 301))]
    hashes: list[bytes | None] = [leaf_hash(canonical(entry(s))) for s in range(1, 301)]
    report = verify_log(rows(entries, hashes), [], NOTE_KEY)
    assert len(report.findings) == MAX_LISTED + 1
    assert all(f.kind == Kind.CHANGED for f in report.findings)
    assert report.findings[-1].message.startswith("50 more entries")


# ---- the canonical encoding ----


def test_the_canonical_encoding_is_exact() -> None:
    e = AuditEntry(
        seq=7,
        at=datetime(2026, 1, 2, 4, 4, 5, 6, tzinfo=timezone(timedelta(hours=1))),
        actor="jörg",
        action="consult",
        justification='line\n"two"',
    )
    assert (
        canonical(e)
        == (
            '{"action":"consult","actor":"jörg","at":"2026-01-02T03:04:05.000006Z","detail":"",'
            '"justification":"line\\n\\"two\\"","message_id":"","outcome":"","peer":"",'
            '"purpose":"","seq":7}'
        ).encode()
    )
    assert parse_entry(canonical(e)) == dataclasses.replace(e, at=e.at.astimezone(UTC))


def test_times_need_a_zone_and_positions_start_at_one() -> None:
    with pytest.raises(ValueError, match="zone"):
        canonical(dataclasses.replace(entry(1), at=datetime(2026, 1, 1)))
    with pytest.raises(ValueError, match="start at 1"):
        canonical(entry(0))


GOOD = canonical(entry(4))
UNSORTED = json.dumps(
    dict(reversed(json.loads(GOOD).items())), separators=(",", ":"), ensure_ascii=False
).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff", "not JSON"),
        (b"[]", "exactly the fields"),
        (GOOD.replace(b',"peer":"DE-BKA"', b""), "exactly the fields"),
        (GOOD.replace(b'{"action"', b'{"extra":"","action"'), "exactly the fields"),
        (GOOD.replace(b'"seq":4}', b'"seq":"4"}'), "integer"),
        (GOOD.replace(b'"seq":4}', b'"seq":true}'), "integer"),
        (GOOD.replace(b'"outcome":"ok"', b'"outcome":1'), "strings"),
        (GOOD.replace(b".000000Z", b"Z"), "does not match format"),
        (GOOD.replace(b".000000Z", b".000000+00:00"), "does not match format"),
        (GOOD.replace(b'"seq":4}', b'"seq":0}'), "start at 1"),
        (GOOD.replace(b",", b", "), "canonical"),
        (GOOD.replace(b'"peer":"DE-BKA"', b'"peer":"DE\\u002dBKA"'), "canonical"),
        (UNSORTED, "canonical"),
        (GOOD.replace(b"consult", "consult\u00e9".encode()).replace(b"\xc3\xa9", b"\\u00e9"),
         "canonical"),
    ],
)  # fmt: skip
def test_parse_entry_refuses_anything_but_the_canonical_encoding(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_entry(data)
