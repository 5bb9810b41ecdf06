"""Checkpoint notes: format, sign, strict parse, verify; and the same signatures checked, and
made, by the real openssl binary as docs/audit.md tells an auditor to."""

from __future__ import annotations

import base64
import hashlib
import shlex
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from node.audit.checkpoint import (
    MAX_SIGNATURES,
    Checkpoint,
    CheckpointError,
    NoteKey,
    Problem,
    open_checkpoint,
    origin_for,
    parse_checkpoint,
    parse_note,
    sign,
)
from node.merkle import EMPTY_ROOT, leaf_hash

ORIGIN = origin_for("accord.test", "NL-POL")
KEY = ec.generate_private_key(ec.SECP256R1())
NOTE_KEY = NoteKey(ORIGIN, KEY.public_key())
ROOT = leaf_hash(b"root")
DASH = "\u2014"
ECDSA = ec.ECDSA(hashes.SHA256())


def note_line(name: str, key_id: bytes, signature: bytes) -> bytes:
    return f"{DASH} {name} {base64.b64encode(key_id + signature).decode()}\n".encode()


def test_origin_names_the_agency_log() -> None:
    assert ORIGIN == "accord.test/agency/NL-POL/audit"
    with pytest.raises(ValueError, match="cannot name a log"):
        origin_for("accord test", "NL-POL")
    with pytest.raises(ValueError, match="cannot name a log"):
        origin_for("accord.test", "NL+POL")


def test_a_signed_checkpoint_has_the_c2sp_layout_and_round_trips() -> None:
    checkpoint = Checkpoint(ORIGIN, 1234, ROOT)
    note = sign(checkpoint, KEY)
    text, _, signature_line = note.decode().rpartition("\n\n")
    assert text + "\n" == f"{ORIGIN}\n1234\n{base64.b64encode(ROOT).decode()}\n"
    assert signature_line.startswith(f"{DASH} {ORIGIN} ") and signature_line.endswith("\n")
    raw = base64.b64decode(signature_line.split(" ")[2])
    spki = KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert raw[:4] == hashlib.sha256(spki).digest()[:4] == NOTE_KEY.key_id
    assert open_checkpoint(note, NOTE_KEY) == checkpoint


def test_extension_lines_and_the_empty_tree_round_trip() -> None:
    for checkpoint in (
        Checkpoint(ORIGIN, 7, ROOT, ("ext one", "second ext")),
        Checkpoint(ORIGIN, 0, EMPTY_ROOT),
    ):
        assert open_checkpoint(sign(checkpoint, KEY), NOTE_KEY) == checkpoint


def test_cosignatures_by_other_keys_are_ignored() -> None:
    """A witness adds its own line; the note still opens with the log's key, and only with it."""
    note = sign(Checkpoint(ORIGIN, 5, ROOT), KEY)
    witness = ec.generate_private_key(ec.SECP256R1())
    witness_key = NoteKey("witness.example/w1", witness.public_key())
    text = parse_note(note).text
    cosigned = note + note_line(witness_key.name, witness_key.key_id, witness.sign(text, ECDSA))
    assert open_checkpoint(cosigned, NOTE_KEY).size == 5
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(cosigned, NoteKey(ORIGIN, witness.public_key()))
    assert caught.value.problem == Problem.UNSIGNED


def checkpoint_error(note: bytes, key: NoteKey = NOTE_KEY) -> CheckpointError:
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(note, key)
    return caught.value


def test_a_note_signed_by_another_key_under_the_same_name_is_unsigned() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    error = checkpoint_error(sign(Checkpoint(ORIGIN, 5, ROOT), other))
    assert error.problem == Problem.UNSIGNED
    assert NOTE_KEY.key_id.hex() in str(error)


def test_a_changed_text_or_signature_is_a_bad_signature() -> None:
    note = sign(Checkpoint(ORIGIN, 5, ROOT), KEY)
    assert checkpoint_error(note.replace(b"\n5\n", b"\n6\n")).problem == Problem.BAD_SIGNATURE
    parsed = parse_note(note)
    [mine] = parsed.signatures
    longer = parsed.text + b"\n" + note_line(ORIGIN, mine.key_id, mine.signature + b"\x00")
    assert checkpoint_error(longer).problem == Problem.BAD_SIGNATURE  # not strict DER
    flipped = bytearray(mine.signature)
    flipped[-1] ^= 1
    good_and_bad = note + note_line(ORIGIN, mine.key_id, bytes(flipped))
    assert checkpoint_error(good_and_bad).problem == Problem.BAD_SIGNATURE


def test_a_checkpoint_of_another_log_is_refused_even_when_signed() -> None:
    text = Checkpoint("accord.test/agency/DE-BKA/audit", 5, ROOT).text()
    note = text + b"\n" + note_line(ORIGIN, NOTE_KEY.key_id, KEY.sign(text, ECDSA))
    error = checkpoint_error(note)
    assert error.problem == Problem.WRONG_ORIGIN and "DE-BKA" in str(error)


