"""Federation PKI: the CA, node certificates, revocation and the signed federation directory."""

from certs.errors import PkiError

__all__ = ["PkiError"]
