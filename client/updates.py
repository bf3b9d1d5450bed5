"""What the sync iterator yields: typed updates made from the node's pushes (spec/client.md §5,
§6, §1), and the pure bookkeeping that turns ``sync_batch`` notices into them.

Stream items carry their ``position``: :class:`EventItem`, :class:`Retraction`,
:class:`Receipt`, :class:`ToDevice`; with end-to-end encryption on, also
:class:`KeyCounts` and :class:`DeviceListUpdate` (after the library acted on them), and
:class:`Decrypted` when an event shown undecryptable opens (spec/e2ee.md §4.6). Around
them come :class:`Limited` (the node skipped items of those rooms: page back with
``history``, §5 step 3), :class:`CaughtUp` (the device has everything up to the stream's
head, §5 step 2), and the pushes that are not stream items:
:class:`PresenceChanged`, :class:`TypingChanged`, :class:`SignedOut` (the last update of a
stream), and :class:`Reconnecting` from the library itself.

:class:`BatchReader` is sans-IO: it reads notices in arrival order and says, for each update,
which position is processed once the application is done with it. It drops any item at or
below the highest position it has already handed out, which is what makes a resumed stream
exactly-once: after a reconnect the node may resend items the old connection had already
delivered (their ``sync`` started from the last *acknowledged* position).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from client.crypto_rooms import EncryptionInfo
from client.results import Event, MalformedAnswerError, PresenceInfo, maybe, need, need_object
from protocol import JsonObject, Notice

__all__ = [
    "BatchReader",
    "CaughtUp",
    "Decrypted",
    "DeviceListUpdate",
    "EventItem",
    "KeyCounts",
    "Limited",
    "Pending",
    "PresenceChanged",
    "Receipt",
    "Reconnecting",
    "Retraction",
    "SignedOut",
    "ToDevice",
    "TypingChanged",
    "Update",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EventItem:
    """A room event the device may see (stream item ``event``)."""

    kind: ClassVar[str] = "event"
    position: int
    event: Event
    encryption: EncryptionInfo | None = None
    """For an event that came ``encrypted`` (with end-to-end encryption on): the session it
    names, and ``error`` when it is shown undecrypted (spec/e2ee.md §4.6)."""

    @property
    def room_id(self) -> str:
        """The event's room."""
        return self.event.room_id

    def to_json(self) -> JsonObject:
        """``{"kind": "event", "position", "room_id", "event"}`` (and ``encryption``)."""
        form: JsonObject = {
            "kind": self.kind,
            "position": self.position,
            "room_id": self.room_id,
            "event": self.event.to_json(),
        }
        if self.encryption is not None:
            form["encryption"] = _encryption_json(self.encryption)
        return form


@dataclass(frozen=True, slots=True)
class Retraction:
    """An event delivered earlier is no longer accepted (stream item ``retraction``)."""

    kind: ClassVar[str] = "retraction"
    position: int
    room_id: str
    event_id: str

    def to_json(self) -> JsonObject:
        """``{"kind": "retraction", "position", "room_id", "event_id"}``."""
        return {
            "kind": self.kind,
            "position": self.position,
            "room_id": self.room_id,
            "event_id": self.event_id,
        }


@dataclass(frozen=True, slots=True)
class Receipt:
    """A user has read a room up to an event (stream item ``receipt``)."""

    kind: ClassVar[str] = "receipt"
    position: int
    room_id: str
    user_id: str
    event_id: str

    def to_json(self) -> JsonObject:
        """``{"kind": "receipt", "position", "room_id", "user_id", "event_id"}``."""
        return {
            "kind": self.kind,
            "position": self.position,
            "room_id": self.room_id,
            "user_id": self.user_id,
            "event_id": self.event_id,
        }


@dataclass(frozen=True, slots=True)
class ToDevice:
    """A message for this device from another device (stream item ``to_device``)."""

    kind: ClassVar[str] = "to_device"
    position: int
    sender: str
    sender_device: str
    type: str
    content: JsonObject = field(hash=False)
    sender_key: str | None = None
    """Set when the message came Olm-encrypted and was decrypted: the Curve25519 key of the
    sender's device (``type`` and ``content`` are then the plaintext's, spec/e2ee.md §4.3)."""

    def to_json(self) -> JsonObject:
        """``{"kind": "to_device", "position", "sender", "sender_device", "type", "content"}``."""
        form: JsonObject = {
            "kind": self.kind,
            "position": self.position,
            "sender": self.sender,
            "sender_device": self.sender_device,
            "type": self.type,
            "content": self.content,
        }
        if self.sender_key is not None:
            form["sender_key"] = self.sender_key
        return form


