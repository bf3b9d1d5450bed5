"""The building blocks Olm and Megolm share (spec/e2ee.md §1), from PyNaCl and
``cryptography`` only.

* X25519 and Ed25519 from PyNaCl (libsodium); HKDF-SHA-256, HMAC-SHA-256 and AES-256-CBC
  with PKCS#7 padding from ``cryptography`` — the primitives the Olm and Megolm
  specifications name, nothing else.
* The message encodings' pieces: LEB128 varints (minimal, as the receivers re-encode and
  compare) and unpadded standard base64.
* Sealing state for storage: XSalsa20-Poly1305 (``secretbox``) under a 32-byte key the
  caller provides, with a nonce drawn from the caller's randomness.

Pure: randomness comes in as a ``random_bytes(n)`` callable, so the node, the client and
tests decide where it comes from (tests pass a seeded one to make known-answer vectors).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac as std_hmac
from collections.abc import Callable
from typing import Final

import nacl.bindings
import nacl.exceptions
import nacl.secret
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from protocol.errors import ErrorCode, RemoteProtocolError

__all__ = [
    "KEY_BYTES",
    "MAC_BYTES",
    "RandomBytes",
    "aes_cbc_decrypt",
    "aes_cbc_encrypt",
    "b64decode",
    "b64encode",
    "decode_varint",
    "encode_varint",
    "hkdf_sha256",
    "hmac_sha256",
    "open_sealed",
    "seal",
    "x25519",
    "x25519_public",
]

RandomBytes = Callable[[int], bytes]
"""``random_bytes(n)``: n bytes from a cryptographically secure source."""

KEY_BYTES: Final = 32
MAC_BYTES: Final = 8
"""Olm and Megolm truncate their HMAC-SHA-256 to this many bytes."""
_MAX_VARINT_BYTES: Final = 10


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.BAD_MESSAGE, message)


# --- X25519 -------------------------------------------------------------------------------


def x25519_public(private: bytes) -> bytes:
    """The public key of a 32-byte X25519 private key (libsodium clamps the scalar)."""
    return nacl.bindings.crypto_scalarmult_base(private)


def x25519(private: bytes, public: bytes) -> bytes:
    """The shared secret; ``bad_message`` for a public key of low order (an all-zero
    result, which libsodium refuses and vodozemac rejects too)."""
    if len(public) != KEY_BYTES:
        raise _bad(f"a Curve25519 key is {KEY_BYTES} bytes")
    try:
        return nacl.bindings.crypto_scalarmult(private, public)
    except (RuntimeError, nacl.exceptions.RuntimeError) as exc:
        raise _bad("the Curve25519 key gives no shared secret (low order point)") from exc


# --- hashes, HMAC, HKDF, AES-CBC ----------------------------------------------------------


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA-256 (RFC 2104)."""
    return std_hmac.new(key, message, hashlib.sha256).digest()


def hkdf_sha256(secret: bytes, *, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA-256 (RFC 5869). Olm's "salt 0" is ``b"\\x00"``: HMAC pads keys with zeros,
    so it is the same as no salt at all (spec/e2ee.md §1)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(secret)


def aes_cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """AES-256-CBC with PKCS#7 padding."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def aes_cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """The inverse of :func:`aes_cbc_encrypt`; ``bad_message`` for bad length or padding
    (callers check the MAC first, so this never acts as a padding oracle)."""
    if not ciphertext or len(ciphertext) % 16:
        raise _bad("the ciphertext is not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise _bad("bad padding") from exc


# --- encodings ----------------------------------------------------------------------------


def encode_varint(value: int) -> bytes:
    """The minimal unsigned LEB128 encoding of ``value`` (as protobuf writes it)."""
    if value < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes, offset: int) -> tuple[int, int]:
    """The varint at ``offset`` and the offset after it; ``bad_message`` if it is cut
    short, longer than 10 bytes, or not minimal (a receiver re-encodes what it parsed, so
    a non-minimal encoding could not be authenticated the same way, spec/e2ee.md §1)."""
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        if offset + index >= len(data):
            raise _bad("a varint is cut short")
        byte = data[offset + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if index and byte == 0:
                raise _bad("a varint is not minimal")
            return value, offset + index + 1
    raise _bad("a varint is longer than 10 bytes")


def b64encode(data: bytes) -> str:
    """Standard base64 without padding, as Olm and Matrix write keys and messages."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: str) -> bytes:
    """The inverse of :func:`b64encode` (padding tolerated); ``bad_base64`` otherwise."""
    if not isinstance(text, str):
        raise RemoteProtocolError(ErrorCode.BAD_BASE64, "base64 must be a string")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RemoteProtocolError(ErrorCode.BAD_BASE64, "not standard base64") from exc


# --- sealing state for storage ------------------------------------------------------------


def seal(key: bytes, random_bytes: RandomBytes, data: bytes) -> bytes:
    """``data`` encrypted and authenticated under ``key`` (32 bytes): nonce ‖ box."""
    box = nacl.secret.SecretBox(key)
    nonce = random_bytes(nacl.secret.SecretBox.NONCE_SIZE)
    return bytes(box.encrypt(data, nonce))


def open_sealed(key: bytes, sealed: bytes) -> bytes:
    """The data :func:`seal` sealed; ``bad_message`` for a wrong key or altered bytes."""
    try:
        return nacl.secret.SecretBox(key).decrypt(sealed)
    except (nacl.exceptions.CryptoError, ValueError) as exc:
        raise _bad("sealed state does not open with this key") from exc
