"""Unpadded base64, the only binary-to-text encoding Kith uses (spec/signing.md §1).

Keys, signatures and content hashes use the standard alphabet; identifiers derived from
hashes (event ids, room ids) use the URL-safe alphabet so they can appear in URLs and paths.
Decoding is strict: padding, characters outside the alphabet, impossible lengths and
non-zero trailing bits are rejected, so every byte string has exactly one text form.
"""

from __future__ import annotations

import base64
import binascii
import re

from protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError

__all__ = [
    "decode_base64",
    "decode_base64_urlsafe",
    "encode_base64",
    "encode_base64_urlsafe",
]

_STANDARD = re.compile(r"[A-Za-z0-9+/]*")
_URLSAFE = re.compile(r"[A-Za-z0-9_-]*")


def encode_base64(data: bytes) -> str:
    """Standard-alphabet base64 of ``data`` without ``=`` padding."""
    return base64.b64encode(data).rstrip(b"=").decode("ascii")


def encode_base64_urlsafe(data: bytes) -> str:
    """URL-safe base64 (``-`` and ``_``) of ``data`` without ``=`` padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode_base64(text: str) -> bytes:
    """Decode unpadded standard base64; raise ``RemoteProtocolError(bad_base64)`` otherwise."""
    return _decode(text, _STANDARD, urlsafe=False)


def decode_base64_urlsafe(text: str) -> bytes:
    """Decode unpadded URL-safe base64; raise ``RemoteProtocolError(bad_base64)`` otherwise."""
    return _decode(text, _URLSAFE, urlsafe=True)


def _decode(text: str, alphabet: re.Pattern[str], *, urlsafe: bool) -> bytes:
    if not isinstance(text, str):
        raise LocalProtocolError(ErrorCode.BAD_BASE64, "base64 input must be a str")
    if alphabet.fullmatch(text) is None:
        raise RemoteProtocolError(ErrorCode.BAD_BASE64, "character outside the base64 alphabet")
    if len(text) % 4 == 1:
        raise RemoteProtocolError(ErrorCode.BAD_BASE64, "impossible base64 length")
    padded = text + "=" * (-len(text) % 4)
    try:
        data = base64.urlsafe_b64decode(padded) if urlsafe else base64.b64decode(padded)
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - excluded by the checks above
        raise RemoteProtocolError(ErrorCode.BAD_BASE64, "invalid base64") from exc
    again = encode_base64_urlsafe(data) if urlsafe else encode_base64(data)
    if again != text:
        raise RemoteProtocolError(ErrorCode.BAD_BASE64, "non-zero trailing bits in base64")
    return data
