class PkiError(Exception):
    """A PKI operation or check failed; the message says what and what to do."""
