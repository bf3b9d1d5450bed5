"""An Olm account: a device's identity keys, its one-time and fallback keys, and the
sessions it starts or accepts (spec/e2ee.md §2.1, §2.2).

Rules of this module:

* Keys come from the caller's ``random_bytes``: 32 bytes seed an Ed25519 key, 32 bytes are
  an X25519 private key (libsodium clamps it when used).
* One-time keys are numbered from 0; a key's id is the unpadded base64 of its number as
  8 big-endian bytes (``AAAAAAAAAAA`` is key 0), as vodozemac numbers them. At most
  :data:`MAX_STORED_ONE_TIME_KEYS` are kept: making more drops the oldest first.
* A one-time key is used up by the session it starts, and only once that session's first
  message has decrypted, so a forged pre-key message cannot burn a key. Fallback keys are
  never used up; the account keeps the current one and the one before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import nacl.signing

from protocol.crypto.olm_messages import (
    MessageType,
    OlmMessage,
    PreKeyMessage,
    StateReader,
    b64,
    decode_olm_message,
    open_state,
    seal_state,
)
from protocol.crypto.olm_session import (
    Session,
    SessionKeys,
    shared_secret_inbound,
    shared_secret_outbound,
    split_shared_secret,
)
from protocol.crypto.primitives import KEY_BYTES, RandomBytes, b64decode, b64encode, x25519_public
from protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError

__all__ = [
    "MAX_PUBLISHED_ONE_TIME_KEYS",
    "MAX_STORED_ONE_TIME_KEYS",
    "Account",
    "key_id",
]

MAX_PUBLISHED_ONE_TIME_KEYS: Final = 50
"""How many one-time keys a device should keep published on its node."""
MAX_STORED_ONE_TIME_KEYS: Final = 100 * MAX_PUBLISHED_ONE_TIME_KEYS
"""How many private one-time keys an account keeps: room for pre-key messages that are
still on their way when the published keys have been replaced."""


def key_id(number: int) -> str:
    """The id of one-time or fallback key ``number``."""
    return b64encode(number.to_bytes(8, "big"))


def _public_key(text: str, name: str) -> bytes:
    key = b64decode(text)
    if len(key) != KEY_BYTES:
        raise RemoteProtocolError(ErrorCode.BAD_KEY, f"the {name} is {KEY_BYTES} bytes")
    return key


@dataclass(frozen=True)
class _FallbackKey:
    number: int
    private: bytes
    published: bool = False

    @property
    def public(self) -> bytes:
        return x25519_public(self.private)


@dataclass
class Account:
    """A device's Olm keys. Make one with :meth:`create`; keep it with :meth:`pickle`."""

    _signing_seed: bytes
    _identity_private: bytes
    _one_time: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)
    """(private, public) one-time keys by number, oldest first."""
    _unpublished: set[int] = field(default_factory=set)
    _next_one_time: int = 0
    _fallback: _FallbackKey | None = None
    _previous_fallback: _FallbackKey | None = None
    _next_fallback: int = 0

    @classmethod
    def create(cls, random_bytes: RandomBytes) -> Account:
        """A new account: 32 bytes seed the Ed25519 key, 32 more are the Curve25519 key."""
        return cls(random_bytes(KEY_BYTES), random_bytes(KEY_BYTES))

    # --- identity --------------------------------------------------------------------------

    @property
    def curve25519_key(self) -> str:
        return b64encode(x25519_public(self._identity_private))

    @property
    def ed25519_key(self) -> str:
        return b64encode(bytes(nacl.signing.SigningKey(self._signing_seed).verify_key))

    @property
    def identity_keys(self) -> dict[str, str]:
        """``{"curve25519": b64, "ed25519": b64}``."""
        return {"curve25519": self.curve25519_key, "ed25519": self.ed25519_key}

    def sign(self, message: bytes) -> str:
        """The unpadded base64 Ed25519 signature of ``message`` by the identity key."""
        if not isinstance(message, bytes):
            raise LocalProtocolError(ErrorCode.BAD_PARAMS, "sign bytes, not text")
        return b64encode(nacl.signing.SigningKey(self._signing_seed).sign(message).signature)

    # --- one-time and fallback keys --------------------------------------------------------

    def generate_one_time_keys(self, count: int, random_bytes: RandomBytes) -> list[str]:
        """Make ``count`` one-time keys; returns the public keys dropped to make room."""
        if count < 0:
            raise LocalProtocolError(ErrorCode.BAD_PARAMS, "a count is not negative")
        dropped = []
        for _ in range(count):
            if len(self._one_time) >= MAX_STORED_ONE_TIME_KEYS:
                oldest = next(iter(self._one_time))
                dropped.append(b64encode(self._one_time.pop(oldest)[1]))
                self._unpublished.discard(oldest)
            number = self._next_one_time
            private = random_bytes(KEY_BYTES)
            self._one_time[number] = private, x25519_public(private)
            self._unpublished.add(number)
            self._next_one_time = (number + 1) % 2**64
        return dropped

    @property
    def one_time_keys(self) -> dict[str, str]:
        """The one-time keys not yet published: ``{key id: public key}``."""
        return {
            key_id(number): b64encode(self._one_time[number][1])
            for number in sorted(self._unpublished)
        }

    @property
    def stored_one_time_key_count(self) -> int:
        return len(self._one_time)

    def generate_fallback_key(self, random_bytes: RandomBytes) -> str | None:
        """Make a new fallback key; the current one stays usable as the previous one.
        Returns the public key of the fallback key this forgets, if any."""
        forgotten = self._previous_fallback
        self._previous_fallback = self._fallback
        self._fallback = _FallbackKey(self._next_fallback, random_bytes(KEY_BYTES))
        self._next_fallback += 1
        return None if forgotten is None else b64encode(forgotten.public)

    @property
    def fallback_key(self) -> dict[str, str]:
        """The current fallback key if it is not yet published: ``{key id: public key}``."""
        current = self._fallback
        if current is None or current.published:
            return {}
        return {key_id(current.number): b64encode(current.public)}

    def forget_fallback_key(self) -> bool:
        """Forget the previous fallback key; whether there was one."""
        had = self._previous_fallback is not None
        self._previous_fallback = None
        return had

    def mark_keys_as_published(self) -> None:
        self._unpublished.clear()
        if self._fallback is not None:
            self._fallback = _FallbackKey(self._fallback.number, self._fallback.private, True)

    def _find_one_time_private(self, public: bytes) -> tuple[bytes, int | None] | None:
        """The private key for ``public`` and its one-time key number (None: fallback)."""
        for number, (private, known) in self._one_time.items():
            if known == public:
                return private, number
        for fallback in (self._fallback, self._previous_fallback):
            if fallback is not None and fallback.public == public:
                return fallback.private, None
        return None

    # --- sessions --------------------------------------------------------------------------

    def create_outbound_session(
        self, their_identity_key: str, their_one_time_key: str, random_bytes: RandomBytes
    ) -> Session:
        """Alice's side: a session to the device with these public keys (unpadded base64),
        with a fresh base key E_A and a first ratchet key T0 from ``random_bytes``."""
        identity = _public_key(their_identity_key, "identity key")
        one_time = _public_key(their_one_time_key, "one-time key")
        base_private = random_bytes(KEY_BYTES)
        secret = shared_secret_outbound(self._identity_private, base_private, identity, one_time)
        root_key, chain_key = split_shared_secret(secret)
        keys = SessionKeys(
            x25519_public(self._identity_private), x25519_public(base_private), one_time
        )
        return Session.outbound(keys, root_key, chain_key, random_bytes(KEY_BYTES))

    def create_inbound_session(
        self, their_identity_key: str, message: OlmMessage
    ) -> tuple[Session, bytes]:
        """Bob's side: the session a pre-key message starts, and its plaintext.
        ``bad_message`` if it is not a pre-key message, names another identity key, uses
        a one-time key this account does not hold, or does not decrypt."""
        identity = _public_key(their_identity_key, "identity key")
        if message.type != MessageType.PRE_KEY:
            raise RemoteProtocolError(
                ErrorCode.BAD_MESSAGE, "a session starts with a pre-key message"
            )
        parsed = decode_olm_message(message)
        assert isinstance(parsed, PreKeyMessage)
        if parsed.identity_key != identity:
            raise RemoteProtocolError(
                ErrorCode.BAD_MESSAGE, "the pre-key message names another identity key"
            )
        found = self._find_one_time_private(parsed.one_time_key)
        if found is None:
            raise RemoteProtocolError(
                ErrorCode.BAD_MESSAGE, "the pre-key message uses an unknown one-time key"
            )
        one_time_private, number = found
        secret = shared_secret_inbound(
            self._identity_private, one_time_private, identity, parsed.base_key
        )
        root_key, chain_key = split_shared_secret(secret)
        keys = SessionKeys(identity, parsed.base_key, parsed.one_time_key)
        session = Session.inbound(keys, root_key, chain_key, parsed.message.ratchet_key)
        plaintext = session.decrypt_normal(parsed.message)
        if number is not None:
            del self._one_time[number]
            self._unpublished.discard(number)
        return session, plaintext

    # --- storage ---------------------------------------------------------------------------

    def pickle(self, key: bytes, random_bytes: RandomBytes) -> bytes:
        """The account sealed under ``key`` (32 bytes) for storage."""
        return seal_state(key, random_bytes, "olm account", self._to_state())

    @classmethod
    def from_pickle(cls, key: bytes, data: bytes) -> Account:
        """The account :meth:`pickle` sealed; ``bad_message`` otherwise."""
        return cls._from_state(open_state(key, data, "olm account"))

    def _to_state(self) -> dict[str, Any]:
        return {
            "signing_seed": b64(self._signing_seed),
            "identity_private": b64(self._identity_private),
            "one_time": [
                {"number": n, "private": b64(k), "published": n not in self._unpublished}
                for n, (k, _) in self._one_time.items()
            ],
            "next_one_time": self._next_one_time,
            "fallback": _fallback_state(self._fallback),
            "previous_fallback": _fallback_state(self._previous_fallback),
            "next_fallback": self._next_fallback,
        }

    @classmethod
    def _from_state(cls, state: StateReader) -> Account:
        account = cls(state.raw("signing_seed"), state.raw("identity_private"))
        for entry in state.objects("one_time"):
            number = entry.integer("number")
            private = entry.raw("private")
            account._one_time[number] = private, x25519_public(private)
            if not entry.flag("published"):
                account._unpublished.add(number)
        if len(account._one_time) > MAX_STORED_ONE_TIME_KEYS:
            raise RemoteProtocolError(ErrorCode.BAD_MESSAGE, "stored account holds too many keys")
        account._next_one_time = state.integer("next_one_time")
        account._fallback = _read_fallback(state.optional_object("fallback"))
        account._previous_fallback = _read_fallback(state.optional_object("previous_fallback"))
        account._next_fallback = state.integer("next_fallback")
        return account


def _fallback_state(key: _FallbackKey | None) -> Mapping[str, Any] | None:
    if key is None:
        return None
    return {"number": key.number, "private": b64(key.private), "published": key.published}


def _read_fallback(state: StateReader | None) -> _FallbackKey | None:
    if state is None:
        return None
    return _FallbackKey(state.integer("number"), state.raw("private"), state.flag("published"))
