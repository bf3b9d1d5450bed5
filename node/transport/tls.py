"""TLS for the node's endpoints: ``wss://`` from a certificate and key in PEM files.

DESIGN.md "Transport": ``wss://`` with certificate files in the node's config, plain ``ws://``
for loopback and tests. The context is built once at start, so a missing file, a key that does
not match its certificate or a password-protected key stops the start with one clear line
(``TLSError``) instead of failing the first handshake.
"""

from __future__ import annotations

import ssl
from pathlib import Path

__all__ = ["TLSError", "server_tls_context"]


class TLSError(Exception):
    """The certificate or key cannot be used; the message is one line for the operator."""


def _never_prompt() -> str:
    # Called by OpenSSL for an encrypted key: a node starts unattended, so refuse instead of
    # blocking on a terminal prompt.
    raise TLSError("the TLS key is encrypted; give the node an unencrypted key file")


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side context: TLS 1.2 or later, the system's defaults, this cert and key."""
    for path in (cert, key):
        if not path.is_file():
            raise TLSError(f"cannot read TLS file {path}: not found")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key, password=_never_prompt)
    except OSError as exc:
        if isinstance(exc, ssl.SSLError):
            reason = exc.reason or exc.strerror or str(exc)
            raise TLSError(f"cannot use TLS certificate {cert} with key {key}: {reason}") from None
        raise TLSError(
            f"cannot read TLS file {exc.filename or cert}: {exc.strerror or exc}"
        ) from None
    return context
