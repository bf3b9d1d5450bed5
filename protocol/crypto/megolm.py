"""Megolm group sessions (spec/e2ee.md §3): one sender ratchet per room and device.

* :class:`OutboundGroupSession` — the sender's side: encrypts, signs, advances; hands out
  its session key (signed, §3.6) for other devices to read with.
* :class:`InboundGroupSession` — a reader's side, made from a session key or an export
  (§3.7). It decrypts any message from its first known index on, in any order, and keeps a
  record of the indices it has decrypted (§3.9): the same message again is reported as a
  replay, another message under an index already seen is refused.

Both are pickled for storage (§3.10) with :func:`~protocol.crypto.primitives.seal` under a
32-byte key the caller provides. Pure: randomness comes in as a ``random_bytes(n)`` callable.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Final, NamedTuple

from nacl.signing import SigningKey

from protocol.crypto.megolm_formats import (
    EXPORT_BYTES,
    MegolmMessage,
    SessionData,
    decode_export,
    decode_session_key,
    encode_export,
    encode_session_key,
    export_bytes,
    parse_export_bytes,
    parse_signing_key,
    verify_signature,
)
from protocol.crypto.megolm_ratchet import MAX_INDEX, RATCHET_BYTES, Ratchet
from protocol.crypto.primitives import (
    KEY_BYTES,
    MAC_BYTES,
    RandomBytes,
    aes_cbc_decrypt,
    aes_cbc_encrypt,
    b64encode,
    hmac_sha256,
    open_sealed,
    seal,
)
from protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError

__all__ = ["Decrypted", "InboundGroupSession", "OutboundGroupSession"]

_OUTBOUND_PICKLE: Final = b"MO\x01"
_INBOUND_PICKLE: Final = b"MI\x01"
_U32: Final = struct.Struct(">I")
_DIGEST_BYTES: Final = 32
_SEEN_ENTRY: Final = _U32.size + _DIGEST_BYTES


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.BAD_MESSAGE, message)


def _check_pickle_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise LocalProtocolError(ErrorCode.BAD_KEY, f"a pickle key is {KEY_BYTES} bytes")


class Decrypted(NamedTuple):
    """A decrypted message. ``replay`` is true when this very message was decrypted before
    (§3.9) — harmless when re-reading history, suspicious when it arrives as new."""

    plaintext: bytes
    message_index: int
    replay: bool


class OutboundGroupSession:
    """The sending side of a Megolm session: a ratchet and an Ed25519 signing key."""

    def __init__(self, ratchet: Ratchet, signing_seed: bytes) -> None:
        if len(signing_seed) != KEY_BYTES:
            raise LocalProtocolError(ErrorCode.BAD_KEY, f"an Ed25519 seed is {KEY_BYTES} bytes")
        self._ratchet = ratchet
        self._seed = signing_seed
        self._signing_key = SigningKey(signing_seed)
        self._public = bytes(self._signing_key.verify_key)

    @classmethod
    def create(cls, random_bytes: RandomBytes) -> OutboundGroupSession:
        """A new session at index 0: 128 random ratchet bytes, a random Ed25519 seed."""
        return cls(Ratchet(random_bytes(RATCHET_BYTES), 0), random_bytes(KEY_BYTES))

    @property
    def session_id(self) -> str:
        """The signing key's public half, unpadded base64 (§3.1)."""
        return b64encode(self._public)

    @property
    def message_index(self) -> int:
        """The index the next message will be encrypted at."""
        return self._ratchet.index

    @property
    def session_key(self) -> str:
        """The signed session key at the current index (§3.6), to share over Olm."""
        return encode_session_key(SessionData(self._ratchet, self._public), self._signing_key)

    def encrypt(self, plaintext: bytes) -> str:
        """Encrypt, MAC and sign at the current index, then advance (§3.5); base64."""
        if self._ratchet.index == MAX_INDEX:
            raise LocalProtocolError(ErrorCode.BAD_KEY, "the session is used up; start another")
        keys = self._ratchet.keys()
        ciphertext = aes_cbc_encrypt(keys.aes_key, keys.iv, plaintext)
        body = MegolmMessage.body(self._ratchet.index, ciphertext)
        mac = hmac_sha256(keys.mac_key, body)[:MAC_BYTES]
        signature = self._signing_key.sign(body + mac).signature
        self._ratchet = self._ratchet.advance()
        return b64encode(body + mac + signature)

    def pickle(self, key: bytes, random_bytes: RandomBytes) -> bytes:
        """The session sealed under ``key`` (32 bytes), for storage."""
        _check_pickle_key(key)
        state = _U32.pack(self._ratchet.index) + self._ratchet.data + self._seed
        return seal(key, random_bytes, _OUTBOUND_PICKLE + state)

    @classmethod
    def from_pickle(cls, key: bytes, sealed: bytes) -> OutboundGroupSession:
        """The inverse of :meth:`pickle`; ``bad_message`` for a wrong key or bad state."""
        _check_pickle_key(key)
        state = open_sealed(key, sealed)
        size = len(_OUTBOUND_PICKLE) + _U32.size + RATCHET_BYTES + KEY_BYTES
        if len(state) != size or not state.startswith(_OUTBOUND_PICKLE):
            raise _bad("not a pickled outbound Megolm session")
        offset = len(_OUTBOUND_PICKLE)
        (index,) = _U32.unpack_from(state, offset)
        offset += _U32.size
        ratchet = Ratchet(state[offset : offset + RATCHET_BYTES], index)
        return cls(ratchet, state[offset + RATCHET_BYTES :])


