"""`accord audit verify` against a real node's database file, tampered with as an attacker with
write access to the file would (the triggers dropped first), and with the node's key for a
rewrite: each change is found and the right entry named. Also the other audit commands, and
who may run them."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from pathlib import Path

from certs.ca import load_key
from node import config as config_mod
from node import merkle
from node.app import Node
from node.audit.checkpoint import Checkpoint, origin_for, sign
from node.audit.verify import canonical, parse_entry
from node.store.audit import Filters
from tests.harness import FEDERATION, Federation, add_user, liaison, node_send, until_delivered
from tests.test_cli import Run, accord

NL, DE = "NL-POL", "DE-BKA"
Tamper = Callable[[sqlite3.Connection], None]


def _rows(db: sqlite3.Connection) -> list[tuple[int, bytes, bytes]]:
    return [
        (s, bytes(d), bytes(h))
        for s, d, h in db.execute(
            "SELECT seq, CAST(data AS BLOB), leaf_hash FROM audit_log ORDER BY seq"
        )
    ]


def _renumber(data: bytes, seq: int) -> bytes:
    return canonical(replace(parse_entry(data), seq=seq))


def edit(seq: int) -> Tamper:
    def run(db: sqlite3.Connection) -> None:
        db.execute(
            'UPDATE audit_log SET data = replace(data, \'"justification":""\', '
            '\'"justification":"routine"\') WHERE seq = ?',
            (seq,),
        )

    return run


def delete(seq: int) -> Tamper:
    def run(db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM audit_log WHERE seq = ?", (seq,))

    return run


def insert(seq: int, *, rehash: bool = False) -> Tamper:
    """A forged entry at `seq`, the later ones moved up and renumbered, their stored hashes
    moved with them (`rehash`: recomputed as well)."""

    def run(db: sqlite3.Connection) -> None:
        later = [r for r in _rows(db) if r[0] >= seq]
        db.execute("DELETE FROM audit_log WHERE seq >= ?", (seq,))
        forged = canonical(
            replace(parse_entry(later[0][1]), seq=seq, actor="mallory", action="consult")
        )
        rows = [(seq, forged, merkle.leaf_hash(forged))]
        for s, data, leaf in later:
            moved = _renumber(data, s + 1)
            rows.append((s + 1, moved, merkle.leaf_hash(moved) if rehash else leaf))
        for s, data, leaf in rows:
            db.execute(
                "INSERT INTO audit_log (seq, data, leaf_hash) VALUES (?, ?, ?)",
                (s, data.decode(), leaf),
            )

    return run


def swap(a: int, b: int) -> Tamper:
    """Two entries' contents exchanged, each renumbered to its new place, hashes with them."""

    def run(db: sqlite3.Connection) -> None:
        rows = {s: (d, h) for s, d, h in _rows(db)}
        for seq, other in ((a, b), (b, a)):
            data, leaf = rows[other]
            db.execute(
                "UPDATE audit_log SET data = ?, leaf_hash = ? WHERE seq = ?",
                (_renumber(data, seq).decode(), leaf, seq),
            )

    return run


