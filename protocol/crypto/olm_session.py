"""An Olm session: one end of a double ratchet between two devices (spec/e2ee.md §2).

Rules of this module:

* A session is either *sending* (it holds its own ratchet key T_i and a sending chain) or
  *waiting* (it has received the other side's newest ratchet key and will make a new one
  of its own on the next send). Alice starts sending; Bob starts waiting.
* Decryption is a transaction: the new state is computed on the side and kept only if the
  MAC checks out, so a forged or replayed message changes nothing.
* Limits (§2.6): 5 receiving chains, 40 skipped message keys per chain, a gap of 2000.
* Randomness is an argument: only :meth:`Session.encrypt` may need a fresh ratchet key.

The key schedule (§2.2 to §2.4) comes first as plain functions of bytes, so the vectors can
show every intermediate value and a second implementation can be checked step by step.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from hmac import compare_digest
from typing import Any, Final

from protocol.crypto.olm_messages import (
    MessageType,
    NormalMessage,
    OlmMessage,
    PreKeyMessage,
    StateReader,
    b64,
    decode_olm_message,
    open_state,
    seal_state,
)
from protocol.crypto.primitives import (
    KEY_BYTES,
    MAC_BYTES,
    RandomBytes,
    aes_cbc_decrypt,
    aes_cbc_encrypt,
    b64encode,
    hkdf_sha256,
    hmac_sha256,
    x25519,
    x25519_public,
)
from protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError

__all__ = [
    "MAX_MESSAGE_GAP",
    "MAX_RECEIVING_CHAINS",
    "MAX_SKIPPED_MESSAGE_KEYS",
    "MessageKeys",
    "Session",
    "SessionKeys",
    "advance_chain",
    "advance_root",
    "decrypt_with",
    "encrypt_with",
    "message_keys",
    "shared_secret_inbound",
    "shared_secret_outbound",
    "split_shared_secret",
]

MAX_RECEIVING_CHAINS: Final = 5
MAX_SKIPPED_MESSAGE_KEYS: Final = 40
MAX_MESSAGE_GAP: Final = 2000


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.BAD_MESSAGE, message)


# --- the key schedule ----------------------------------------------------------------------

_ZERO_SALT: Final = b"\x00"
_ROOT_INFO: Final = b"OLM_ROOT"
_RATCHET_INFO: Final = b"OLM_RATCHET"
_KEYS_INFO: Final = b"OLM_KEYS"
_MESSAGE_KEY_SEED: Final = b"\x01"
_CHAIN_KEY_SEED: Final = b"\x02"


def shared_secret_outbound(
    identity_private: bytes, base_private: bytes, their_identity: bytes, their_one_time: bytes
) -> bytes:
    """Alice's 96-byte 3DH secret: DH(I_A, E_B) ‖ DH(E_A, I_B) ‖ DH(E_A, E_B)."""
    return (
        x25519(identity_private, their_one_time)
        + x25519(base_private, their_identity)
        + x25519(base_private, their_one_time)
    )


def shared_secret_inbound(
    identity_private: bytes, one_time_private: bytes, their_identity: bytes, their_base: bytes
) -> bytes:
    """Bob's side of the same secret: DH(E_B, I_A) ‖ DH(I_B, E_A) ‖ DH(E_B, E_A)."""
    return (
        x25519(one_time_private, their_identity)
        + x25519(identity_private, their_base)
        + x25519(one_time_private, their_base)
    )


def split_shared_secret(secret: bytes) -> tuple[bytes, bytes]:
    """R0 and C0,0: HKDF(salt 0, the 3DH secret, "OLM_ROOT") cut in two."""
    out = hkdf_sha256(secret, salt=_ZERO_SALT, info=_ROOT_INFO, length=64)
    return out[:32], out[32:]


def advance_root(
    root_key: bytes, our_ratchet_private: bytes, their_ratchet_key: bytes
) -> tuple[bytes, bytes]:
    """The next root key and the first chain key of the new chain:
    HKDF(salt R_i-1, DH(T_i-1, T_i), "OLM_RATCHET")."""
    shared = x25519(our_ratchet_private, their_ratchet_key)
    out = hkdf_sha256(shared, salt=root_key, info=_RATCHET_INFO, length=64)
    return out[:32], out[32:]


