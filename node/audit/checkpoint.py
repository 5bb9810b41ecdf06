"""Checkpoints of the audit log: a C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint)
inside a C2SP signed note (https://c2sp.org/signed-note), signed with the node's ECDSA P-256
key as signature type 0x02, the way transparency-dev's note verifier checks it.

    accord.test/agency/NL-POL/audit          origin
    1234                                     tree size, decimal
    a4bQ...Zc8=                              root hash, base64 (RFC 6962 MTH)
                                             blank line: the note text ends above it
    — accord.test/agency/NL-POL/audit MEUC...   key name, base64(key ID || DER signature)

The signature is ECDSA over SHA-256 of the note text (from the origin through the newline
after the last text line), DER encoded, as `openssl dgst -sha256 -sign` makes it; the key ID is
the first four bytes of SHA-256 of the key's DER SubjectPublicKeyInfo. The key name is the
origin. So a note is checked with nothing but openssl (docs/audit.md).

Parsing is strict: anything the two specifications do not allow is refused, with the reason.
A note counts only with a verified signature of the expected key: signatures by other keys
(a witness's cosignature) are ignored, and one by the expected key that fails rejects the note.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import re
from dataclasses import dataclass, field

import grpc
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from node.errors import AccordError
from node.merkle import HASH_SIZE

SIGNATURE_TYPE_ECDSA = 0x02  # signed-note's type for ECDSA as transparency-dev/witness does it
MAX_NOTE_BYTES = 64 * 1024  # a checkpoint with a hundred cosignatures is under 16 KiB
MAX_SIGNATURES = 100  # the spec asks verifiers to take at least 16; Go's note package stops here
MAX_TREE_SIZE = 2**64 - 1  # the tree size is a uint64 in every implementation
_SIG_PREFIX = "\u2014 "  # em dash, space
_ECDSA = ec.ECDSA(hashes.SHA256())
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class Problem(enum.StrEnum):
    MALFORMED = "MALFORMED"  # not a signed note, or its text not a checkpoint
    UNSIGNED = "UNSIGNED"  # no signature by the expected key
    BAD_SIGNATURE = "BAD_SIGNATURE"  # a signature by the expected key does not verify
    WRONG_ORIGIN = "WRONG_ORIGIN"  # signed, but for another log


class CheckpointError(AccordError):
    """A checkpoint that cannot be accepted; `problem` says why."""

    status = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(f"{problem}: {message}")
        self.problem = problem
        self.detail = message


def _malformed(message: str) -> CheckpointError:
    return CheckpointError(Problem.MALFORMED, message)


def _valid_name(name: str) -> bool:
    """signed-note: non-empty, no Unicode space, no plus."""
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def _control(text: str) -> bool:
    return any(c < " " and c != "\n" for c in text)


def _b64decode(text: str) -> bytes:
    """Standard base64, padded and canonical: one text for each byte string."""
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise _malformed(f"{text[:40]!r} is not base64: {exc}") from exc
    if base64.b64encode(raw).decode() != text:
        raise _malformed(f"{text[:40]!r} is not canonical base64")
    return raw


def origin_for(federation: str, agency: str) -> str:
    """The origin (and key name) of an agency's audit log."""
    origin = f"{federation}/agency/{agency}/audit"
    if not _valid_name(origin) or _control(origin):
        raise ValueError(f"{origin!r} cannot name a log: no spaces, plus signs or controls")
    return origin


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: the log's origin, its size and its RFC 6962 root hash."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for line in (self.origin, *self.extensions):
            if not line or "\n" in line or _control(line):
                raise ValueError(f"checkpoint line {line!r}: not empty, one line, no controls")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise ValueError(f"tree size {self.size} is not a uint64")
        if len(self.root) != HASH_SIZE:
            raise ValueError(f"root hash has {len(self.root)} bytes, not {HASH_SIZE}")

    def text(self) -> bytes:
        """The note text: what the signature covers."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "".join(f"{line}\n" for line in (*lines, *self.extensions)).encode()


def parse_checkpoint(text: bytes) -> Checkpoint:
    """A note's text as a checkpoint, strictly (tlog-checkpoint, "Note text")."""
    try:
        decoded = text.decode()
    except UnicodeDecodeError as exc:
        raise _malformed(f"checkpoint is not UTF-8: {exc}") from exc
    if not decoded.endswith("\n"):
        raise _malformed("checkpoint text does not end with a newline")
    lines = decoded[:-1].split("\n")
    if len(lines) < 3:
        raise _malformed(f"checkpoint has {len(lines)} lines; origin, size and root are needed")
    origin, size, root, *extensions = lines
    if not origin:
        raise _malformed("checkpoint origin is empty")
    if not _DECIMAL.fullmatch(size) or int(size) > MAX_TREE_SIZE:
        raise _malformed(f"tree size {size[:40]!r} is not a decimal uint64 without leading zeros")
    root_hash = _b64decode(root)
    if len(root_hash) != HASH_SIZE:
        raise _malformed(f"root hash has {len(root_hash)} bytes, not {HASH_SIZE}")
    if any(not line for line in extensions):
        raise _malformed("checkpoint has an empty extension line")
    if _control(decoded):
        raise _malformed("checkpoint holds a control character")
    return Checkpoint(origin, int(size), root_hash, tuple(extensions))


