"""An evidence bundle: everything a third party needs to check one message's exchange without
Accord and without trusting either node's database (docs/evidence.md), as a zip.

Layout (every name fixed, so VERIFY.sh finds each part by name):

    README.txt                  what this is and how to check it
    VERIFY.sh                   the checks, in POSIX sh with openssl
    ca.pem                      the federation CA
    directory.json(.sig)        the signed federation directory (members and their certificates)
    certs/CODE.pem              the sender's, each receipting receiver's and the log keeper's
    envelope/content.bin        the envelope content (serialised MessageContent)
    envelope/signature.der      the sender's signature (ECDSA P-256, DER)
    envelope/proof.bin          its audit path to the signed batch root (empty: signed alone)
    receipts/CODE/...           each receipt: content.bin, signature.der, proof.bin
    audit/checkpoint.txt        a signed checkpoint of the exporting node's audit log
    audit/N.json, audit/N.proof entry N's canonical bytes and its inclusion proof (32-byte hashes)
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from node.audit.source import MessageEvidence
from node.errors import InvalidRequest

MAX_BUNDLE_BYTES = 256 * 1024 * 1024  # the content limit is 50 MB; the rest is small
MAX_FILES = 10_000
_NAME = re.compile(
    r"(README\.txt|VERIFY\.sh|ca\.pem|directory\.json(\.sig)?|certs/[A-Z0-9-]+\.pem"
    r"|envelope/(content\.bin|signature\.der|proof\.bin)"
    r"|receipts/[A-Z0-9-]+/(content\.bin|signature\.der|proof\.bin)"
    r"|audit/(checkpoint\.txt|[1-9][0-9]*\.(json|proof)))"
)


def verify_script() -> bytes:
    """The VERIFY.sh that Accord ships (every bundle carries this exact script)."""
    return resources.files("node.evidence").joinpath("VERIFY.sh").read_bytes()


@dataclass(frozen=True, slots=True)
class Signed:
    """Signed bytes as they travelled: content, signature, and the audit path to a batch root
    (empty when signed alone)."""

    content: bytes
    signature: bytes
    proof: bytes = b""


@dataclass(frozen=True, slots=True)
class Bundle:
    message_id: str
    exporter: str  # the agency whose node wrote the bundle (and keeps the audit log)
    envelope: Signed
    receipts: Mapping[str, Signed]  # by receiving agency
    certificates: Mapping[str, bytes]  # PEM, by agency
    ca_pem: bytes
    directory: bytes
    directory_signature: bytes
    audit: MessageEvidence
    created: str = ""  # when the bundle was written, RFC 3339 (README only)

    def files(self) -> dict[str, bytes]:
        out = {
            "README.txt": self.readme().encode(),
            "VERIFY.sh": verify_script(),
            "ca.pem": self.ca_pem,
            "directory.json": self.directory,
            "directory.json.sig": self.directory_signature,
        }
        for agency, pem in self.certificates.items():
            out[f"certs/{agency}.pem"] = pem
        out.update(_signed("envelope", self.envelope))
        for agency, receipt in self.receipts.items():
            out.update(_signed(f"receipts/{agency}", receipt))
        out["audit/checkpoint.txt"] = self.audit.checkpoint
        for entry in self.audit.entries:
            out[f"audit/{entry.seq}.json"] = entry.data
            out[f"audit/{entry.seq}.proof"] = b"".join(entry.proof)
        for name in out:
            if not _NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a bundle file name")
        return out

    def readme(self) -> str:
        receipts = ", ".join(self.receipts) or "none"
        audit = (
            f"{len(self.audit.entries)} audit entries of {self.exporter}'s log with their "
            "inclusion proofs, and a checkpoint of that log signed by its node"
        )
        return (
            f"Accord evidence bundle for message {self.message_id}\n"
            f"written by {self.exporter}'s node{' at ' + self.created if self.created else ''}\n\n"
            f"Holds: the envelope (content, the sender's signature and its batch audit path),\n"
            f"the receipts of {receipts} (each with its signature and path), the certificates\n"
            f"of the agencies involved, the federation CA, the signed federation directory,\n"
            f"and {audit}.\n\n"
            "Check it on any machine with a POSIX shell and openssl:\n\n"
            "    unzip BUNDLE.zip -d bundle && sh bundle/VERIFY.sh\n\n"
            "It prints one line per check and stops at the first failure, naming it. With\n"
            "Accord: accord evidence verify BUNDLE.zip. What each check proves: Accord's\n"
            "docs/evidence.md. Nothing in this README is checked: the files are the evidence.\n"
        )

    def to_zip(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in sorted(self.files().items()):
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (0o755 if name == "VERIFY.sh" else 0o644) << 16
                zf.writestr(info, data)
        return buffer.getvalue()


def _signed(folder: str, item: Signed) -> dict[str, bytes]:
    return {
        f"{folder}/content.bin": item.content,
        f"{folder}/signature.der": item.signature,
        f"{folder}/proof.bin": item.proof,
    }


class BadBundle(InvalidRequest):
    """A file that is not an evidence bundle at all (before any check of its contents)."""


def read_zip(data: bytes) -> dict[str, bytes]:
    """A bundle's files by name: only names the layout allows, bounded in number and size."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise BadBundle(f"not a zip file: {exc}") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_FILES:
            raise BadBundle(f"{len(infos)} files; a bundle has at most {MAX_FILES}")
        if sum(i.file_size for i in infos) > MAX_BUNDLE_BYTES:
            raise BadBundle(f"unpacks to more than {MAX_BUNDLE_BYTES} bytes")
        files: dict[str, bytes] = {}
        for info in infos:
            if info.is_dir():
                continue
            if not _NAME.fullmatch(info.filename) or info.filename in files:
                raise BadBundle(f"{info.filename[:80]!r} is not a file of an evidence bundle")
            try:
                files[info.filename] = zf.read(info)
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                raise BadBundle(f"{info.filename}: {exc}") from exc
    return files