def truncate(after: int) -> Tamper:
    def run(db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM audit_log WHERE seq > ?", (after,))

    return run


def rewrite(home: Path, seq: int) -> Tamper:
    """Entry `seq` edited, every hash, subtree and checkpoint made again, signed by the node's
    own key: the log agrees with itself."""

    def run(db: sqlite3.Connection) -> None:
        rows = _rows(db)
        sizes = [s for (s,) in db.execute("SELECT size FROM audit_checkpoints ORDER BY size")]
        for table in ("audit_log", "audit_nodes", "audit_checkpoints"):
            db.execute(f"DELETE FROM {table}")
        tree = merkle.MemoryNodes()
        key = load_key(home / "node.key")
        origin = origin_for(FEDERATION, NL)
        for s, stored, _ in rows:
            data = stored
            if s == seq:
                data = canonical(replace(parse_entry(stored), justification="routine"))
            leaf = merkle.leaf_hash(data)
            for level, index, node in tree.frontier.append_nodes(leaf):
                if level:
                    db.execute("INSERT INTO audit_nodes VALUES (?, ?, ?)", (level, index, node))
            db.execute("INSERT INTO audit_log VALUES (?, ?, ?)", (s, data.decode(), leaf))
            if s in sizes:
                note = sign(Checkpoint(origin, s, tree.frontier.root()), key)
                db.execute("INSERT INTO audit_checkpoints VALUES (?, ?)", (s, note))

    return run


def tampered(home: Path, pristine: Path, tamper: Tamper) -> None:
    shutil.copy(pristine, home / "accord.db")
    for side in ("-wal", "-shm"):
        (home / f"accord.db{side}").unlink(missing_ok=True)
    with closing(sqlite3.connect(home / "accord.db", isolation_level=None)) as db:
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            db.execute(f"DROP TRIGGER {name}")
        db.execute("BEGIN")
        tamper(db)
        db.execute("COMMIT")


async def verify(home: Path, *extra: str | Path) -> Run:
    return await accord("audit", "verify", "--home", home, "--as", "auditor", "--json", *extra)


def findings(run: Run) -> list[tuple[str, int | None, int | None, int | None]]:
    report = json.loads(run.out)
    return [(f["kind"], f["seq"], f["last"], f["other"]) for f in report["findings"]]


async def test_each_change_to_the_file_is_found_and_named(fed2: Federation) -> None:
    nl, _ = await fed2.start_all()
    nl.audit.journal.every = 8
    await add_user(nl, "auditor", "auditor")
    sent = [await node_send(nl, liaison(to=[DE])) for _ in range(20)]
    await until_delivered(nl, *sent)
    home = fed2.homes[NL]
    await fed2.stop(NL)
    with closing(sqlite3.connect(home / "accord.db")) as db:
        size = db.execute("SELECT max(seq) FROM audit_log").fetchone()[0]
        kept = db.execute("SELECT size, note FROM audit_checkpoints ORDER BY size").fetchall()
    assert size > 24 and kept[-1][0] == size  # checkpoints every 8 and one at shutdown
    pristine = home.parent / "pristine.db"
    shutil.copy(home / "accord.db", pristine)
    # A checkpoint kept outside the node, as an auditor or a witness would: the 2nd.
    outside = home.parent / "kept.note"
    outside.write_bytes(bytes(kept[1][1]))
    config = config_mod.load(home)

    cases: list[
        tuple[Tamper, list[tuple[str, int | None, int | None, int | None]], tuple[str, ...]]
    ]
    cases = [
        (lambda db: None, [], ()),
        (edit(12), [("CHANGED", 12, None, None)], ()),
        (delete(12), [("REMOVED", 12, 12, None)], ()),
        (insert(12), [("INSERTED", 12, None, None)], ()),
        # Every hash recomputed: located between the checkpoints around it (8 and 16).
        (insert(12, rehash=True), [("ALTERED", 9, 16, None)], ()),
        (swap(12, 19), [("REORDERED", 12, None, 19)], ()),
        (truncate(size - 3), [("TRUNCATED", size - 2, size, None)], ()),
        (rewrite(home, 12), [], ()),  # signed again with the key: consistent with itself
        (rewrite(home, 12), [("REWRITTEN", 1, kept[1][0], None)], ("--trusted", str(outside))),
    ]  # fmt: skip
    for tamper, expected, extra in cases:
        tampered(home, pristine, tamper)
        node = await Node.open(config, clock=fed2.clock)
        try:
            run = await verify(home, *extra)
        finally:
            await node.stop(grace=0.1)
        assert findings(run) == expected, run.out
        assert run.code == (1 if expected else 0), run


async def test_query_export_prove_and_consistency(fed2: Federation, tmp_short: Path) -> None:
    nl, _ = await fed2.start_all()
    nl.audit.journal.every = 4
    await add_user(nl, "auditor", "auditor")
    await add_user(nl, "officer", "liaison_officer")
    sent = [await node_send(nl, liaison(to=[DE])) for _ in range(6)]
    await until_delivered(nl, *sent)
    home = fed2.homes[NL]
    base = ("--home", home, "--as", "auditor")

    query = await accord("audit", "query", *base, "--action", "send", "--json")
    assert query.code == 0, query
    assert [e["message_id"] for e in json.loads(query.out)] == [s.message_id for s in sent]

    # A whole export and a range verify offline; an entry edited in the file is named.
    whole, part = tmp_short / "whole.jsonl", tmp_short / "part.jsonl"
    assert (await accord("audit", "export", *base, "--out", whole)).code == 0
    size = nl.audit.journal.size
    assert (await accord("audit", "export", *base, "--from", "3", "--to", str(size - 2),
                         "--out", part)).code == 0  # fmt: skip
    head = tmp_short / "head.jsonl"  # from the first entry, but not to the last
    assert (await accord("audit", "export", *base, "--to", "7", "--out", head)).code == 0
    for export in (whole, part, head):
        run = await accord("audit", "verify", "--file", export, "--home", home, "--json")
        assert run.code == 0 and json.loads(run.out)["ok"], run
        lines = export.read_text().splitlines()
        at = next(n for n, line in enumerate(lines) if '"seq": 5' in line)
        lines[at] = lines[at].replace('\\"actor\\":\\"', '\\"actor\\":\\"x')
        assert lines[at] != export.read_text().splitlines()[at]
        forged = export.with_suffix(".forged")
        forged.write_text("\n".join(lines) + "\n")
        run = await accord("audit", "verify", "--file", forged, "--home", home, "--json")
        assert run.code == 1 and findings(run)[0][:2] == ("CHANGED", 5), run

    prove = await accord("audit", "prove", "5", *base)
    assert prove.code == 0 and "check: OK" in prove.out, prove
    notes = await nl.audit.checkpoints()
    old, new = notes[0][0], notes[-1][0]
    consistency = await accord("audit", "consistency", str(old), str(new), *base)
    assert consistency.code == 0 and "check: OK" in consistency.out, consistency

    # Liaison officers may not run them; each refusal is audited.
    before = nl.audit.journal.size
    for args in (("verify",), ("query",), ("prove", "5"), ("consistency", str(old), str(new))):
        run = await accord("audit", *args, "--home", home, "--as", "officer")
        assert run.code == 2 and "permission denied (ROLE)" in run.err, run
    refused = [parse_entry(e.data) for e in await nl.audit.query(Filters(first=before + 1))]
    assert [(e.actor, e.action, e.outcome) for e in refused] == [
        ("officer", "read-audit-log", "refused"),
        ("officer", "read-audit-log", "refused"),
        ("officer", "prove-audit-entry", "refused"),
        ("officer", "prove-audit-consistency", "refused"),
    ]
