"""Olm's encodings: the two messages, byte for byte (spec/e2ee.md §2.5), and accounts and
sessions sealed for storage (§2.7).

A normal message carries one ciphertext of a sending chain; a pre-key message wraps the
first messages of a session with the keys the receiver needs to set the session up.

The encodings look like protobuf but are read as a fixed layout: every field present, in
tag order, with minimal varints. Receivers (vodozemac among them) authenticate their own
re-encoding of what they parsed, so only the canonical form can be authenticated; refusing
every other form at parse time keeps the bytes we check and the bytes we were sent equal.

Stored state is JSON with base64 bytes, sealed with ``primitives.seal`` under the caller's
32-byte key. It is authenticated, so it can only be malformed if another version or layout
wrote it; reading it still checks every field, and any surprise is ``bad_message`` like
any other bytes that do not parse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from protocol.crypto.primitives import (
    KEY_BYTES,
    MAC_BYTES,
    RandomBytes,
    b64decode,
    b64encode,
    decode_varint,
    encode_varint,
    open_sealed,
    seal,
)
from protocol.errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError

__all__ = [
    "VERSION",
    "MessageType",
    "NormalMessage",
    "OlmMessage",
    "PreKeyMessage",
    "StateReader",
    "b64",
    "decode_olm_message",
    "open_state",
    "parse_normal_message",
    "parse_pre_key_message",
    "seal_state",
]

VERSION: Final = 0x03
"""The only version Kith sends and reads: HMAC truncated to 8 bytes."""

_RATCHET_KEY_TAG: Final = 0x0A
_CHAIN_INDEX_TAG: Final = 0x10
_CIPHERTEXT_TAG: Final = 0x22

_ONE_TIME_KEY_TAG: Final = 0x0A
_BASE_KEY_TAG: Final = 0x12
_IDENTITY_KEY_TAG: Final = 0x1A
_MESSAGE_TAG: Final = 0x22

_MAX_CHAIN_INDEX: Final = 2**64 - 1
_STATE_FORMAT: Final = 1


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.BAD_MESSAGE, message)


class MessageType(IntEnum):
    """The ``type`` of an ``m.olm.v1.curve25519-aes-sha2`` ciphertext."""

    PRE_KEY = 0
    NORMAL = 1


@dataclass(frozen=True)
class OlmMessage:
    """An Olm message as it travels: its type and the unpadded base64 of its bytes."""

    type: MessageType
    body: str

    def __post_init__(self) -> None:
        if isinstance(self.type, bool) or self.type not in (0, 1):
            raise _bad("an Olm message's type is 0 (pre-key) or 1 (normal)")
        object.__setattr__(self, "type", MessageType(self.type))
        if not isinstance(self.body, str):
            raise RemoteProtocolError(ErrorCode.BAD_BASE64, "an Olm message body is base64")

    @classmethod
    def from_bytes(cls, message_type: int, raw: bytes) -> OlmMessage:
        """The message of this type with these raw bytes."""
        return cls(MessageType(message_type), b64encode(raw))

    def to_bytes(self) -> bytes:
        """The raw bytes of the body; ``bad_base64`` if it is not base64."""
        return b64decode(self.body)


# --- normal messages -----------------------------------------------------------------------


@dataclass(frozen=True)
class NormalMessage:
    """One ciphertext of the chain under ``ratchet_key``, at ``chain_index``."""

    ratchet_key: bytes
    chain_index: int
    ciphertext: bytes
    mac: bytes = b""

    def mac_input(self) -> bytes:
        """The canonical encoding without the MAC: what the MAC authenticates."""
        return b"".join(
            [
                bytes([VERSION, _RATCHET_KEY_TAG]),
                encode_varint(len(self.ratchet_key)),
                self.ratchet_key,
                bytes([_CHAIN_INDEX_TAG]),
                encode_varint(self.chain_index),
                bytes([_CIPHERTEXT_TAG]),
                encode_varint(len(self.ciphertext)),
                self.ciphertext,
            ]
        )

    def to_bytes(self) -> bytes:
        """The message as sent: the canonical encoding, then the 8-byte MAC."""
        return self.mac_input() + self.mac


# --- pre-key messages ----------------------------------------------------------------------


@dataclass(frozen=True)
class PreKeyMessage:
    """A normal message wrapped with the keys that set its session up (E_B, E_A, I_A)."""

    one_time_key: bytes
    base_key: bytes
    identity_key: bytes
    message: NormalMessage

    def session_keys(self) -> tuple[bytes, bytes, bytes]:
        """(identity key, base key, one-time key): what names the session."""
        return self.identity_key, self.base_key, self.one_time_key

    def to_bytes(self) -> bytes:
        inner = self.message.to_bytes()
        return b"".join(
            [
                bytes([VERSION]),
                _key_field(_ONE_TIME_KEY_TAG, self.one_time_key),
                _key_field(_BASE_KEY_TAG, self.base_key),
                _key_field(_IDENTITY_KEY_TAG, self.identity_key),
                bytes([_MESSAGE_TAG]),
                encode_varint(len(inner)),
                inner,
            ]
        )


def _key_field(tag: int, key: bytes) -> bytes:
    return bytes([tag]) + encode_varint(len(key)) + key


# --- parsing -------------------------------------------------------------------------------


class _Reader:
    """Reads the fixed layout field by field; every shortfall is ``bad_message``."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def version(self) -> None:
        if not self.data:
            raise _bad("an Olm message is empty")
        if self.data[0] != VERSION:
            raise _bad(f"unknown Olm message version {self.data[0]}")
        self.offset = 1

    def tag(self, tag: int, name: str) -> None:
        if self.offset >= len(self.data) or self.data[self.offset] != tag:
            raise _bad(f"expected the {name} field (tag 0x{tag:02X})")
        self.offset += 1

    def varint(self) -> int:
        value, self.offset = decode_varint(self.data, self.offset)
        return value

    def length_delimited(self, name: str) -> bytes:
        length = self.varint()
        end = self.offset + length
        if end > len(self.data):
            raise _bad(f"the {name} field runs past the end of the message")
        value = self.data[self.offset : end]
        self.offset = end
        return value

    def key(self, tag: int, name: str) -> bytes:
        self.tag(tag, name)
        key = self.length_delimited(name)
        if len(key) != KEY_BYTES:
            raise _bad(f"the {name} is {KEY_BYTES} bytes")
        return key