def advance_chain(chain_key: bytes) -> tuple[bytes, bytes]:
    """(message key, next chain key) of one chain step: HMAC(C, 0x01), HMAC(C, 0x02)."""
    return hmac_sha256(chain_key, _MESSAGE_KEY_SEED), hmac_sha256(chain_key, _CHAIN_KEY_SEED)


@dataclass(frozen=True)
class MessageKeys:
    """What one message key expands to: HKDF(salt 0, M, "OLM_KEYS", 80)."""

    aes_key: bytes
    mac_key: bytes
    iv: bytes


def message_keys(message_key: bytes) -> MessageKeys:
    out = hkdf_sha256(message_key, salt=_ZERO_SALT, info=_KEYS_INFO, length=80)
    return MessageKeys(out[:32], out[32:64], out[64:])


def encrypt_with(
    message_key: bytes, ratchet_key: bytes, chain_index: int, plaintext: bytes
) -> NormalMessage:
    """The normal message carrying ``plaintext`` under one message key, MAC included."""
    keys = message_keys(message_key)
    ciphertext = aes_cbc_encrypt(keys.aes_key, keys.iv, plaintext)
    unsigned = NormalMessage(ratchet_key, chain_index, ciphertext)
    mac = hmac_sha256(keys.mac_key, unsigned.mac_input())[:MAC_BYTES]
    return NormalMessage(ratchet_key, chain_index, ciphertext, mac)


def decrypt_with(message_key: bytes, message: NormalMessage) -> bytes:
    """The plaintext of ``message``; ``bad_message`` if the MAC (over the canonical
    encoding) does not match, checked before the ciphertext is touched."""
    keys = message_keys(message_key)
    expected = hmac_sha256(keys.mac_key, message.mac_input())[:MAC_BYTES]
    if not compare_digest(expected, message.mac):
        raise _bad("the Olm message's MAC is wrong")
    return aes_cbc_decrypt(keys.aes_key, keys.iv, message.ciphertext)


# --- sessions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionKeys:
    """The three public keys that set a session up: Alice's identity key I_A, her base
    key E_A and Bob's one-time (or fallback) key E_B."""

    identity_key: bytes
    base_key: bytes
    one_time_key: bytes

    def session_id(self) -> str:
        return b64encode(
            hashlib.sha256(self.identity_key + self.base_key + self.one_time_key).digest()
        )


@dataclass(frozen=True)
class _SendingChain:
    ratchet_private: bytes
    ratchet_key: bytes
    chain_key: bytes
    index: int = 0


@dataclass(frozen=True)
class _ReceivingChain:
    ratchet_key: bytes
    chain_key: bytes
    index: int = 0
    skipped: tuple[tuple[int, bytes], ...] = ()
    """(chain index, message key) of messages not yet received, oldest first."""


@dataclass(frozen=True)
class _Waiting:
    """No sending chain yet: the other side's newest ratchet key, to ratchet from."""

    their_ratchet_key: bytes


def _push_skipped(
    skipped: tuple[tuple[int, bytes], ...], new: list[tuple[int, bytes]]
) -> tuple[tuple[int, bytes], ...]:
    return (*skipped, *new)[-MAX_SKIPPED_MESSAGE_KEYS:]


def _message_key(chain: _ReceivingChain, index: int) -> tuple[bytes, _ReceivingChain]:
    """The message key for ``index`` and the chain as it is once that key is used."""
    if index > chain.index + MAX_MESSAGE_GAP:
        raise _bad(f"{index - chain.index} messages skipped; at most {MAX_MESSAGE_GAP}")
    if index < chain.index:
        for position, (skipped_index, key) in enumerate(chain.skipped):
            if skipped_index == index:
                rest = chain.skipped[:position] + chain.skipped[position + 1 :]
                return key, replace(chain, skipped=rest)
        raise _bad(f"no message key for index {index}: already used or forgotten")
    chain_key, current, new_skipped = chain.chain_key, chain.index, []
    while current < index:
        message_key, chain_key = advance_chain(chain_key)
        if index - current <= MAX_SKIPPED_MESSAGE_KEYS:
            new_skipped.append((current, message_key))
        current += 1
    message_key, chain_key = advance_chain(chain_key)
    skipped = _push_skipped(chain.skipped, new_skipped)
    return message_key, replace(chain, chain_key=chain_key, index=index + 1, skipped=skipped)