@dataclass(frozen=True, slots=True)
class NoteSignature:
    name: str
    key_id: bytes  # 4 bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class Note:
    text: bytes
    signatures: tuple[NoteSignature, ...]


def parse_note(note: bytes) -> Note:
    """A signed note's text and signature lines, strictly (signed-note, "Format")."""
    if len(note) > MAX_NOTE_BYTES:
        raise _malformed(f"note has {len(note)} bytes, more than {MAX_NOTE_BYTES}")
    try:
        decoded = note.decode()
    except UnicodeDecodeError as exc:
        raise _malformed(f"note is not UTF-8: {exc}") from exc
    if _control(decoded):
        raise _malformed("note holds a control character other than newline")
    split = decoded.rfind("\n\n")
    if split < 0:
        raise _malformed("note has no blank line before its signatures")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    if not block or not block.endswith("\n"):
        raise _malformed("note has no signature lines, or they do not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise _malformed(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    signatures = []
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise _malformed(f"signature line {line[:40]!r} does not start with an em dash")
        name, space, encoded = line[len(_SIG_PREFIX) :].partition(" ")
        if not space or not _valid_name(name):
            raise _malformed(f"signature line {line[:40]!r}: key name is not valid")
        raw = _b64decode(encoded)
        if len(raw) < 5:
            raise _malformed(f"signature by {name!r} is shorter than a key ID and one byte")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    return Note(text.encode(), tuple(signatures))


@dataclass(frozen=True, slots=True)
class NoteKey:
    """A public key that signs notes under a name (for the node, its log's origin)."""

    name: str
    public_key: ec.EllipticCurvePublicKey
    der: bytes = field(init=False, repr=False)
    key_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        if not _valid_name(self.name) or _control(self.name):
            raise ValueError(f"key name {self.name!r}: not empty, no spaces, plus or controls")
        if not isinstance(self.public_key.curve, ec.SECP256R1):
            raise ValueError(f"note keys are ECDSA P-256, not {self.public_key.curve.name}")
        der = self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        object.__setattr__(self, "der", der)
        object.__setattr__(self, "key_id", hashlib.sha256(der).digest()[:4])

    def vkey(self) -> str:
        """The key as transparency-dev's note verifiers take it (a witness's configuration):
        name + hex key ID + base64(0x02 || DER SubjectPublicKeyInfo)."""
        encoded = base64.b64encode(bytes([SIGNATURE_TYPE_ECDSA]) + self.der).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteKey:
        name, _, rest = vkey.partition("+")
        key_id, _, encoded = rest.partition("+")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"verifier key {vkey[:60]!r}: key is not base64") from exc
        if not raw or raw[0] != SIGNATURE_TYPE_ECDSA:
            raise ValueError(f"verifier key {vkey[:60]!r} is not an ECDSA (0x02) key")
        try:
            public_key = serialization.load_der_public_key(raw[1:])
        except ValueError as exc:
            raise ValueError(f"verifier key {vkey[:60]!r}: {exc}") from exc
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise ValueError(f"verifier key {vkey[:60]!r} is not an EC key")
        key = cls(name, public_key)
        if key_id != key.key_id.hex():
            raise ValueError(f"verifier key {vkey[:60]!r}: key ID {key_id!r} is not its hash")
        return key


def sign(checkpoint: Checkpoint, private_key: ec.EllipticCurvePrivateKey) -> bytes:
    """The checkpoint as a note signed by `private_key` under the checkpoint's origin."""
    key = NoteKey(checkpoint.origin, private_key.public_key())
    text = checkpoint.text()
    signature = key.key_id + private_key.sign(text, _ECDSA)
    line = f"{_SIG_PREFIX}{key.name} {base64.b64encode(signature).decode()}\n"
    return text + b"\n" + line.encode()


def open_checkpoint(note: bytes, key: NoteKey) -> Checkpoint:
    """The checkpoint a note holds, if `key` signed it for the log named by the key: raises
    CheckpointError otherwise."""
    parsed = parse_note(note)
    mine = [s for s in parsed.signatures if (s.name, s.key_id) == (key.name, key.key_id)]
    if not mine:
        raise CheckpointError(
            Problem.UNSIGNED, f"no signature by {key.name} (key ID {key.key_id.hex()})"
        )
    for s in mine:
        try:
            key.public_key.verify(s.signature, parsed.text, _ECDSA)
        except InvalidSignature:
            raise CheckpointError(
                Problem.BAD_SIGNATURE, f"the signature by {key.name} does not verify"
            ) from None
    checkpoint = parse_checkpoint(parsed.text)
    if checkpoint.origin != key.name:
        raise CheckpointError(
            Problem.WRONG_ORIGIN, f"checkpoint of {checkpoint.origin!r}, not of {key.name!r}"
        )
    return checkpoint