@dataclass(frozen=True, slots=True)
class KeyCounts:
    """The device's stock of one-time keys on its node ran low (stream item ``key_counts``,
    client.md §9); with end-to-end encryption on, the library has uploaded more."""

    kind: ClassVar[str] = "key_counts"
    position: int
    one_time_key_counts: JsonObject = field(hash=False)

    def to_json(self) -> JsonObject:
        """``{"kind": "key_counts", "position", "one_time_key_counts"}``."""
        return {
            "kind": self.kind,
            "position": self.position,
            "one_time_key_counts": self.one_time_key_counts,
        }


@dataclass(frozen=True, slots=True)
class DeviceListUpdate:
    """A user's devices changed (stream item ``device_list_update``, client.md §9)."""

    kind: ClassVar[str] = "device_list_update"
    position: int
    user_id: str

    def to_json(self) -> JsonObject:
        """``{"kind": "device_list_update", "position", "user_id"}``."""
        return {"kind": self.kind, "position": self.position, "user_id": self.user_id}


@dataclass(frozen=True, slots=True)
class Decrypted:
    """An event shown undecryptable earlier opens now: its key arrived (spec/e2ee.md §4.6).

    ``event`` is the decrypted event, under the id it had; show it in place of that one."""

    kind: ClassVar[str] = "decrypted"
    event: Event
    encryption: EncryptionInfo

    @property
    def room_id(self) -> str:
        """The event's room."""
        return self.event.room_id

    def to_json(self) -> JsonObject:
        """``{"kind": "decrypted", "room_id", "event", "encryption"}``."""
        return {
            "kind": self.kind,
            "room_id": self.room_id,
            "event": self.event.to_json(),
            "encryption": _encryption_json(self.encryption),
        }


def _encryption_json(info: EncryptionInfo) -> JsonObject:
    return {
        "sender_key": info.sender_key,
        "session_id": info.session_id,
        "device_id": info.device_id,
        "error": info.error,
    }


@dataclass(frozen=True, slots=True)
class Limited:
    """The node skipped older items of these rooms (§5 step 3): page back with ``history``."""

    kind: ClassVar[str] = "limited"
    rooms: tuple[str, ...]

    def to_json(self) -> JsonObject:
        """``{"kind": "limited", "rooms"}``."""
        return {"kind": self.kind, "rooms": list(self.rooms)}


@dataclass(frozen=True, slots=True)
class CaughtUp:
    """The device has every item up to ``position``, the stream's head; live items follow."""

    kind: ClassVar[str] = "caught_up"
    position: int

    def to_json(self) -> JsonObject:
        """``{"kind": "caught_up", "position"}``."""
        return {"kind": self.kind, "position": self.position}


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """A contact's presence or status message changed (``presence_update``, §6)."""

    kind: ClassVar[str] = "presence"
    presence: PresenceInfo

    def to_json(self) -> JsonObject:
        """``{"kind": "presence", "user_id", "presence", "last_active_ts", "status_msg"}``."""
        info = self.presence
        return {
            "kind": self.kind,
            "user_id": info.user_id,
            "presence": info.presence,
            "last_active_ts": info.last_active_ts,
            "status_msg": info.status_msg,
        }


@dataclass(frozen=True, slots=True)
class TypingChanged:
    """Who is typing in a room now (``typing_update``, §4)."""

    kind: ClassVar[str] = "typing"
    room_id: str
    user_ids: tuple[str, ...]

    def to_json(self) -> JsonObject:
        """``{"kind": "typing", "room_id", "user_ids"}``."""
        return {"kind": self.kind, "room_id": self.room_id, "user_ids": list(self.user_ids)}


