"""A device's end-to-end encryption state, and how it is kept sealed (spec/e2ee.md §4.1,
§4.7).

Everything here is what the device must not lose and no one else may read: its Olm account,
its Olm sessions by the other device's Curve25519 identity key, one outbound Megolm session
per room (with whom it was shared), the inbound Megolm sessions by (room, sender key,
session id), the identity keys it learnt of other devices, and the encrypted events it could
not decrypt yet. The whole state is one JSON document sealed (XSalsa20-Poly1305, e2ee.md §1)
under the device's 32-byte **storage key**; Olm and Megolm objects inside it are their own
sealed pickles (§2.7, §3.10) under the same key.

The storage key lives in a file beside the store (``<store>.key``, mode 0600), made from
``os.urandom`` the first time: the store alone — a backup, a copy sent with a bug report —
opens nothing. A store kept only in memory has a key kept only in memory.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client.store import write_atomically
from protocol import ProtocolError
from protocol.crypto.megolm import InboundGroupSession, OutboundGroupSession
from protocol.crypto.olm_account import Account
from protocol.crypto.olm_session import Session as OlmSession
from protocol.crypto.primitives import b64decode, b64encode, open_sealed, seal

__all__ = [
    "STATE_FORMAT",
    "STORAGE_KEY_BYTES",
    "CryptoState",
    "CryptoStateError",
    "InboundRoomKey",
    "KnownDevice",
    "OutboundRoomKey",
    "PendingEvent",
    "load_storage_key",
    "random_bytes",
]

STATE_FORMAT = 1
STORAGE_KEY_BYTES = 32
MAX_PENDING_EVENTS = 1000
"""Undecryptable events kept for a key that may still come; beyond this the oldest go."""


class CryptoStateError(ValueError):
    """The sealed state does not open under the storage key, or is not of this format."""


def random_bytes(n: int) -> bytes:
    """The client's randomness (protocol/ takes it as an argument)."""
    return os.urandom(n)


def key_path(store_path: Path) -> Path:
    """Where the storage key of the store at ``store_path`` is kept."""
    return store_path.with_name(store_path.name + ".key")


def load_storage_key(store_path: Path | None) -> bytes:
    """The storage key of the store at ``store_path``, made on first use (mode 0600).

    None (a store in memory) gets a fresh key that lives as long as the process."""
    if store_path is None:
        return random_bytes(STORAGE_KEY_BYTES)
    path = key_path(store_path)
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = random_bytes(STORAGE_KEY_BYTES)
        write_atomically(path, key)
        return key
    if len(key) != STORAGE_KEY_BYTES:
        raise ValueError(f"{path}: a storage key is {STORAGE_KEY_BYTES} bytes")
    return key


@dataclass(frozen=True, slots=True)
class KnownDevice:
    """Another device's identity keys, as its signed key object gave them (client.md §9)."""

    user_id: str
    device_id: str
    curve25519: str
    ed25519: str


@dataclass
class OutboundRoomKey:
    """This device's Megolm session of one room and the devices that hold its key."""

    session: OutboundGroupSession
    created_ms: int
    shared_with: dict[str, str] = field(default_factory=dict)
    """``"<user id> <device id>"`` → that device's Curve25519 key, for every device sent
    the key: a device that is gone (or now has another key) means the session rotates."""