class InboundGroupSession:
    """The reading side of a Megolm session, from its first known index onwards."""

    def __init__(
        self, data: SessionData, *, signed: bool, seen: dict[int, bytes] | None = None
    ) -> None:
        self._initial = data.ratchet
        self._latest = data.ratchet
        self._public = data.signing_key
        self._verify_key = parse_signing_key(data.signing_key)
        self._signed = signed
        self._seen: dict[int, bytes] = dict(seen or {})

    @classmethod
    def from_session_key(cls, session_key: str) -> InboundGroupSession:
        """From a session key (§3.6), its signature checked; ``bad_message`` otherwise."""
        return cls(decode_session_key(session_key), signed=True)

    @classmethod
    def import_export(cls, export: str) -> InboundGroupSession:
        """From an export (§3.7): unsigned, so only as trustworthy as whoever handed it over."""
        return cls(decode_export(export), signed=False)

    @property
    def session_id(self) -> str:
        return b64encode(self._public)

    @property
    def first_known_index(self) -> int:
        return self._initial.index

    @property
    def signed(self) -> bool:
        """True if the session came from a session key signed by the sender's key."""
        return self._signed

    def _ratchet_at(self, index: int) -> Ratchet:
        if index < self._initial.index:
            raise _bad(
                f"message index {index} is below this session's first known index "
                f"{self._initial.index}; the key for it was never shared with us"
            )
        start = self._latest if self._latest.index <= index else self._initial
        self._latest = start.advance_to(index)
        return self._latest

    def decrypt(self, message: str) -> Decrypted:
        """Check the signature, then the index, then the MAC; decrypt; then apply the replay
        rule (§3.8, §3.9). Everything refused is ``bad_message`` (``bad_base64``)."""
        parsed = MegolmMessage.from_base64(message)
        verify_signature(self._verify_key, parsed.signed_part(), parsed.signature)
        keys = self._ratchet_at(parsed.index).keys()
        mac = hmac_sha256(keys.mac_key, parsed.mac_input())[:MAC_BYTES]
        if not hmac.compare_digest(mac, parsed.mac):
            raise _bad("the Megolm message's MAC does not verify")
        plaintext = aes_cbc_decrypt(keys.aes_key, keys.iv, parsed.ciphertext)
        digest = hashlib.sha256(parsed.to_bytes()).digest()
        known = self._seen.get(parsed.index)
        if known is not None and known != digest:
            raise _bad(
                f"message index {parsed.index} was already used by a different message "
                "(a replayed index: the sender reused its ratchet, or this is a forgery)"
            )
        self._seen[parsed.index] = digest
        return Decrypted(plaintext, parsed.index, replay=known is not None)

    def export_at(self, index: int) -> str:
        """An export (§3.7) from ``index`` on, for a key backup or another device."""
        if not 0 <= index <= MAX_INDEX or index < self._initial.index:
            raise LocalProtocolError(
                ErrorCode.BAD_MESSAGE,
                f"cannot export at {index}: the first known index is {self._initial.index}",
            )
        return encode_export(SessionData(self._ratchet_at(index), self._public))

    def pickle(self, key: bytes, random_bytes: RandomBytes) -> bytes:
        """The session and its replay record sealed under ``key`` (32 bytes)."""
        _check_pickle_key(key)
        state = export_bytes(SessionData(self._initial, self._public))
        seen = b"".join(_U32.pack(i) + self._seen[i] for i in sorted(self._seen))
        body = _INBOUND_PICKLE + bytes([self._signed]) + state + _U32.pack(len(self._seen))
        return seal(key, random_bytes, body + seen)

    @classmethod
    def from_pickle(cls, key: bytes, sealed: bytes) -> InboundGroupSession:
        """The inverse of :meth:`pickle`; ``bad_message`` for a wrong key or bad state."""
        _check_pickle_key(key)
        state = open_sealed(key, sealed)
        head = len(_INBOUND_PICKLE) + 1
        fixed = head + EXPORT_BYTES + _U32.size
        if len(state) < fixed or not state.startswith(_INBOUND_PICKLE) or state[head - 1] > 1:
            raise _bad("not a pickled inbound Megolm session")
        data = parse_export_bytes(state[head : head + EXPORT_BYTES])
        (count,) = _U32.unpack_from(state, head + EXPORT_BYTES)
        if len(state) != fixed + count * _SEEN_ENTRY:
            raise _bad("a pickled inbound Megolm session's replay record is cut short")
        seen: dict[int, bytes] = {}
        previous = data.ratchet.index - 1
        for n in range(count):
            offset = fixed + n * _SEEN_ENTRY
            (index,) = _U32.unpack_from(state, offset)
            if index <= previous:
                raise _bad("a pickled replay record is out of order")
            seen[index] = state[offset + _U32.size : offset + _SEEN_ENTRY]
            previous = index
        return cls(data, signed=bool(state[head - 1]), seen=seen)
