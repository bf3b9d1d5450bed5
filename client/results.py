"""Typed forms of what the node answers (spec/client.md §2-§6): small frozen dataclasses.

Each has a ``from_json`` that reads the node's object and raises :class:`MalformedAnswerError` —
and only that — when a member is missing or of the wrong type, so a node that breaks the
contract fails loudly at the boundary instead of deep inside an application. Members the
spec does not name are ignored: later versions may add some.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from protocol import JsonObject

__all__ = [
    "Device",
    "Event",
    "HistoryPage",
    "Login",
    "MalformedAnswerError",
    "Member",
    "PresenceInfo",
    "RoomSummary",
]

T = TypeVar("T")


class MalformedAnswerError(ValueError):
    """The node sent an object that does not have the shape spec/client.md gives it."""


def need(data: Mapping[str, Any], name: str, kind: type[T]) -> T:
    """``data[name]``, which must be of exactly ``kind`` (``True`` is not an ``int``)."""
    value = data.get(name)
    if type(value) is not kind:
        raise MalformedAnswerError(f"{name!r} should be {kind.__name__}, got {value!r:.80}")
    return value


def maybe(data: Mapping[str, Any], name: str, kind: type[T]) -> T | None:
    """``data[name]`` if present and not null; then it must be of exactly ``kind``."""
    if data.get(name) is None:
        return None
    return need(data, name, kind)


def need_object(value: Any, what: str) -> JsonObject:
    """``value``, which must be a JSON object."""
    if type(value) is not dict:
        raise MalformedAnswerError(f"{what} should be an object, got {value!r:.80}")
    return value


@dataclass(frozen=True, slots=True)
class Login:
    """Who a connection acts as after ``register``, ``login`` or ``authenticate`` (§2).

    The access token is not here: the session keeps it in its store, out of sight.
    """

    user_id: str
    device_id: str


@dataclass(frozen=True, slots=True)
class Device:
    """One of the user's devices (``devices``, client.md §2)."""

    device_id: str
    display_name: str | None
    created_ts: int
    last_seen_ts: int | None
    current: bool
    """True for the device of this connection."""

    @classmethod
    def from_json(cls, data: Any) -> Device:
        """Read one entry of the ``devices`` result."""
        data = need_object(data, "a device")
        return cls(
            device_id=need(data, "device_id", str),
            display_name=maybe(data, "display_name", str),
            created_ts=need(data, "created_ts", int),
            last_seen_ts=maybe(data, "last_seen_ts", int),
            current=need(data, "current", bool),
        )


@dataclass(frozen=True, slots=True)
class RoomSummary:
    """One room of the ``rooms`` result (client.md §3)."""

    room_id: str
    name: str | None
    topic: str | None
    direct: bool
    encrypted: bool
    membership: str
    """``join`` or ``invite``."""
    member_count: int
    """Joined users."""
    unread_count: int
    """Messages by others after the user's read receipt."""
    encryption: dict[str, Any] | None = None
    """The content of the room's ``encryption`` state event (e2ee.md §4), if encrypted."""

    @classmethod
    def from_json(cls, data: Any) -> RoomSummary:
        """Read one entry of the ``rooms`` result."""
        data = need_object(data, "a room")
        return cls(
            room_id=need(data, "room_id", str),
            name=maybe(data, "name", str),
            topic=maybe(data, "topic", str),
            direct=need(data, "direct", bool),
            encrypted=need(data, "encrypted", bool),
            membership=need(data, "membership", str),
            member_count=need(data, "member_count", int),
            unread_count=need(data, "unread_count", int),
            encryption=maybe(data, "encryption", dict),
        )


@dataclass(frozen=True, slots=True)
class Member:
    """One user with a ``member`` event in a room (``members``, client.md §3)."""

    user_id: str
    membership: str
    display_name: str | None
    level: int
    creator: bool

    @classmethod
    def from_json(cls, data: Any) -> Member:
        """Read one entry of the ``members`` result."""
        data = need_object(data, "a member")
        return cls(
            user_id=need(data, "user_id", str),
            membership=need(data, "membership", str),
            display_name=maybe(data, "display_name", str),
            level=need(data, "level", int),
            creator=need(data, "creator", bool),
        )


@dataclass(frozen=True, slots=True)
class Event:
    """A room event in client form (client.md §5): what history and the stream carry."""

    event_id: str
    room_id: str
    type: str
    sender: str
    content: JsonObject = field(hash=False)
    origin_server_ts: int
    state_key: str | None = None
    """Set for state events (member, name, topic, …); None for timeline events."""
    unsigned: JsonObject = field(default_factory=dict, hash=False)

    @classmethod
    def from_json(cls, data: Any) -> Event:
        """Read an event in client form."""
        data = need_object(data, "an event")
        return cls(
            event_id=need(data, "event_id", str),
            room_id=need(data, "room_id", str),
            type=need(data, "type", str),
            sender=need(data, "sender", str),
            content=need_object(data.get("content"), "'content'"),
            origin_server_ts=need(data, "origin_server_ts", int),
            state_key=maybe(data, "state_key", str),
            unsigned=need_object(data.get("unsigned", {}), "'unsigned'"),
        )

    def to_json(self) -> JsonObject:
        """The client form again (for ``kith tail`` and tests)."""
        form: JsonObject = {
            "event_id": self.event_id,
            "room_id": self.room_id,
            "type": self.type,
            "sender": self.sender,
            "content": self.content,
            "origin_server_ts": self.origin_server_ts,
        }
        if self.state_key is not None:
            form["state_key"] = self.state_key
        if self.unsigned:
            form["unsigned"] = self.unsigned
        return form

    @property
    def body(self) -> str | None:
        """The text of a ``message`` event (None for anything else or a redacted one)."""
        body = self.content.get("body")
        return body if self.type == "message" and isinstance(body, str) else None

    @property
    def membership(self) -> str | None:
        """For a ``member`` event: the target's new membership."""
        value = self.content.get("membership")
        return value if self.type == "member" and isinstance(value, str) else None

    @property
    def transaction_id(self) -> str | None:
        """The ``txn_id`` this device sent it with (only the sending device sees it)."""
        value = self.unsigned.get("transaction_id")
        return value if isinstance(value, str) else None

    @property
    def redacted_by(self) -> str | None:
        """The id of the redaction that took effect on this event, if any."""
        value = self.unsigned.get("redacted_by")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A page of a room's timeline, oldest first (``history``, client.md §4)."""

    events: tuple[Event, ...]
    before: str | None
    """Pass as ``before`` for the previous page; None at the room's start."""

    @classmethod
    def from_json(cls, data: JsonObject) -> HistoryPage:
        """Read the ``history`` result."""
        events = need(data, "events", list)
        return cls(tuple(Event.from_json(e) for e in events), maybe(data, "before", str))


@dataclass(frozen=True, slots=True)
class PresenceInfo:
    """A user's presence (``get_presence`` and ``presence_update``, client.md §6)."""

    user_id: str
    presence: str
    """``online`` or ``offline``."""
    last_active_ts: int | None = None
    status_msg: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> PresenceInfo:
        """Read a presence object."""
        data = need_object(data, "a presence")
        return cls(
            user_id=need(data, "user_id", str),
            presence=need(data, "presence", str),
            last_active_ts=maybe(data, "last_active_ts", int),
            status_msg=maybe(data, "status_msg", str),
        )

    @property
    def online(self) -> bool:
        """True when the user is online."""
        return self.presence == "online"