@dataclass
class InboundRoomKey:
    """A Megolm session another device (or this one) handed us, and who handed it."""

    session: InboundGroupSession
    room_id: str
    sender_key: str
    """The Curve25519 key of the Olm session that delivered it (§4.5)."""
    sender_user: str
    sender_ed25519: str
    seen: dict[int, str] = field(default_factory=dict)
    """Message index → the event it was read from: another event at an index is a replay."""


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An ``encrypted`` event kept until the key it names arrives (§4.6)."""

    room_id: str
    sender_key: str
    session_id: str
    event: dict[str, Any]


def _inbound_id(room_id: str, sender_key: str, session_id: str) -> str:
    return f"{room_id} {sender_key} {session_id}"


@dataclass
class CryptoState:
    """All of one device's encryption state (see the module doc)."""

    user_id: str
    device_id: str
    account: Account
    keys_published: bool = False
    """The identity keys and the first one-time and fallback keys are on the node."""
    olm_sessions: dict[str, list[OlmSession]] = field(default_factory=dict)
    """Curve25519 key of the other device → its sessions, the one to send with first."""
    outbound: dict[str, OutboundRoomKey] = field(default_factory=dict)
    inbound: dict[str, InboundRoomKey] = field(default_factory=dict)
    devices: dict[str, dict[str, KnownDevice]] = field(default_factory=dict)
    """User → device → identity keys, for users queried at least once."""
    outdated: set[str] = field(default_factory=set)
    """Users whose device list changed since it was queried (``device_list_update``)."""
    pending: list[PendingEvent] = field(default_factory=list)

    @classmethod
    def create(cls, user_id: str, device_id: str) -> CryptoState:
        """A new device's state: a fresh Olm account, nothing shared yet."""
        return cls(user_id, device_id, Account.create(random_bytes))

    # --- lookups ---------------------------------------------------------------------------

    def inbound_key(self, room_id: str, sender_key: str, session_id: str) -> InboundRoomKey | None:
        """The inbound session an ``encrypted`` event names, if this device holds it."""
        return self.inbound.get(_inbound_id(room_id, sender_key, session_id))

    def add_inbound(self, key: InboundRoomKey) -> bool:
        """Keep a room key; False (and nothing changes) if it is already held from an index
        at or below the new one's — a later copy adds nothing."""
        name = _inbound_id(key.room_id, key.sender_key, key.session.session_id)
        held = self.inbound.get(name)
        if held is not None and held.session.first_known_index <= key.session.first_known_index:
            return False
        self.inbound[name] = key
        return True

    def device_by_curve_key(self, user_id: str, curve25519: str) -> KnownDevice | None:
        """The known device of ``user_id`` whose identity key is ``curve25519``."""
        for device in self.devices.get(user_id, {}).values():
            if device.curve25519 == curve25519:
                return device
        return None

    def keep_pending(self, pending: PendingEvent) -> None:
        """Hold an undecryptable event (once), dropping the oldest beyond the bound."""
        event_id = pending.event.get("event_id")
        if any(p.event.get("event_id") == event_id for p in self.pending):
            return
        self.pending.append(pending)
        del self.pending[:-MAX_PENDING_EVENTS]

    def take_pending(self, room_id: str, sender_key: str, session_id: str) -> list[PendingEvent]:
        """The held events a newly arrived key may open, removed from the hold."""
        wanted = (room_id, sender_key, session_id)
        taken = [p for p in self.pending if (p.room_id, p.sender_key, p.session_id) == wanted]
        self.pending = [p for p in self.pending if p not in taken]
        return taken

    # --- storage ---------------------------------------------------------------------------

    def seal(self, key: bytes) -> str:
        """The whole state sealed under the storage ``key``, as base64 for the store."""

        def pickled(obj: Account | OlmSession | OutboundGroupSession | InboundGroupSession) -> str:
            return b64encode(obj.pickle(key, random_bytes))

        document = {
            "format": STATE_FORMAT,
            "user_id": self.user_id,
            "device_id": self.device_id,
            "account": pickled(self.account),
            "keys_published": self.keys_published,
            "olm_sessions": {
                peer: [pickled(s) for s in sessions] for peer, sessions in self.olm_sessions.items()
            },
            "outbound": {
                room: {
                    "session": pickled(o.session),
                    "created_ms": o.created_ms,
                    "shared_with": o.shared_with,
                }
                for room, o in self.outbound.items()
            },
            "inbound": [
                {
                    "session": pickled(i.session),
                    "room_id": i.room_id,
                    "sender_key": i.sender_key,
                    "sender_user": i.sender_user,
                    "sender_ed25519": i.sender_ed25519,
                    "seen": {str(index): event for index, event in i.seen.items()},
                }
                for i in self.inbound.values()
            ],
            "devices": {
                user: {d.device_id: [d.curve25519, d.ed25519] for d in by_device.values()}
                for user, by_device in self.devices.items()
            },
            "outdated": sorted(self.outdated),
            "pending": [
                {
                    "room_id": p.room_id,
                    "sender_key": p.sender_key,
                    "session_id": p.session_id,
                    "event": p.event,
                }
                for p in self.pending
            ],
        }
        plain = json.dumps(document, sort_keys=True, ensure_ascii=False).encode()
        return b64encode(seal(key, random_bytes, plain))

    @classmethod
    def open(cls, key: bytes, sealed: str) -> CryptoState:
        """The state :meth:`seal` sealed; :class:`CryptoStateError` if it does not open
        under ``key`` or has another shape."""
        try:
            return cls._open(key, sealed)
        except (ProtocolError, ValueError, KeyError, TypeError) as exc:
            raise CryptoStateError(f"the encryption state does not open: {exc}") from None

    @classmethod
    def _open(cls, key: bytes, sealed: str) -> CryptoState:
        document = json.loads(open_sealed(key, b64decode(sealed)))
        if type(document) is not dict or document.get("format") != STATE_FORMAT:
            raise CryptoStateError(f"not an encryption state of format {STATE_FORMAT}")

        def raw(text: str) -> bytes:
            return b64decode(text)

        state = cls(
            document["user_id"],
            document["device_id"],
            Account.from_pickle(key, raw(document["account"])),
            keys_published=bool(document["keys_published"]),
        )
        for peer, sessions in document["olm_sessions"].items():
            state.olm_sessions[peer] = [OlmSession.from_pickle(key, raw(s)) for s in sessions]
        for room, o in document["outbound"].items():
            state.outbound[room] = OutboundRoomKey(
                OutboundGroupSession.from_pickle(key, raw(o["session"])),
                int(o["created_ms"]),
                dict(o["shared_with"]),
            )
        for i in document["inbound"]:
            state.add_inbound(
                InboundRoomKey(
                    InboundGroupSession.from_pickle(key, raw(i["session"])),
                    i["room_id"],
                    i["sender_key"],
                    i["sender_user"],
                    i["sender_ed25519"],
                    {int(index): event for index, event in i["seen"].items()},
                )
            )
        for user, by_device in document["devices"].items():
            state.devices[user] = {
                device: KnownDevice(user, device, curve, ed)
                for device, (curve, ed) in by_device.items()
            }
        state.outdated = set(document["outdated"])
        state.pending = [
            PendingEvent(p["room_id"], p["sender_key"], p["session_id"], p["event"])
            for p in document["pending"]
        ]
        return state