GOOD = sign(Checkpoint(ORIGIN, 5, ROOT), KEY)
GOOD_TEXT, GOOD_SIGS = GOOD.split(b"\n\n")
B64_ROOT = base64.b64encode(ROOT)


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        (b"\xff" + GOOD, "not UTF-8"),
        (GOOD.replace(b"\n", b"\r\n"), "control character"),
        (GOOD.replace(b"NL-POL", b"NL\tPOL"), "control character"),
        (GOOD.replace(b"\n5\n", b"\n5\x00\n"), "control character"),
        (GOOD.replace(b"\n\n", b"\n"), "no blank line"),
        (GOOD_TEXT + b"\n\n", "no signature lines"),
        (GOOD[:-1], "do not end with a newline"),
        (GOOD.replace(DASH.encode(), b"-"), "em dash"),
        (GOOD.replace(DASH.encode(), "\u2013".encode()), "em dash"),  # en dash
        (GOOD.replace(DASH.encode() + b" ", DASH.encode()), "em dash"),
        (GOOD.replace(ORIGIN.encode() + b" ", b" "), "key name is not valid"),
        (GOOD.replace(ORIGIN.encode() + b" ", b"a+b "), "key name is not valid"),
        (GOOD.replace(ORIGIN.encode() + b" ", ORIGIN.encode() + b"\xc2\xa0"), "not valid"),
        (GOOD_TEXT + b"\n\n" + DASH.encode() + b" name\n", "key name is not valid"),
        (GOOD_TEXT + b"\n\n" + DASH.encode() + b" name !!!!\n", "not base64"),
        (GOOD[:-2] + b"\n", "not base64"),
        (GOOD_TEXT + b"\n\n" + DASH.encode() + b" name AAAAAB==\n", "not canonical"),
        (GOOD_TEXT + b"\n\n" + DASH.encode() + b" name AAAA\n", "shorter than a key ID"),
        (GOOD + b"x" * (64 * 1024), "more than"),
    ],
)
def test_malformed_notes_are_refused(note: bytes, reason: str) -> None:
    error = checkpoint_error(note)
    assert error.problem == Problem.MALFORMED
    assert reason in str(error)


def test_too_many_signatures_are_refused() -> None:
    [line] = GOOD_SIGS.splitlines(keepends=True)
    error = checkpoint_error(GOOD_TEXT + b"\n\n" + line * (MAX_SIGNATURES + 1))
    assert error.problem == Problem.MALFORMED and "signatures" in str(error)


def signed_text(text: bytes) -> bytes:
    """A note whose text is anything at all, correctly signed: only the text's shape fails."""
    return text + b"\n" + note_line(ORIGIN, NOTE_KEY.key_id, KEY.sign(text, ECDSA))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (ORIGIN.encode() + b"\n5\n", "2 lines"),
        (b"\n5\n" + B64_ROOT + b"\n", "origin is empty"),
        (b"x\n\n5\n" + B64_ROOT + b"\n", "not a decimal"),
        (ORIGIN.encode() + b"\n05\n" + B64_ROOT + b"\n", "leading zeros"),
        (ORIGIN.encode() + b"\n-5\n" + B64_ROOT + b"\n", "not a decimal"),
        (ORIGIN.encode() + b"\n+5\n" + B64_ROOT + b"\n", "not a decimal"),
        (ORIGIN.encode() + b"\n 5\n" + B64_ROOT + b"\n", "not a decimal"),
        (ORIGIN.encode() + b"\n5 \n" + B64_ROOT + b"\n", "not a decimal"),
        (ORIGIN.encode() + b"\n5_0\n" + B64_ROOT + b"\n", "not a decimal"),
        (ORIGIN.encode() + "\n\u0665\n".encode() + B64_ROOT + b"\n", "not a decimal"),
        (ORIGIN.encode() + b"\n18446744073709551616\n" + B64_ROOT + b"\n", "uint64"),
        (ORIGIN.encode() + b"\n\n" + B64_ROOT + b"\n", "not a decimal"),
        (ORIGIN.encode() + b"\n5\n" + B64_ROOT[:-1] + b"\n", "base64"),
        (ORIGIN.encode() + b"\n5\n" + base64.b64encode(ROOT[:31]) + b"\n", "31 bytes"),
        (ORIGIN.encode() + b"\n5\n" + B64_ROOT[:-2] + b"N=\n", "not canonical"),
        (ORIGIN.encode() + b"\n5\n" + base64.urlsafe_b64encode(b"\xff" * 32) + b"\n", "base64"),
    ],
)
def test_malformed_checkpoint_texts_are_refused(text: bytes, reason: str) -> None:
    error = checkpoint_error(signed_text(text))
    assert error.problem == Problem.MALFORMED
    assert reason in str(error)


