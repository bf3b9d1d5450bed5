"""Olm's key schedule (spec/e2ee.md §2.2 to §2.4): the triple Diffie-Hellman that starts a
session, the root ratchet, the chain steps and the keys of one message.

Each step is a plain function of bytes, so the known-answer vectors can show every
intermediate value and a second implementation can be checked one step at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from hmac import compare_digest
from typing import Final

from protocol.crypto.olm_messages import NormalMessage
from protocol.crypto.primitives import (
    MAC_BYTES,
    aes_cbc_decrypt,
    aes_cbc_encrypt,
    hkdf_sha256,
    hmac_sha256,
    x25519,
)
from protocol.errors import ErrorCode, RemoteProtocolError

__all__ = [
    "MessageKeys",
    "advance_chain",
    "advance_root",
    "decrypt_with",
    "encrypt_with",
    "message_keys",
    "shared_secret_inbound",
    "shared_secret_outbound",
    "split_shared_secret",
]

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
        raise RemoteProtocolError(ErrorCode.BAD_MESSAGE, "the Olm message's MAC is wrong")
    return aes_cbc_decrypt(keys.aes_key, keys.iv, message.ciphertext)
