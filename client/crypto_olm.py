"""Olm to-device messages (spec/e2ee.md §4.3): the envelope a device writes for another
device, and the checks a device makes on one it decrypts.

The plaintext inside the envelope names both ends — ``sender``, ``sender_device`` and the
sender's Ed25519 key (``keys``), ``recipient`` and the recipient's Ed25519 key
(``recipient_keys``) — and the receiver refuses a message whose names are not the ones it
expects. Olm alone proves only that the holder of a Curve25519 key wrote the message; these
fields stop a device from passing on, as its own, a message another device was sent (the
unknown key-share attack).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from client.crypto_state import CryptoState, KnownDevice, random_bytes
from protocol import JsonObject, ProtocolError, decode_json, encode_canonical_json
from protocol.crypto.olm_messages import MessageType, OlmMessage

__all__ = [
    "ENCRYPTED",
    "OLM_ALGORITHM",
    "DecryptionError",
    "OlmPlaintext",
    "olm_decrypt",
    "olm_encrypt",
]

OLM_ALGORITHM = "m.olm.v1.curve25519-aes-sha2"
ENCRYPTED = "encrypted"
"""The type of an encrypted to-device message, as of an encrypted room event."""


class DecryptionError(Exception):
    """A message this device cannot (or must not) read; ``reason`` says which (§4.6)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class OlmPlaintext:
    """A decrypted to-device message and who wrote it."""

    sender: str
    sender_device: str
    sender_key: str
    """The Curve25519 identity key of the Olm session it came through."""
    sender_ed25519: str
    """The Ed25519 key the sender claims (``keys.ed25519``); the caller checks it against
    the sender's published keys."""
    type: str
    content: JsonObject


def olm_encrypt(
    state: CryptoState, device: KnownDevice, type: str, content: JsonObject
) -> JsonObject:
    """The ``encrypted`` to-device content carrying ``type``/``content`` to ``device``,
    over the first of this device's Olm sessions with it (the caller made sure of one)."""
    account = state.account
    session = state.olm_sessions[device.curve25519][0]
    payload: JsonObject = {
        "sender": state.user_id,
        "sender_device": state.device_id,
        "keys": {"ed25519": account.ed25519_key},
        "recipient": device.user_id,
        "recipient_keys": {"ed25519": device.ed25519},
        "type": type,
        "content": content,
    }
    message = session.encrypt(encode_canonical_json(payload), random_bytes)
    return {
        "algorithm": OLM_ALGORITHM,
        "sender_key": account.curve25519_key,
        "ciphertext": {device.curve25519: {"type": int(message.type), "body": message.body}},
    }


def _text(data: Any, name: str) -> str:
    value = data.get(name) if isinstance(data, dict) else None
    if not isinstance(value, str):
        raise DecryptionError("bad_message", f"{name!r} should be a string")
    return value


def _decrypt(state: CryptoState, sender_key: str, message: OlmMessage) -> bytes:
    """Try the sessions with ``sender_key``; a pre-key message none of them takes starts a
    new one (e2ee.md §2.6). The session that decrypted moves to the front."""
    sessions = state.olm_sessions.setdefault(sender_key, [])
    for session in list(sessions):
        if message.type == MessageType.PRE_KEY and not session.matches(message):
            continue
        try:
            plaintext = session.decrypt(message)
        except ProtocolError:
            continue
        sessions.remove(session)
        sessions.insert(0, session)
        return plaintext
    if message.type != MessageType.PRE_KEY:
        if not sessions:
            del state.olm_sessions[sender_key]
        raise DecryptionError("bad_message", "no Olm session with the sender decrypts it")
    try:
        session, plaintext = state.account.create_inbound_session(sender_key, message)
    except ProtocolError as exc:
        if not sessions:
            del state.olm_sessions[sender_key]
        raise DecryptionError("bad_message", str(exc)) from None
    sessions.insert(0, session)
    return plaintext


def olm_decrypt(
    state: CryptoState, sender: str, sender_device: str, content: JsonObject
) -> OlmPlaintext:
    """Open an ``encrypted`` to-device message from ``sender``'s ``sender_device`` (as the
    node named them) and check the names inside (§4.3); :class:`DecryptionError` if it is
    not for this device, does not decrypt, or names other ends."""
    if content.get("algorithm") != OLM_ALGORITHM:
        raise DecryptionError("unknown_algorithm", f"not {OLM_ALGORITHM}")
    sender_key = _text(content, "sender_key")
    mine = content.get("ciphertext")
    mine = mine.get(state.account.curve25519_key) if isinstance(mine, dict) else None
    if not isinstance(mine, dict):
        raise DecryptionError("not_for_this_device", "no ciphertext for this device's key")
    try:
        message = OlmMessage(mine.get("type"), mine.get("body"))  # type: ignore[arg-type]
        plaintext = _decrypt(state, sender_key, message)
        payload = decode_json(plaintext)
    except ProtocolError as exc:
        raise DecryptionError("bad_message", str(exc)) from None
    if not isinstance(payload, dict):
        raise DecryptionError("bad_message", "the plaintext is not an object")
    # e2ee.md §4.3: the unknown key-share checks.
    if _text(payload, "sender") != sender or _text(payload, "sender_device") != sender_device:
        raise DecryptionError("wrong_sender", "the plaintext names another sender")
    if _text(payload, "recipient") != state.user_id:
        raise DecryptionError("wrong_recipient", "the plaintext names another recipient")
    if _text(payload.get("recipient_keys"), "ed25519") != state.account.ed25519_key:
        raise DecryptionError("wrong_recipient", "the plaintext names another recipient key")
    content_inside = payload.get("content")
    if not isinstance(content_inside, dict):
        raise DecryptionError("bad_message", "'content' should be an object")
    return OlmPlaintext(
        sender,
        sender_device,
        sender_key,
        _text(payload.get("keys"), "ed25519"),
        _text(payload, "type"),
        content_inside,
    )
