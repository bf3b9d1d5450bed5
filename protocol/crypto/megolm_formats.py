"""Megolm's byte formats (spec/e2ee.md §3.5 to §3.7): the message, the signed session key and
the unsigned export. Parsers are strict — every field present, in order, minimal varints,
exact lengths — and refuse anything else with ``bad_message`` (``bad_base64`` for base64).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

import nacl.bindings
import nacl.exceptions
from nacl.signing import SigningKey, VerifyKey

from protocol.crypto.megolm_ratchet import MAX_INDEX, RATCHET_BYTES, Ratchet
from protocol.crypto.primitives import (
    KEY_BYTES,
    MAC_BYTES,
    b64decode,
    b64encode,
    decode_varint,
    encode_varint,
)
from protocol.errors import ErrorCode, RemoteProtocolError

__all__ = [
    "EXPORT_BYTES",
    "SESSION_KEY_BYTES",
    "SIGNATURE_BYTES",
    "MegolmMessage",
    "SessionData",
    "decode_export",
    "decode_session_key",
    "encode_export",
    "encode_session_key",
    "export_bytes",
    "parse_export_bytes",
    "parse_signing_key",
    "verify_signature",
]

MESSAGE_VERSION: Final = 0x03
SESSION_KEY_VERSION: Final = 0x02
EXPORT_VERSION: Final = 0x01
_INDEX_TAG: Final = 0x08
_CIPHERTEXT_TAG: Final = 0x12
SIGNATURE_BYTES: Final = 64
_SUFFIX_BYTES: Final = MAC_BYTES + SIGNATURE_BYTES
_HEADER: Final = struct.Struct(">BI")
EXPORT_BYTES: Final = _HEADER.size + RATCHET_BYTES + KEY_BYTES
"""1 + 4 + 128 + 32 = 165."""
SESSION_KEY_BYTES: Final = EXPORT_BYTES + SIGNATURE_BYTES
"""165 + 64 = 229."""


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.BAD_MESSAGE, message)


def parse_signing_key(public: bytes) -> VerifyKey:
    """An Ed25519 public key that is a valid curve point; ``bad_message`` otherwise."""
    if len(public) != KEY_BYTES or not nacl.bindings.crypto_core_ed25519_is_valid_point(public):
        raise _bad("the session's Ed25519 key is not a valid public key")
    return VerifyKey(public)


def verify_signature(key: VerifyKey, signed: bytes, signature: bytes) -> None:
    """Ed25519 verification; ``bad_message`` if it fails."""
    try:
        key.verify(signed, signature)
    except (nacl.exceptions.CryptoError, ValueError) as exc:
        raise _bad("the Ed25519 signature does not verify") from exc


# --- messages (§3.5) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MegolmMessage:
    """A parsed message: 0x03 ‖ 0x08 varint(index) ‖ 0x12 varint(len) X ‖ MAC(8) ‖ sig(64)."""

    index: int
    ciphertext: bytes
    mac: bytes
    signature: bytes

    @staticmethod
    def body(index: int, ciphertext: bytes) -> bytes:
        """The bytes the MAC covers: version, index field, ciphertext field."""
        return (
            bytes([MESSAGE_VERSION, _INDEX_TAG])
            + encode_varint(index)
            + bytes([_CIPHERTEXT_TAG])
            + encode_varint(len(ciphertext))
            + ciphertext
        )

    def mac_input(self) -> bytes:
        """What the MAC authenticates."""
        return self.body(self.index, self.ciphertext)

    def signed_part(self) -> bytes:
        """What the signature covers: the body and the MAC."""
        return self.mac_input() + self.mac

    def to_bytes(self) -> bytes:
        return self.signed_part() + self.signature

    def to_base64(self) -> str:
        return b64encode(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> MegolmMessage:
        """Parse strictly; ``bad_message`` for anything but the canonical layout."""
        if len(data) < 1 + _SUFFIX_BYTES:
            raise _bad("a Megolm message is too short")
        if data[0] != MESSAGE_VERSION:
            raise _bad(f"a Megolm message has version {MESSAGE_VERSION}, not {data[0]}")
        end = len(data) - _SUFFIX_BYTES
        if end < 2 or data[1] != _INDEX_TAG:
            raise _bad("a Megolm message starts with its index field (tag 0x08)")
        index, offset = decode_varint(data[:end], 2)
        if index > MAX_INDEX:
            raise _bad("a Megolm message index is a u32")
        if offset >= end or data[offset] != _CIPHERTEXT_TAG:
            raise _bad("the index is followed by the ciphertext field (tag 0x12)")
        length, offset = decode_varint(data[:end], offset + 1)
        if offset + length != end:
            raise _bad("the ciphertext's length does not match the message")
        return cls(
            index=index,
            ciphertext=data[offset:end],
            mac=data[end : end + MAC_BYTES],
            signature=data[end + MAC_BYTES :],
        )

    @classmethod
    def from_base64(cls, text: str) -> MegolmMessage:
        return cls.from_bytes(b64decode(text))


# --- session keys and exports (§3.6, §3.7) -----------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionData:
    """What a session key or an export carries: the ratchet and the signing public key."""

    ratchet: Ratchet
    signing_key: bytes


def _pack(version: int, data: SessionData) -> bytes:
    return _HEADER.pack(version, data.ratchet.index) + data.ratchet.data + data.signing_key


def _unpack(raw: bytes, version: int, size: int, what: str) -> SessionData:
    if len(raw) != size:
        raise _bad(f"a Megolm {what} is {size} bytes, not {len(raw)}")
    found, index = _HEADER.unpack_from(raw)
    if found != version:
        raise _bad(f"a Megolm {what} has version {version}, not {found}")
    ratchet = Ratchet(raw[_HEADER.size : _HEADER.size + RATCHET_BYTES], index)
    public = raw[_HEADER.size + RATCHET_BYTES : EXPORT_BYTES]
    parse_signing_key(public)
    return SessionData(ratchet, public)


def encode_session_key(data: SessionData, signing_key: SigningKey) -> str:
    """0x02 ‖ index (u32 BE) ‖ R ‖ K_pub ‖ Ed25519 signature over the 165 bytes before it."""
    unsigned = _pack(SESSION_KEY_VERSION, data)
    return b64encode(unsigned + signing_key.sign(unsigned).signature)


def decode_session_key(text: str) -> SessionData:
    """A session key whose signature verifies under the key it carries."""
    raw = b64decode(text)
    if len(raw) != SESSION_KEY_BYTES:
        raise _bad(f"a Megolm session key is {SESSION_KEY_BYTES} bytes, not {len(raw)}")
    data = _unpack(raw[:EXPORT_BYTES], SESSION_KEY_VERSION, EXPORT_BYTES, "session key")
    key = parse_signing_key(data.signing_key)
    verify_signature(key, raw[:EXPORT_BYTES], raw[EXPORT_BYTES:])
    return data


def export_bytes(data: SessionData) -> bytes:
    """0x01 ‖ index (u32 BE) ‖ R ‖ K_pub — no signature (the index may have moved on)."""
    return _pack(EXPORT_VERSION, data)


def parse_export_bytes(raw: bytes) -> SessionData:
    """The inverse of :func:`export_bytes`; ``bad_message`` for anything else."""
    return _unpack(raw, EXPORT_VERSION, EXPORT_BYTES, "session export")


def encode_export(data: SessionData) -> str:
    """:func:`export_bytes` in unpadded base64."""
    return b64encode(export_bytes(data))


def decode_export(text: str) -> SessionData:
    """The inverse of :func:`encode_export`."""
    return parse_export_bytes(b64decode(text))
