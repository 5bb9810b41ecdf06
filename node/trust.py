"""What a node trusts: the federation CA, the current CRL and the signed directory.

Peers are checked here, once, for both directions: inbound calls (the auth interceptor) and
outbound links (before connecting, and when verifying receipts).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from certs.directory import Directory, Member, read_signed, verify_directory
from certs.errors import PkiError
from certs.identity import agency_of, fingerprint
from node.errors import ConfigError, Reason, Unauthenticated
from node.signing import public_key_of

log = logging.getLogger(__name__)


class NotCurrent(Unauthenticated):
    """What this node trusts is not usable now (a CRL or directory past its validity): every
    peer is refused and so is every new send, with `reason`, until it is fixed."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Peer:
    """An authenticated federation member."""

    agency: str
    certificate: x509.Certificate
    fingerprint: str
    public_key: ec.EllipticCurvePublicKey
    # Read from the certificate once: each read of these builds new Python objects, and a
    # link re-checks its peer before every batch it sends.
    serial: int = field(init=False)
    not_before: datetime = field(init=False)
    not_after: datetime = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "serial", self.certificate.serial_number)
        object.__setattr__(self, "not_before", self.certificate.not_valid_before_utc)
        object.__setattr__(self, "not_after", self.certificate.not_valid_after_utc)