def parse_normal_message(data: bytes) -> NormalMessage:
    """A normal message from its bytes; ``bad_message`` unless it is canonical."""
    if len(data) < 1 + MAC_BYTES:
        raise _bad("an Olm message is too short")
    reader = _Reader(data[:-MAC_BYTES])
    reader.version()
    ratchet_key = reader.key(_RATCHET_KEY_TAG, "ratchet key")
    reader.tag(_CHAIN_INDEX_TAG, "chain index")
    chain_index = reader.varint()
    if chain_index > _MAX_CHAIN_INDEX:
        raise _bad("the chain index does not fit 64 bits")
    reader.tag(_CIPHERTEXT_TAG, "ciphertext")
    ciphertext = reader.length_delimited("ciphertext")
    if reader.offset != len(reader.data):
        raise _bad("bytes follow the ciphertext")
    if not ciphertext:
        raise _bad("the ciphertext is empty")
    return NormalMessage(ratchet_key, chain_index, ciphertext, data[-MAC_BYTES:])


def parse_pre_key_message(data: bytes) -> PreKeyMessage:
    """A pre-key message from its bytes; ``bad_message`` unless it is canonical."""
    reader = _Reader(data)
    reader.version()
    one_time_key = reader.key(_ONE_TIME_KEY_TAG, "one-time key")
    base_key = reader.key(_BASE_KEY_TAG, "base key")
    identity_key = reader.key(_IDENTITY_KEY_TAG, "identity key")
    reader.tag(_MESSAGE_TAG, "message")
    inner = reader.length_delimited("message")
    if reader.offset != len(data):
        raise _bad("bytes follow the inner message")
    return PreKeyMessage(one_time_key, base_key, identity_key, parse_normal_message(inner))


def decode_olm_message(message: OlmMessage) -> NormalMessage | PreKeyMessage:
    """The parsed body of ``message``, by its type."""
    raw = message.to_bytes()
    if message.type == MessageType.PRE_KEY:
        return parse_pre_key_message(raw)
    return parse_normal_message(raw)


# --- state sealed for storage --------------------------------------------------------------


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise LocalProtocolError(ErrorCode.BAD_KEY, f"a pickle key is {KEY_BYTES} bytes")


def seal_state(key: bytes, random_bytes: RandomBytes, kind: str, state: dict[str, Any]) -> bytes:
    """``state`` (JSON of str, int, bool, None, lists and dicts) sealed under ``key``."""
    _check_key(key)
    document = {"format": _STATE_FORMAT, "kind": kind, "state": state}
    return seal(key, random_bytes, json.dumps(document, sort_keys=True).encode())


def open_state(key: bytes, data: bytes, kind: str) -> StateReader:
    """The state :func:`seal_state` sealed, as a reader; ``bad_message`` otherwise."""
    _check_key(key)
    if not isinstance(data, bytes):
        raise _bad("sealed state is bytes")
    plain = open_sealed(key, data)
    try:
        document = json.loads(plain)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad("sealed state is not JSON") from exc
    outer = StateReader(document, "sealed state")
    if outer.integer("format") != _STATE_FORMAT or outer.text("kind") != kind:
        raise _bad(f"sealed state is not a {kind} of format {_STATE_FORMAT}")
    return outer.object("state")


class StateReader:
    """Typed access to one JSON object of stored state; ``bad_message`` on any mismatch."""

    def __init__(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise _bad(f"{where} is not an object")
        self._value: dict[str, Any] = value
        self._where = where

    def _get(self, name: str) -> Any:
        if name not in self._value:
            raise _bad(f"{self._where} has no {name}")
        return self._value[name]

    def object(self, name: str) -> StateReader:
        return StateReader(self._get(name), f"{self._where}.{name}")

    def optional_object(self, name: str) -> StateReader | None:
        return None if self._get(name) is None else self.object(name)

    def objects(self, name: str) -> list[StateReader]:
        items = self._get(name)
        if not isinstance(items, list):
            raise _bad(f"{self._where}.{name} is not a list")
        return [StateReader(item, f"{self._where}.{name}[]") for item in items]

    def text(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str):
            raise _bad(f"{self._where}.{name} is not a string")
        return value

    def integer(self, name: str) -> int:
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _bad(f"{self._where}.{name} is not a non-negative integer")
        return value

    def flag(self, name: str) -> bool:
        value = self._get(name)
        if not isinstance(value, bool):
            raise _bad(f"{self._where}.{name} is not a boolean")
        return value

    def raw(self, name: str, length: int | None = KEY_BYTES) -> bytes:
        try:
            value = b64decode(self.text(name))
        except ProtocolError as exc:
            raise _bad(f"{self._where}.{name} is not base64") from exc
        if length is not None and len(value) != length:
            raise _bad(f"{self._where}.{name} is not {length} bytes")
        return value

    def optional_bytes(self, name: str) -> bytes | None:
        return None if self._get(name) is None else self.raw(name)


def b64(data: bytes) -> str:
    """Bytes as stored: unpadded base64."""
    return b64encode(data)