@dataclass
class Session:
    """One end of an Olm session. Made by ``Account.create_outbound_session`` (Alice) or
    ``Account.create_inbound_session`` (Bob); restored with :meth:`from_pickle`."""

    keys: SessionKeys
    root_key: bytes
    _sender: _SendingChain | _Waiting
    _receivers: list[_ReceivingChain] = field(default_factory=list)

    @classmethod
    def outbound(
        cls, keys: SessionKeys, root_key: bytes, chain_key: bytes, ratchet_private: bytes
    ) -> Session:
        """Alice's session: sending on C0,0 under her first ratchet key T0."""
        sender = _SendingChain(ratchet_private, x25519_public(ratchet_private), chain_key)
        return cls(keys, root_key, sender)

    @classmethod
    def inbound(
        cls, keys: SessionKeys, root_key: bytes, chain_key: bytes, their_ratchet_key: bytes
    ) -> Session:
        """Bob's session: receiving on C0,0 under Alice's T0, waiting to send."""
        return cls(
            keys,
            root_key,
            _Waiting(their_ratchet_key),
            [_ReceivingChain(their_ratchet_key, chain_key)],
        )

    @property
    def session_id(self) -> str:
        """b64(SHA-256(I_A ‖ E_A ‖ E_B)): the same at both ends."""
        return self.keys.session_id()

    @property
    def has_received_message(self) -> bool:
        """Whether anything from the other side was decrypted (Bob: from the start)."""
        return bool(self._receivers)

    def matches(self, message: OlmMessage) -> bool:
        """Whether ``message`` is a pre-key message of this session (by its three keys);
        ``bad_message`` if it does not parse."""
        if message.type != MessageType.PRE_KEY:
            return False
        parsed = decode_olm_message(message)
        assert isinstance(parsed, PreKeyMessage)
        return self._keys_match(parsed)

    def _keys_match(self, message: PreKeyMessage) -> bool:
        return (message.identity_key, message.base_key, message.one_time_key) == (
            self.keys.identity_key,
            self.keys.base_key,
            self.keys.one_time_key,
        )

    # --- sending ---------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, random_bytes: RandomBytes) -> OlmMessage:
        """``plaintext`` as the next message: a pre-key message (type 0) until something
        from the other side was decrypted, then a normal one (type 1). ``random_bytes``
        is drawn from only when a new ratchet key is due."""
        if not isinstance(plaintext, bytes):
            raise LocalProtocolError(ErrorCode.BAD_PARAMS, "encrypt bytes, not text")
        sender = self._sender
        if isinstance(sender, _Waiting):
            private = random_bytes(KEY_BYTES)
            self.root_key, chain_key = advance_root(
                self.root_key, private, sender.their_ratchet_key
            )
            sender = _SendingChain(private, x25519_public(private), chain_key)
        message_key, next_chain_key = advance_chain(sender.chain_key)
        message = encrypt_with(message_key, sender.ratchet_key, sender.index, plaintext)
        self._sender = replace(sender, chain_key=next_chain_key, index=sender.index + 1)
        if self.has_received_message:
            return OlmMessage(MessageType.NORMAL, b64encode(message.to_bytes()))
        pre_key = PreKeyMessage(
            self.keys.one_time_key, self.keys.base_key, self.keys.identity_key, message
        )
        return OlmMessage(MessageType.PRE_KEY, b64encode(pre_key.to_bytes()))

    # --- receiving -------------------------------------------------------------------------

    def decrypt(self, message: OlmMessage) -> bytes:
        """The plaintext of ``message``; ``bad_message`` if it does not parse, belongs to
        another session, fails its MAC, was decrypted before, or lies beyond the limits."""
        parsed = decode_olm_message(message)
        if isinstance(parsed, PreKeyMessage):
            if not self._keys_match(parsed):
                raise _bad("the pre-key message belongs to another session")
            parsed = parsed.message
        return self.decrypt_normal(parsed)

    def decrypt_normal(self, message: NormalMessage) -> bytes:
        """:meth:`decrypt` for a message already parsed."""
        for position, chain in enumerate(self._receivers):
            if chain.ratchet_key == message.ratchet_key:
                message_key, advanced = _message_key(chain, message.chain_index)
                plaintext = decrypt_with(message_key, message)
                self._receivers[position] = advanced
                return plaintext
        sender = self._sender
        if isinstance(sender, _Waiting):
            # The other side makes a new ratchet key only after seeing a new one of ours;
            # we have sent none since its newest, so this cannot come from an honest peer.
            raise _bad("a message under an unknown ratchet key before we sent a new one")
        root_key, chain_key = advance_root(
            self.root_key, sender.ratchet_private, message.ratchet_key
        )
        new_chain = _ReceivingChain(message.ratchet_key, chain_key)
        message_key, advanced = _message_key(new_chain, message.chain_index)
        plaintext = decrypt_with(message_key, message)
        self.root_key = root_key
        self._sender = _Waiting(message.ratchet_key)
        self._receivers = [*self._receivers, advanced][-MAX_RECEIVING_CHAINS:]
        return plaintext

    # --- storage ---------------------------------------------------------------------------

    def pickle(self, key: bytes, random_bytes: RandomBytes) -> bytes:
        """The session sealed under ``key`` (32 bytes) for storage."""
        return seal_state(key, random_bytes, "olm session", self.to_state())

    @classmethod
    def from_pickle(cls, key: bytes, data: bytes) -> Session:
        """The session :meth:`pickle` sealed; ``bad_message`` otherwise."""
        return cls.from_state(open_state(key, data, "olm session"))

    def to_state(self) -> dict[str, Any]:
        sender = self._sender
        return {
            "identity_key": b64(self.keys.identity_key),
            "base_key": b64(self.keys.base_key),
            "one_time_key": b64(self.keys.one_time_key),
            "root_key": b64(self.root_key),
            "sending": None
            if isinstance(sender, _Waiting)
            else {
                "ratchet_private": b64(sender.ratchet_private),
                "chain_key": b64(sender.chain_key),
                "index": sender.index,
            },
            "their_ratchet_key": b64(sender.their_ratchet_key)
            if isinstance(sender, _Waiting)
            else None,
            "receiving": [
                {
                    "ratchet_key": b64(chain.ratchet_key),
                    "chain_key": b64(chain.chain_key),
                    "index": chain.index,
                    "skipped": [{"index": i, "key": b64(k)} for i, k in chain.skipped],
                }
                for chain in self._receivers
            ],
        }

    @classmethod
    def from_state(cls, state: StateReader) -> Session:
        keys = SessionKeys(
            state.raw("identity_key"), state.raw("base_key"), state.raw("one_time_key")
        )
        sending = state.optional_object("sending")
        sender: _SendingChain | _Waiting
        if sending is None:
            sender = _Waiting(state.raw("their_ratchet_key"))
        else:
            private = sending.raw("ratchet_private")
            sender = _SendingChain(
                private, x25519_public(private), sending.raw("chain_key"), sending.integer("index")
            )
        receivers = [
            _ReceivingChain(
                chain.raw("ratchet_key"),
                chain.raw("chain_key"),
                chain.integer("index"),
                tuple((s.integer("index"), s.raw("key")) for s in chain.objects("skipped")),
            )
            for chain in state.objects("receiving")
        ]
        if len(receivers) > MAX_RECEIVING_CHAINS or any(
            len(c.skipped) > MAX_SKIPPED_MESSAGE_KEYS for c in receivers
        ):
            raise _bad("stored session holds more than the limits allow")
        return cls(keys, state.raw("root_key"), sender, receivers)