class Trust:
    def __init__(
        self, *, federation: str, ca_path: Path, crl_path: Path, directory_path: Path
    ) -> None:
        self.federation = federation
        self._ca_path = ca_path
        self._crl_path = crl_path
        self._directory_path = directory_path
        try:
            self.ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"tls.ca: cannot load CA certificate {ca_path}: {exc}") from exc
        self._ca_key = self.ca.public_key()
        self.crl: x509.CertificateRevocationList | None = None
        self.crl_number = 0
        self.revoked: frozenset[int] = frozenset()
        self.directory: Directory | None = None
        self.directory_document: tuple[bytes, bytes] | None = None  # (file, signature)
        self._crl_mtime = (-1, -1, -1)
        self._dir_mtime = (-1, -1, -1)
        self._peers: dict[bytes, Peer] = {}  # by certificate PEM (inbound calls)
        self._members: dict[str, tuple[Member, Peer]] = {}  # by agency (outbound links)
        self._crl_next_update: datetime | None = None
        self._own: Peer | None = None  # this node's own certificate, checked like a peer's
        # Bumped whenever the CRL or directory changes, so long-lived streams know to re-check.
        self.generation = 0

    # ---- loading ----------------------------------------------------------------------------

    def load_initial(self) -> None:
        """Load CRL and directory; at start an invalid one is a configuration error."""
        try:
            self.reload_crl(force=True)
            self.reload_directory(force=True)
        except PkiError as exc:
            raise ConfigError(f"federation: {exc}") from exc

    def set_own(
        self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, *, agency: str
    ) -> None:
        """This node's own certificate: checked here once for what cannot change while it runs
        (issuer, identity, key), and by `check_own` for what can (revocation, validity).
        Unauthenticated naming the problem if it does not pass."""
        if cert.issuer != self.ca.subject:
            raise Unauthenticated("it is not issued by the federation CA (tls.ca)")
        try:
            cert.verify_directly_issued_by(self.ca)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise Unauthenticated("it is not issued by the federation CA (tls.ca)") from exc
        try:
            named = agency_of(cert, self.federation)
        except PkiError as exc:
            raise Unauthenticated(f"its identity: {exc}") from exc
        if named != agency:
            raise Unauthenticated(f"it is {named}'s certificate, and this node is {agency}")
        try:
            public = public_key_of(cert)
        except ValueError as exc:
            raise Unauthenticated(str(exc)) from exc
        if public.public_numbers() != key.public_key().public_numbers():
            raise Unauthenticated("it does not match this node's key (tls.key)")
        self._own = Peer(agency, cert, fingerprint(cert), public)

    def check_own(self, now: datetime) -> None:
        """Unauthenticated if this node's own certificate is revoked, expired or not yet
        valid: a node must not vouch for messages (receipts, Hello) with a key peers refuse."""
        if self._own is not None:
            self._check_cert(self._own, now)

    def check_not_older(self, *, crl_number: int, directory_serial: int) -> None:
        """At start: refuse a CRL or directory older than one this node has seen before (the
        high-water marks it keeps in its database). Put back, an older CRL would undo a
        revocation and an older directory would list a revoked member again."""
        assert self.directory is not None
        if self.crl_number < crl_number:
            raise ConfigError(
                f"federation.crl: {self._crl_path} is CRL number {self.crl_number}, older than "
                f"number {crl_number} this node has already seen (an older CRL was put back, "
                "which would undo revocations); publish the current one (accord certs crl)"
            )
        if self.directory.serial < directory_serial:
            raise ConfigError(
                f"federation.directory: {self._directory_path} is serial "
                f"{self.directory.serial}, older than serial {directory_serial} this node has "
                "already seen (an older directory was put back); publish the current one"
            )

    def reload(self) -> bool:
        """Pick up a newer CRL or directory. Returns whether anything changed."""
        changed = False
        for step in (self.reload_crl, self.reload_directory):
            try:
                changed |= step()
            except PkiError as exc:
                log.warning("federation update refused: %s", exc)
        return changed

    def reload_crl(self, *, force: bool = False) -> bool:
        mtime = _mtime(self._crl_path)
        if not force and mtime == self._crl_mtime:
            return False
        try:
            crl = x509.load_pem_x509_crl(self._crl_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise PkiError(f"cannot load CRL {self._crl_path}: {exc}") from exc
        if crl.issuer != self.ca.subject or not crl.is_signature_valid(self._ca_key):  # type: ignore[arg-type]
            raise PkiError(f"CRL {self._crl_path} is not signed by the federation CA")
        if self.crl is not None:
            # thisUpdate has one-second precision, so two CRLs published in the same second
            # (a revocation right after a routine republish) tie on it; the CRL number orders
            # them. Without this an older CRL, replayed, would silently undo a revocation.
            number, loaded = _crl_number(crl), _crl_number(self.crl)
            if crl.last_update_utc < self.crl.last_update_utc or number < loaded:
                self._crl_mtime = mtime  # refused once; warn again only when the file changes
                raise PkiError(
                    f"CRL number {number} (issued {crl.last_update_utc}) is older than the "
                    f"loaded CRL number {loaded}; keeping the loaded one"
                )
        self.crl = crl
        self.crl_number = _crl_number(crl)
        self.revoked = frozenset(r.serial_number for r in crl)
        self._crl_next_update = crl.next_update_utc
        self._crl_mtime = mtime
        self._forget_peers()
        self.generation += 1
        return True

    def reload_directory(self, *, force: bool = False) -> bool:
        mtime = _mtime(self._directory_path)
        if not force and mtime == self._dir_mtime:
            return False
        document = read_signed(self._directory_path)
        new = verify_directory(*document, self.ca)
        if new.federation != self.federation:
            raise PkiError(f"directory is for federation {new.federation}, not {self.federation}")
        if self.directory is not None and new.serial <= self.directory.serial:
            self._dir_mtime = mtime
            if new.serial < self.directory.serial:
                raise PkiError(
                    f"directory serial {new.serial} is older than the loaded "
                    f"{self.directory.serial}"
                )
            return False
        self.directory = new
        # The signed bytes as published, for evidence bundles (a third party checks them).
        self.directory_document = document
        self._dir_mtime = mtime
        self._forget_peers()
        self.generation += 1
        log.info("federation directory serial %d loaded", new.serial)
        return True

    def _forget_peers(self) -> None:
        """A new CRL or directory: every peer is checked from scratch on its next use."""
        self._peers.clear()
        self._members.clear()

    @property
    def crl_next_update(self) -> datetime | None:
        """When the loaded CRL stops vouching for anything (None: none loaded)."""
        return self._crl_next_update

    # ---- checks -----------------------------------------------------------------------------

    def check_current(self, now: datetime) -> None:
        """NotCurrent unless the CRL and the directory are within their validity."""
        if self.crl is None:
            raise NotCurrent(
                Reason.FEDERATION_STALE,
                "no CRL loaded: refusing all peers until one is published",
            )
        next_update = self._crl_next_update
        if next_update is None or now > next_update:
            raise NotCurrent(
                Reason.FEDERATION_STALE,
                f"the federation CRL expired at {next_update}: refusing all peers until a fresh "
                "CRL is published (accord certs crl)",
            )
        try:
            self.check_own(now)
        except Unauthenticated as exc:
            raise NotCurrent(
                Reason.OWN_CERTIFICATE_INVALID,
                f"this node's own certificate is not valid now ({exc}): it serves no peer and "
                "sends nothing until it has a valid one (accord certs issue, then restart)",
            ) from exc
        directory = self.directory
        if directory is None or now > directory.valid_until:
            serial = directory.serial if directory else "-"
            until = directory.valid_until if directory else "-"
            raise NotCurrent(
                Reason.FEDERATION_STALE,
                f"the federation directory (serial {serial}) expired at {until}: refusing all "
                "peers until the authority signs it again (accord certs directory)",
            )

    def peer_from_pem(self, pem: bytes, now: datetime) -> Peer:
        """Authenticate a peer certificate (already chain-verified by TLS) or raise."""
        self.check_current(now)
        peer = self._peers.get(pem)
        if peer is not None:
            self._check_cert(peer, now)
            return peer
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise Unauthenticated("peer certificate does not parse") from exc
        # Revocation and validity before identity: revoking an agency also drops it from the
        # directory, and the caller must hear "revoked", not "not a member".
        self._check_issuer(cert)
        _check_validity(cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc,
                        self.revoked, now)  # fmt: skip
        peer = self._identify(cert)
        self._peers[pem] = peer
        return peer

    def member_peer(self, agency: str, now: datetime) -> tuple[Member, Peer]:
        """The directory's entry for an agency we are about to send to, checked like a caller."""
        self.check_current(now)
        known = self._members.get(agency)
        if known is None:
            member = self.directory.member(agency) if self.directory else None
            if member is None:
                raise Unauthenticated(f"{agency} is not a member of the federation directory")
            cert = member.certificate()
            known = member, Peer(agency, cert, member.certificate_sha256, public_key_of(cert))
        # Checked on every call, cached or not: the clock moves past a certificate's expiry.
        self._check_cert(known[1], now)
        self._members[agency] = known
        return known

    def _check_issuer(self, cert: x509.Certificate) -> None:
        """TLS verified the chain already; checked again so the CRL's serials apply to it."""
        if cert.issuer != self.ca.subject:
            raise Unauthenticated("peer certificate is not issued by the federation CA")
        try:
            cert.verify_directly_issued_by(self.ca)
        except (ValueError, TypeError) as exc:
            raise Unauthenticated("peer certificate is not issued by the federation CA") from exc
        except InvalidSignature as exc:
            raise Unauthenticated("peer certificate signature does not verify") from exc

    def _identify(self, cert: x509.Certificate) -> Peer:
        try:
            agency = agency_of(cert, self.federation)
        except PkiError as exc:
            raise Unauthenticated(f"peer certificate identity: {exc}") from exc
        fp = fingerprint(cert)
        member = self.directory.member(agency) if self.directory else None
        if member is None:
            raise Unauthenticated(f"{agency} is not a member of the federation directory")
        if member.certificate_sha256 != fp:
            raise Unauthenticated(
                f"certificate {fp[:16]}... is not the one the directory lists for {agency}"
            )
        try:
            key = public_key_of(cert)
        except ValueError as exc:
            raise Unauthenticated(f"peer certificate of {agency}: {exc}") from exc
        return Peer(agency, cert, fp, key)

    def _check_cert(self, peer: Peer, now: datetime) -> None:
        _check_validity(peer.serial, peer.not_before, peer.not_after, self.revoked, now)


def _check_validity(
    serial: int, not_before: datetime, not_after: datetime, revoked: frozenset[int], now: datetime
) -> None:
    if serial in revoked:
        raise Unauthenticated(f"certificate serial {serial:x} is revoked by the federation CRL")
    if now < not_before:
        raise Unauthenticated(f"certificate is not valid before {not_before}")
    if now > not_after:
        raise Unauthenticated(f"certificate expired at {not_after}")


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return 0


def _mtime(path: Path) -> tuple[int, int, int]:
    """A change marker: files are replaced atomically, so the inode changes on every update."""
    try:
        st = path.stat()
    except OSError:
        return (-1, -1, -1)
    return (st.st_ino, st.st_mtime_ns, st.st_size)
