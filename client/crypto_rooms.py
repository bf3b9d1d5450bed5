"""Megolm in rooms (spec/e2ee.md §4.2, §4.4-§4.6): the ``encrypted`` event content, room
keys as they travel, when an outbound session rotates, and decrypting an event — all pure
functions over a :class:`~client.crypto_state.CryptoState`.

The plaintext of an ``encrypted`` event is the canonical JSON of ``{type, content,
room_id}``: the room id inside is checked against the room the event came in, so a
message cannot be replayed into another room; the session was handed over by an Olm
session with the Curve25519 key the event names, by the user who sent the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from client.crypto_olm import ENCRYPTED, DecryptionError, OlmPlaintext
from client.crypto_state import (
    CryptoState,
    InboundRoomKey,
    KnownDevice,
    OutboundRoomKey,
    random_bytes,
)
from client.results import Event
from protocol import JsonObject, ProtocolError, decode_json, encode_canonical_json
from protocol.crypto.megolm import InboundGroupSession, OutboundGroupSession
from protocol.crypto.primitives import b64decode, decode_varint

__all__ = [
    "DEFAULT_ROTATION_PERIOD_MS",
    "DEFAULT_ROTATION_PERIOD_MSGS",
    "MEGOLM_ALGORITHM",
    "ROOM_KEY",
    "EncryptionInfo",
    "RotationPolicy",
    "accept_room_key",
    "decrypt_event",
    "device_name",
    "encrypt_event",
    "needs_rotation",
    "new_outbound",
    "room_key_content",
]

MEGOLM_ALGORITHM = "m.megolm.v1.aes-sha2"
ROOM_KEY = "room_key"
"""The type, inside an Olm message, of a room key (§4.4)."""
DEFAULT_ROTATION_PERIOD_MS = 7 * 24 * 60 * 60 * 1000
DEFAULT_ROTATION_PERIOD_MSGS = 100


@dataclass(frozen=True, slots=True)
class RotationPolicy:
    """After how long, and how many messages, a room's outbound session is replaced."""

    period_ms: int = DEFAULT_ROTATION_PERIOD_MS
    period_msgs: int = DEFAULT_ROTATION_PERIOD_MSGS

    @classmethod
    def from_content(cls, content: Mapping[str, object]) -> RotationPolicy:
        """The policy of an ``encryption`` state event (rooms.md §3); 0 or absent: default."""
        ms, msgs = content.get("rotation_period_ms"), content.get("rotation_period_msgs")
        return cls(
            ms if type(ms) is int and ms > 0 else DEFAULT_ROTATION_PERIOD_MS,
            msgs if type(msgs) is int and msgs > 0 else DEFAULT_ROTATION_PERIOD_MSGS,
        )


@dataclass(frozen=True, slots=True)
class EncryptionInfo:
    """How an event came: encrypted, by which device's session, and whether it opened."""

    sender_key: str
    session_id: str
    device_id: str | None
    error: str | None = None
    """None once decrypted; else why not (§4.6): ``missing_key`` (kept until the key
    arrives), ``bad_message``, ``wrong_room``, ``wrong_sender``, ``replay``,
    ``unknown_algorithm``."""

    @property
    def decrypted(self) -> bool:
        """True when the event is shown decrypted."""
        return self.error is None


def device_name(user_id: str, device_id: str) -> str:
    """The key of a device in :attr:`OutboundRoomKey.shared_with`."""
    return f"{user_id} {device_id}"


def new_outbound(state: CryptoState, room_id: str, now_ms: int) -> OutboundRoomKey:
    """A fresh outbound session for ``room_id``; this device keeps an inbound copy, to read
    its own messages."""
    session = OutboundGroupSession.create(random_bytes)
    outbound = OutboundRoomKey(session, now_ms)
    state.outbound[room_id] = outbound
    state.add_inbound(
        InboundRoomKey(
            InboundGroupSession.from_session_key(session.session_key),
            room_id,
            state.account.curve25519_key,
            state.user_id,
            state.account.ed25519_key,
        )
    )
    return outbound


def needs_rotation(
    outbound: OutboundRoomKey,
    policy: RotationPolicy,
    now_ms: int,
    targets: Mapping[str, KnownDevice],
) -> bool:
    """§4.5: the session is too old or has said too much, or a device that holds its key
    is no longer among the ``targets`` (its user left, or the device was removed)."""
    if now_ms - outbound.created_ms >= policy.period_ms:
        return True
    if outbound.session.message_index >= policy.period_msgs:
        return True
    return any(
        name not in targets or targets[name].curve25519 != key
        for name, key in outbound.shared_with.items()
    )


def room_key_content(room_id: str, outbound: OutboundRoomKey) -> JsonObject:
    """The ``room_key`` message handing the session on from its current index (§4.4)."""
    return {
        "algorithm": MEGOLM_ALGORITHM,
        "room_id": room_id,
        "session_id": outbound.session.session_id,
        "session_key": outbound.session.session_key,
    }


