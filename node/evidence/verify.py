"""The checks of an evidence bundle in Python: the same checks, in the same order and under the
same names, as the bundle's VERIFY.sh (docs/evidence.md). No I/O: bytes in, checks out.

Like VERIFY.sh, the checks stop at the first failure: each later check relies on what the
earlier ones established (the directory on the CA, a certificate on the directory, a signature
on the certificate)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.message import DecodeError

from accord.v1 import message_pb2 as pb
from certs.directory import verify_directory
from certs.errors import PkiError
from certs.identity import fingerprint, spiffe_id
from node import merkle, signing
from node.audit.checkpoint import CheckpointError, NoteKey, open_checkpoint, parse_note
from node.evidence.bundle import verify_script

_CODE = re.compile(r"[A-Z0-9-]+")
# What loading a changed certificate, or checking its signature, can raise.
_BAD_CERTIFICATE = (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm)


@dataclass(frozen=True, slots=True)
class Check:
    name: str  # what is checked, e.g. "envelope" or "receipt of DE-BKA"
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'FAIL'}: {self.name}: {self.detail}"


class _Failed(Exception):
    def __init__(self, name: str, detail: str) -> None:
        super().__init__(detail)
        self.check = Check(name, False, detail)


def _fail(name: str, detail: str) -> _Failed:
    return _Failed(name, detail)


def check_bundle(files: Mapping[str, bytes]) -> list[Check]:
    """Every check in order, up to and including the first that fails."""
    done: list[Check] = []
    try:
        for check in _checks(files):
            done.append(check)
    except _Failed as failed:
        done.append(failed.check)
    return done


def _need(files: Mapping[str, bytes], name: str, what: str) -> bytes:
    if name not in files:
        raise _fail(what, f"{name} is missing")
    return files[name]


def _parse(kind: type[pb.MessageContent] | type[pb.ReceiptContent], data: bytes, what: str):  # type: ignore[no-untyped-def]
    message = kind()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise _fail(what, f"content is not a {kind.__name__}: {exc}") from exc
    return message


def _checks(files: Mapping[str, bytes]) -> Iterator[Check]:
    if files.get("VERIFY.sh") != verify_script():
        # Not evidence, but a reader who runs it should run the script Accord ships.
        raise _fail("VERIFY.sh", "is not the script this version of Accord writes")
    yield Check("VERIFY.sh", True, "the script this version of Accord writes")

    ca_pem = _need(files, "ca.pem", "federation CA")
    try:
        ca = x509.load_pem_x509_certificate(ca_pem)
        ca.verify_directly_issued_by(ca)
    except _BAD_CERTIFICATE as exc:
        raise _fail("federation CA", f"ca.pem is not a self-signed certificate ({exc})") from exc
    yield Check("federation CA", True, f"ca.pem is self-signed ({ca.subject.rfc4514_string()})")

    data = _need(files, "directory.json", "directory")
    try:
        directory = verify_directory(data, _need(files, "directory.json.sig", "directory"), ca)
    except PkiError as exc:
        raise _fail("directory", str(exc)) from exc
    yield Check("directory", True, "signed by the federation CA")

    content = _need(files, "envelope/content.bin", "envelope")
    message = _parse(pb.MessageContent, content, "envelope")
    if not message.message_id or not message.sender or not message.HasField("created_at"):
        raise _fail("envelope", "content names no message id, sender or creation time")
    if not _CODE.fullmatch(message.sender):
        raise _fail("envelope", f"sender {message.sender[:40]!r} is not an agency code")
    created = message.created_at.ToDatetime(tzinfo=UTC)
    yield Check(
        "envelope",
        True,
        f"message {message.message_id} from {message.sender} to {' '.join(message.recipients)}",
    )

    def agency(code: str) -> ec.EllipticCurvePublicKey:
        what = f"certificate of {code}"
        pem = _need(files, f"certs/{code}.pem", what)
        try:
            cert = x509.load_pem_x509_certificate(pem)
            cert.verify_directly_issued_by(ca)
        except _BAD_CERTIFICATE as exc:
            raise _fail(what, f"does not chain to the federation CA ({exc})") from exc
        if not cert.not_valid_before_utc <= created <= cert.not_valid_after_utc:
            raise _fail(what, f"not valid at {created.isoformat()}")
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        except x509.ExtensionNotFound:
            uris = []
        if spiffe_id(directory.federation, code) not in uris:
            raise _fail(what, f"does not name {spiffe_id(directory.federation, code)}")
        member = directory.member(code)
        if member is None or member.certificate_sha256 != fingerprint(cert):
            raise _fail(what, f"not the one the directory lists for {code}")
        return signing.public_key_of(cert)

    def signed(
        folder: str, domain: signing.Domain, key: ec.EllipticCurvePublicKey, what: str
    ) -> str:
        item = {
            n: _need(files, f"{folder}/{n}", what)
            for n in ("content.bin", "signature.der", "proof.bin")
        }
        proof = item["proof.bin"]
        signed_bytes = signing.signed_bytes(item["content.bin"], proof, domain)
        if signed_bytes is None:
            raise _fail(what, "audit path to the signed batch root is malformed")
        if not signing.verify_signed(key, signed_bytes, item["signature.der"]):
            raise _fail(what, "signature does not verify")
        return f"{len(proof) // merkle.STEP_SIZE} batch step(s)"

    sender_key = agency(message.sender)
    yield Check(
        f"certificate of {message.sender}", True, "issued by the CA, listed in the directory"
    )
    steps = signed("envelope", signing.ENVELOPE, sender_key, "envelope")
    yield Check("envelope", True, f"signature by {message.sender} verifies ({steps})")
    digest = hashlib.sha256(content).digest()

    receivers = sorted({n.split("/")[1] for n in files if n.startswith("receipts/")})
    for code in receivers:
        what = f"receipt of {code}"
        if code not in message.recipients:
            raise _fail(what, f"{code} is not a recipient")
        key = agency(code)
        yield Check(f"certificate of {code}", True, "issued by the CA, listed in the directory")
        steps = signed(f"receipts/{code}", signing.RECEIPT, key, what)
        yield Check(what, True, f"signature by {code} verifies ({steps})")
        receipt = _parse(pb.ReceiptContent, files[f"receipts/{code}/content.bin"], what)
        if receipt.message_id != message.message_id:
            raise _fail(what, "for another message")
        if receipt.sender != message.sender:
            raise _fail(what, "for another sender")
        if receipt.receiver != code:
            raise _fail(what, "by another receiver")
        if receipt.content_sha256 != digest:
            raise _fail(what, "receipted content digest differs from the envelope's")
        status = pb.ReceiptStatus.Name(receipt.status).removeprefix("RECEIPT_STATUS_")
        yield Check(what, True, f"same message, sender and content digest, {status}")
    yield Check("receipts", True, f"{len(receivers)} checked")

    note = files.get("audit/checkpoint.txt")
    if note is None:
        raise _fail("audit", "the bundle has no audit part (audit/checkpoint.txt is missing)")
    what = "audit checkpoint"
    try:
        origin = parse_note(note).text.split(b"\n", 1)[0].decode()
    except (CheckpointError, UnicodeDecodeError) as exc:
        raise _fail(what, str(exc)) from exc
    prefix = f"{directory.federation}/agency/"
    log = origin.removeprefix(prefix).removesuffix("/audit")
    if not _CODE.fullmatch(log) or origin != f"{prefix}{log}/audit":
        raise _fail(what, f"origin {origin[:80]!r} is no agency's log in {directory.federation}")
    log_key = agency(log)
    yield Check(f"certificate of {log}", True, "issued by the CA, listed in the directory")
    try:
        checkpoint = open_checkpoint(note, NoteKey(origin, log_key))
    except CheckpointError as exc:
        raise _fail(what, str(exc)) from exc
    yield Check(what, True, f"{log}'s log at size {checkpoint.size}, signed by {log}")

    seqs = sorted(int(n[6:-5]) for n in files if n.startswith("audit/") and n.endswith(".json"))
    for seq in seqs:
        what = f"audit entry {seq}"
        entry = files[f"audit/{seq}.json"]
        proof = _need(files, f"audit/{seq}.proof", what)
        if not entry.endswith(f'"seq":{seq}}}'.encode()):
            raise _fail(what, f"is not entry {seq}")
        if f'"message_id":"{message.message_id}"'.encode() not in entry:
            raise _fail(what, f"is not about message {message.message_id}")
        if seq > checkpoint.size:
            raise _fail(what, "beyond the checkpoint")
        if len(proof) % merkle.HASH_SIZE:
            raise _fail(what, "inclusion proof is malformed")
        hashes = [proof[i : i + merkle.HASH_SIZE] for i in range(0, len(proof), merkle.HASH_SIZE)]
        if not merkle.verify_inclusion(
            merkle.leaf_hash(entry), seq - 1, checkpoint.size, hashes, checkpoint.root
        ):
            raise _fail(what, "inclusion proof does not lead to the checkpoint's root")
        yield Check(what, True, f"{entry[:160].decode(errors='replace')}... in the signed log")
    if not seqs:
        raise _fail("audit", "a checkpoint with no entries")
    root = base64.b64encode(checkpoint.root).decode()
    yield Check("audit", True, f"{len(seqs)} entries about {message.message_id} checked ({root})")