@dataclass(frozen=True, slots=True)
class SignedOut:
    """The device was logged out or revoked (``signed_out``, §1); the stream ends here."""

    kind: ClassVar[str] = "signed_out"
    reason: str

    def to_json(self) -> JsonObject:
        """``{"kind": "signed_out", "reason"}``."""
        return {"kind": self.kind, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Reconnecting:
    """The connection dropped; the library tries again in ``delay`` seconds.

    The stream resumes by itself once reconnected: nothing is lost in between.
    """

    kind: ClassVar[str] = "reconnecting"
    attempt: int
    delay: float

    def to_json(self) -> JsonObject:
        """``{"kind": "reconnecting", "attempt", "delay"}``."""
        return {"kind": self.kind, "attempt": self.attempt, "delay": round(self.delay, 3)}


Update = (
    EventItem
    | Retraction
    | Receipt
    | ToDevice
    | KeyCounts
    | DeviceListUpdate
    | Decrypted
    | Limited
    | CaughtUp
    | PresenceChanged
    | TypingChanged
    | SignedOut
    | Reconnecting
)
"""Anything the sync iterator yields."""


@dataclass(frozen=True, slots=True)
class Pending:
    """An update waiting to be yielded, and the position processed once it is done with.

    ``update`` is None for a step with nothing to show (a batch whose items were all
    resent or invisible): its position counts as processed as soon as it is reached.
    """

    update: Update | None
    completes: int | None = None
    decrypted: bool = False
    """The end-to-end encryption layer has seen it already (``client.sync``)."""


def _item(
    data: Any,
) -> EventItem | Retraction | Receipt | ToDevice | KeyCounts | DeviceListUpdate | None:
    """One stream item (§5 table); None for a kind this version does not know."""
    data = need_object(data, "a stream item")
    position = need(data, "position", int)
    kind = need(data, "kind", str)
    if kind == "event":
        return EventItem(position, Event.from_json(data.get("event")))
    if kind == "retraction":
        return Retraction(position, need(data, "room_id", str), need(data, "event_id", str))
    if kind == "receipt":
        return Receipt(
            position,
            need(data, "room_id", str),
            need(data, "user_id", str),
            need(data, "event_id", str),
        )
    if kind == "to_device":
        return ToDevice(
            position,
            need(data, "sender", str),
            need(data, "sender_device", str),
            need(data, "type", str),
            need_object(data.get("content"), "'content'"),
        )
    if kind == "key_counts":
        counts = need_object(data.get("one_time_key_counts"), "'one_time_key_counts'")
        return KeyCounts(position, counts)
    if kind == "device_list_update":
        return DeviceListUpdate(position, need(data, "user_id", str))
    return None


class BatchReader:
    """Turns the pushes of one device's stream into updates, each stream item once.

    ``after`` is the position the stream starts after. ``generation`` numbers the
    connection a notice came on: each connection's first ``caught_up`` batch yields one
    :class:`CaughtUp`, later ones (every live batch has ``caught_up: true``) do not.
    """

    def __init__(self, after: int) -> None:
        self.seen = after
        """The highest position read so far: anything at or below it is not read again."""
        self._caught_up_on: set[int] = set()

    def read(self, generation: int, notice: Notice) -> list[Pending]:
        """The updates one notice makes, in order (an empty list for notices to ignore)."""
        params = notice.params
        try:
            if notice.op == "sync_batch":
                return self._batch(generation, params)
            if notice.op == "presence_update":
                return [Pending(PresenceChanged(PresenceInfo.from_json(params)))]
            if notice.op == "typing_update":
                users = tuple(need(params, "user_ids", list))
                return [Pending(TypingChanged(need(params, "room_id", str), users))]
            if notice.op == "signed_out":
                return [Pending(SignedOut(need(params, "reason", str)))]
        except MalformedAnswerError as exc:
            log.warning("malformed %s from the node: %s", notice.op, exc)
        return []

    def _batch(self, generation: int, params: JsonObject) -> list[Pending]:
        batch_position = need(params, "position", int)
        pending: list[Pending] = []
        limited = maybe(params, "limited", list)
        if limited:
            pending.append(Pending(Limited(tuple(limited))))
        for data in need(params, "items", list):
            try:
                item = _item(data)
            except MalformedAnswerError as exc:
                # One bad item must not stop the stream; its position is still covered by
                # the batch's position, so it is acknowledged with the rest.
                log.warning("skipping a malformed stream item: %s", exc)
                continue
            if item is None or item.position <= self.seen:
                continue  # an unknown kind, or resent after a reconnect
            self.seen = item.position
            pending.append(Pending(item, item.position))
        self.seen = max(self.seen, batch_position)
        if params.get("caught_up") is True and generation not in self._caught_up_on:
            self._caught_up_on.add(generation)
            pending.append(Pending(CaughtUp(batch_position)))
        # The batch's position covers items the device may not see (§5 step 2): processing
        # the batch's last update processes all of it.
        if pending:
            last = pending[-1]
            pending[-1] = Pending(last.update, max(last.completes or 0, batch_position))
        else:
            pending.append(Pending(None, batch_position))
        return pending