def test_checkpoint_text_rules_that_a_note_cannot_carry() -> None:
    """Cases the note layer already splits differently, checked on the text itself."""
    with pytest.raises(CheckpointError, match="empty extension line"):
        parse_checkpoint(ORIGIN.encode() + b"\n5\n" + B64_ROOT + b"\n\next\n")
    with pytest.raises(CheckpointError, match="does not end with a newline"):
        parse_checkpoint(ORIGIN.encode() + b"\n5\n" + B64_ROOT)
    with pytest.raises(CheckpointError, match="origin is empty"):
        parse_checkpoint(b"\n5\n" + B64_ROOT + b"\n")
    with pytest.raises(CheckpointError, match="not UTF-8"):
        parse_checkpoint(b"\xff\n5\n" + B64_ROOT + b"\n")


def test_checkpoints_that_cannot_be_written_are_refused() -> None:
    with pytest.raises(ValueError, match="32"):
        Checkpoint(ORIGIN, 1, ROOT[:31])
    with pytest.raises(ValueError, match="uint64"):
        Checkpoint(ORIGIN, -1, ROOT)
    with pytest.raises(ValueError, match="one line"):
        Checkpoint("a\nb", 1, ROOT)
    with pytest.raises(ValueError, match="one line"):
        Checkpoint(ORIGIN, 1, ROOT, ("",))
    with pytest.raises(ValueError, match="key name"):
        sign(Checkpoint("has space", 1, ROOT), KEY)


def test_note_keys_are_p256_with_a_valid_name_and_a_witness_vkey() -> None:
    with pytest.raises(ValueError, match="P-256"):
        NoteKey(ORIGIN, ec.generate_private_key(ec.SECP384R1()).public_key())
    with pytest.raises(ValueError, match="key name"):
        NoteKey("a b", KEY.public_key())
    vkey = NOTE_KEY.vkey()
    name, key_id, encoded = vkey.split("+", 2)  # base64 may hold a plus
    assert (name, key_id) == (ORIGIN, NOTE_KEY.key_id.hex())
    assert base64.b64decode(encoded) == b"\x02" + NOTE_KEY.der
    assert NoteKey.from_vkey(vkey) == NOTE_KEY
    with pytest.raises(ValueError, match="not its hash"):
        NoteKey.from_vkey(f"{name}+00000000+{encoded}")
    ed25519_type = base64.b64encode(b"\x01" + NOTE_KEY.der).decode()
    with pytest.raises(ValueError, match="0x02"):
        NoteKey.from_vkey(f"{name}+{key_id}+{ed25519_type}")
    with pytest.raises(ValueError, match="not base64"):
        NoteKey.from_vkey(f"{name}+{key_id}+!!")


# ---- the real openssl binary ----


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=30, check=False)


VERIFY = shlex.split("openssl dgst -sha256 -verify pub.pem -signature sig.der note-body.txt")


def split_for_openssl(note: bytes, tmp: Path) -> None:
    """What docs/audit.md tells an auditor to do: the text above the blank line is the signed
    body; the signature line's base64, minus its first four bytes (the key ID), is DER."""
    body, _, line = note.decode().rpartition("\n\n")
    (tmp / "note-body.txt").write_bytes((body + "\n").encode())
    raw = base64.b64decode(line.split(" ")[2])
    (tmp / "keyid.bin").write_bytes(raw[:4])
    (tmp / "sig.der").write_bytes(raw[4:])


def test_openssl_verifies_the_note_signature_and_key_id(tmp_path: Path) -> None:
    (tmp_path / "pub.pem").write_bytes(
        KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    split_for_openssl(sign(Checkpoint(ORIGIN, 1234, ROOT), KEY), tmp_path)
    ok = run(VERIFY, tmp_path)
    assert ok.returncode == 0 and ok.stdout.strip() == "Verified OK", ok.stderr
    key_id = "openssl pkey -pubin -in pub.pem -outform DER | openssl dgst -sha256 -binary"
    same = run(["sh", "-c", f"{key_id} | head -c 4 | cmp - keyid.bin"], tmp_path)
    assert same.returncode == 0, same.stdout + same.stderr

    body = tmp_path / "note-body.txt"
    body.write_bytes(body.read_bytes().replace(b"\n1234\n", b"\n1235\n"))
    bad = run(VERIFY, tmp_path)
    assert bad.returncode == 1 and "Verification failure" in bad.stdout


def test_a_note_signed_by_openssl_opens(tmp_path: Path) -> None:
    """The other way round: a key made and used by openssl alone."""
    for command in (
        "openssl ecparam -name prime256v1 -genkey -noout -out key.pem",
        "openssl pkey -in key.pem -pubout -out pub.pem",
        "openssl dgst -sha256 -sign key.pem -out sig.der note-body.txt",
    ):
        if "note-body" in command:
            (tmp_path / "note-body.txt").write_bytes(Checkpoint(ORIGIN, 99, ROOT).text())
        done = run(shlex.split(command), tmp_path)
        assert done.returncode == 0, done.stderr
    public_key = serialization.load_pem_public_key((tmp_path / "pub.pem").read_bytes())
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    key = NoteKey(ORIGIN, public_key)
    signature = (tmp_path / "sig.der").read_bytes()
    note = Checkpoint(ORIGIN, 99, ROOT).text() + b"\n" + note_line(ORIGIN, key.key_id, signature)
    assert open_checkpoint(note, key) == Checkpoint(ORIGIN, 99, ROOT)
