"""docs/audit.md is true of the code: its example entries, checkpoint and key are what the code
makes and accepts, and its shell scripts, run with the real sh and openssl, accept what the code
proves and refuse what it does not."""

from __future__ import annotations

import base64
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from node import merkle
from node.audit.checkpoint import Checkpoint, NoteKey, open_checkpoint, sign
from node.audit.verify import parse_entry

DOC = (Path(__file__).resolve().parent.parent / "docs" / "audit.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", DOC, re.DOTALL)
[ENTRIES] = [body for lang, body in BLOCKS if lang == "json"]
[NOTE] = [body for lang, body in BLOCKS if lang == "text" and "\n\n" in body]
[VKEY] = [body.strip() for lang, body in BLOCKS if lang == "text" and "\n\n" not in body]
SCRIPTS = {  # each begins "# NAME.sh ARGS: ..."
    body.split()[1]: body for lang, body in BLOCKS if lang == "sh" and body.startswith("# ")
}
EXAMPLES = [line for lang, body in BLOCKS if lang == "sh" for line in body.splitlines()
            if line.startswith("sh ")]  # fmt: skip
B64 = base64.b64encode


def test_the_example_is_what_the_code_makes_and_accepts() -> None:
    entries = [line.encode() for line in ENTRIES.splitlines()]
    assert [parse_entry(e).seq for e in entries] == [1, 2, 3]  # canonical, or parse refuses
    key = NoteKey.from_vkey(VKEY)
    checkpoint = open_checkpoint(NOTE.encode(), key)
    assert checkpoint.size == 3
    assert checkpoint.root == merkle.root(merkle.leaf_hash(e) for e in entries)
    assert base64.b64decode("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=") == merkle.EMPTY_ROOT


def run(tmp: Path, command: str) -> subprocess.CompletedProcess[str]:
    for name, body in SCRIPTS.items():
        (tmp / name).write_text(body)
    return subprocess.run(
        shlex.split(command), cwd=tmp, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_documented_examples_pass(tmp_path: Path) -> None:
    for n, line in enumerate(ENTRIES.splitlines(), 1):
        (tmp_path / f"entry{n}.json").write_bytes(line.encode())  # exact bytes, no newline
    assert set(SCRIPTS) == {"checkpoint.sh", "inclusion.sh", "consistency.sh"}
    assert len(EXAMPLES) == 2
    for example in EXAMPLES:
        done = run(tmp_path, example)
        assert (done.returncode, done.stdout) == (0, "OK\n"), (example, done.stdout, done.stderr)


def test_the_checkpoint_script_checks_a_node_signature(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    origin = "accord.test/agency/NL-POL/audit"
    (tmp_path / "pub.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    note = sign(Checkpoint(origin, 42, merkle.leaf_hash(b"x")), key)
    (tmp_path / "note.txt").write_bytes(note)
    ok = run(tmp_path, f"sh checkpoint.sh {origin} note.txt pub.pem")
    assert (ok.returncode, ok.stdout) == (0, "OK\n"), ok.stderr
    assert (tmp_path / "body.txt").read_bytes() == Checkpoint(
        origin, 42, merkle.leaf_hash(b"x")
    ).text()

    (tmp_path / "note.txt").write_bytes(note.replace(b"\n42\n", b"\n43\n"))
    assert run(tmp_path, f"sh checkpoint.sh {origin} note.txt pub.pem").stdout == (
        "FAIL: bad signature\n"
    )
    other = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "note.txt").write_bytes(sign(Checkpoint(origin, 42, merkle.EMPTY_ROOT), other))
    assert run(tmp_path, f"sh checkpoint.sh {origin} note.txt pub.pem").stdout == (
        "FAIL: no signature by this key\n"
    )
    assert run(tmp_path, "sh checkpoint.sh other/log note.txt pub.pem").returncode == 1


DATA = [f'{{"seq":{i}}}'.encode() for i in range(1, 8)]  # entries end with their number
LEAVES = [merkle.leaf_hash(d) for d in DATA]
NODES = merkle.MemoryNodes(LEAVES)


def b64(h: bytes) -> str:
    return B64(h).decode()


@pytest.mark.parametrize("size", [1, 6, 7])
def test_the_inclusion_script_agrees_with_the_code(tmp_path: Path, size: int) -> None:
    root = b64(merkle.root_at(NODES, size))
    for index in range(size):
        (tmp_path / "e.json").write_bytes(DATA[index])
        proof = [b64(p) for p in merkle.inclusion_proof(NODES, index, size)]
        good = f"sh inclusion.sh e.json {index + 1} {size} {root} {' '.join(proof)}"
        assert run(tmp_path, good).stdout == "OK\n", good
    (tmp_path / "e.json").write_bytes(DATA[1])
    proof = [b64(p) for p in merkle.inclusion_proof(NODES, 1, size)] if size > 1 else []
    bad = {
        "other root": f"sh inclusion.sh e.json 2 {size} {b64(LEAVES[0])} {' '.join(proof)}",
        "too long": f"sh inclusion.sh e.json 2 {size} {root} {' '.join([*proof, root])}",
        "too short": f"sh inclusion.sh e.json 2 {size} {root} {' '.join(proof[:-1])}",
        "not entry": f"sh inclusion.sh e.json 3 {size} {root} {' '.join(proof)}",
    }
    for why, command in bad.items():
        if size == 1 and why != "not entry":
            continue  # entry 2 is not in a tree of one
        done = run(tmp_path, command)
        assert done.returncode == 1 and done.stdout.startswith("FAIL"), (why, done.stdout)


def test_the_consistency_script_agrees_with_the_code(tmp_path: Path) -> None:
    n = 7
    r2 = b64(merkle.root_at(NODES, n))
    for m in range(0, n + 1):
        r1 = b64(merkle.root_at(NODES, m))
        proof = " ".join(b64(p) for p in merkle.consistency_proof(NODES, m, n))
        good = f"sh consistency.sh {m} {r1} {n} {r2} {proof}"
        assert run(tmp_path, good).stdout == "OK\n", good
        if 0 < m < n:
            flipped = f"sh consistency.sh {m} {r1} {n} {b64(LEAVES[0])} {proof}"
            assert run(tmp_path, flipped).returncode == 1, flipped
            other = f"sh consistency.sh {m} {b64(LEAVES[3])} {n} {r2} {proof}"
            assert run(tmp_path, other).returncode == 1, other
    assert run(tmp_path, f"sh consistency.sh 3 {r2} 2 {r2}").returncode == 1
    assert run(tmp_path, f"sh consistency.sh 0 {r2} 7 {r2}").returncode == 1
