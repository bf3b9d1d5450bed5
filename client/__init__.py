"""The reference Kith client library and terminal client (spec/client.md)."""

from client.backoff import Backoff
from client.crypto_rooms import EncryptionInfo
from client.errors import (
    ClientError,
    ConnectError,
    ConnectionLostError,
    KithClientError,
    SessionClosedError,
)
from client.results import (
    Device,
    Event,
    HistoryPage,
    Login,
    MalformedAnswerError,
    Member,
    PresenceInfo,
    RoomSummary,
)
from client.session import Session, connect
from client.store import Store, StoreError
from client.sync import UpdateStream
from client.updates import (
    CaughtUp,
    Decrypted,
    DeviceListUpdate,
    EventItem,
    KeyCounts,
    Limited,
    PresenceChanged,
    Receipt,
    Reconnecting,
    Retraction,
    SignedOut,
    ToDevice,
    TypingChanged,
    Update,
)

__all__ = [
    "Backoff",
    "CaughtUp",
    "ClientError",
    "ConnectError",
    "ConnectionLostError",
    "Decrypted",
    "Device",
    "DeviceListUpdate",
    "EncryptionInfo",
    "Event",
    "EventItem",
    "HistoryPage",
    "KeyCounts",
    "KithClientError",
    "Limited",
    "Login",
    "MalformedAnswerError",
    "Member",
    "PresenceChanged",
    "PresenceInfo",
    "Receipt",
    "Reconnecting",
    "Retraction",
    "RoomSummary",
    "Session",
    "SessionClosedError",
    "SignedOut",
    "Store",
    "StoreError",
    "ToDevice",
    "TypingChanged",
    "Update",
    "UpdateStream",
    "connect",
]