def encrypt_event(state: CryptoState, room_id: str, type: str, content: JsonObject) -> JsonObject:
    """The content of the ``encrypted`` event that carries ``type``/``content`` in
    ``room_id``, under the room's outbound session (§4.2)."""
    outbound = state.outbound[room_id]
    plaintext = encode_canonical_json({"type": type, "content": content, "room_id": room_id})
    return {
        "algorithm": MEGOLM_ALGORITHM,
        "sender_key": state.account.curve25519_key,
        "session_id": outbound.session.session_id,
        "device_id": state.device_id,
        "ciphertext": outbound.session.encrypt(plaintext),
    }


def accept_room_key(state: CryptoState, message: OlmPlaintext) -> InboundRoomKey | None:
    """Keep the room key an Olm message carried (§4.4); None if it adds nothing new.
    :class:`DecryptionError` for a key that is not well formed."""
    content = message.content
    if content.get("algorithm") != MEGOLM_ALGORITHM:
        raise DecryptionError("unknown_algorithm", f"a room key of {MEGOLM_ALGORITHM} only")
    room_id, session_id = content.get("room_id"), content.get("session_id")
    session_key = content.get("session_key")
    if not (isinstance(room_id, str) and isinstance(session_id, str)):
        raise DecryptionError("bad_message", "a room key names its room and session")
    if not isinstance(session_key, str):
        raise DecryptionError("bad_message", "a room key carries its session key")
    try:
        session = InboundGroupSession.from_session_key(session_key)
    except ProtocolError as exc:
        raise DecryptionError("bad_message", str(exc)) from None
    if session.session_id != session_id:
        raise DecryptionError("bad_message", "the session key is of another session")
    key = InboundRoomKey(
        session, room_id, message.sender_key, message.sender, message.sender_ed25519
    )
    return key if state.add_inbound(key) else None


def _fields(content: JsonObject) -> tuple[str, str, str | None]:
    sender_key, session_id = content.get("sender_key"), content.get("session_id")
    device_id = content.get("device_id")
    if not (isinstance(sender_key, str) and isinstance(session_id, str)):
        raise DecryptionError("bad_message", "an encrypted event names its sender key and session")
    return sender_key, session_id, device_id if isinstance(device_id, str) else None


def event_session(event: Event) -> tuple[str, str, str | None] | None:
    """``(sender_key, session_id, device_id)`` of an ``encrypted`` event, None if it names
    none (a redacted one, say)."""
    try:
        return _fields(event.content)
    except DecryptionError:
        return None


def decrypt_event(state: CryptoState, event: Event) -> tuple[Event, EncryptionInfo]:
    """An ``encrypted`` event decrypted (§4.6), or left as it is with the reason it is not.

    The returned event has the plaintext's ``type`` and ``content``; everything else —
    id, room, sender, time, ``unsigned`` — is the node's. ``missing_key`` means the device
    holds no key that opens it yet: the caller keeps the event for when one arrives.
    """
    fields = event_session(event)
    if fields is None:
        return event, EncryptionInfo("", "", None, "bad_message")
    sender_key, session_id, device_id = fields
    info = EncryptionInfo(sender_key, session_id, device_id)
    if event.content.get("algorithm") != MEGOLM_ALGORITHM:
        return event, replace(info, error="unknown_algorithm")
    key = state.inbound_key(event.room_id, sender_key, session_id)
    if key is None:
        return event, replace(info, error="missing_key")
    if key.sender_user != event.sender:
        # The key came from another user's device: that device cannot speak for the sender.
        return event, replace(info, error="wrong_sender")
    ciphertext = event.content.get("ciphertext")
    if not isinstance(ciphertext, str):
        return event, replace(info, error="bad_message")
    try:
        decrypted = key.session.decrypt(ciphertext)
    except ProtocolError:
        if _below_first_index(key.session, ciphertext):
            return event, replace(info, error="missing_key")
        return event, replace(info, error="bad_message")
    seen = key.seen.setdefault(decrypted.message_index, event.event_id)
    if seen != event.event_id:
        return event, replace(info, error="replay")
    try:
        plain = decode_json(decrypted.plaintext)
    except ProtocolError:
        return event, replace(info, error="bad_message")
    if not isinstance(plain, dict):
        return event, replace(info, error="bad_message")
    if plain.get("room_id") != event.room_id:
        return event, replace(info, error="wrong_room")
    inner_type, inner_content = plain.get("type"), plain.get("content")
    if not isinstance(inner_type, str) or not isinstance(inner_content, dict):
        return event, replace(info, error="bad_message")
    if inner_type == ENCRYPTED:
        return event, replace(info, error="bad_message")
    return replace(event, type=inner_type, content=inner_content), info


def _below_first_index(session: InboundGroupSession, ciphertext: str) -> bool:
    """True if the message is at an index before the first this device was given."""
    try:
        raw = b64decode(ciphertext)
        index, _ = decode_varint(raw, 2) if raw[:2] == b"\x03\x08" else (None, 0)
    except (ProtocolError, IndexError):
        return False
    return index is not None and index < session.first_known_index
