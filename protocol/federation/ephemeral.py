"""Ephemeral data and to-device messages between nodes (spec/federation.md §8): their
shapes, as a receiver checks each item.

A ``txn`` carries EDUs — presence, typing, receipts, device-list changes — and the
``to_device`` op carries durable device messages. The frame decoder only checks that they
are lists of objects; each item is parsed here on its own, so that one bad item is skipped
(and logged) without costing the others, and a receiver never needs to refuse a whole
transaction for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from protocol.canonical_json import JsonObject, encode_trusted_json
from protocol.client_api import MAX_TO_DEVICE_CONTENT_BYTES, MAX_TYPING_TIMEOUT_MS
from protocol.errors import ErrorCode, RemoteProtocolError
from protocol.events import MAX_TYPE_LENGTH
from protocol.ids import parse_user_id, validate_device_id, validate_event_id, validate_room_id
from protocol.schema import Field, Schema

__all__ = [
    "EDU_TYPES",
    "MAX_STATUS_LENGTH",
    "Edu",
    "ToDeviceMessage",
    "parse_edu",
    "parse_to_device_message",
]

MAX_STATUS_LENGTH: Final = 256
"""A status message's characters, as client.md §6 bounds ``set_presence``."""

_USER = Field(str, check=parse_user_id)
_ROOM = Field(str, check=validate_room_id)
_EVENT = Field(str, check=validate_event_id)


def _presence_state(value: Any) -> None:
    if value not in ("online", "offline"):
        raise RemoteProtocolError(ErrorCode.BAD_PARAMS, "'presence' is online or offline")


def _device_or_everyone(value: Any) -> None:
    if value != "*":
        validate_device_id(value)


def _content_size(value: Any) -> None:
    if len(encode_trusted_json(value)) > MAX_TO_DEVICE_CONTENT_BYTES:
        raise RemoteProtocolError(
            ErrorCode.TOO_LARGE, f"a to-device content is at most {MAX_TO_DEVICE_CONTENT_BYTES}"
        )


EDU_TYPES: Final[dict[str, Schema]] = {
    "presence": Schema(
        {
            "user_id": _USER,
            "presence": Field(str, check=_presence_state),
            "last_active_ts": Field(int, minimum=0),
            "status_msg": Field(str, required=False, max_length=MAX_STATUS_LENGTH),
        }
    ),
    "typing": Schema(
        {
            "room_id": _ROOM,
            "user_id": _USER,
            "typing": Field(bool),
            "timeout_ms": Field(int, minimum=1, maximum=MAX_TYPING_TIMEOUT_MS),
        }
    ),
    "receipt": Schema({"room_id": _ROOM, "user_id": _USER, "event_id": _EVENT}),
    "device_list_update": Schema({"user_id": _USER}),
}
"""§8: each EDU type and the fields of its ``content``."""

_EDU = Schema({"type": Field(str, min_length=1, max_length=64), "content": Field(dict)})

_TO_DEVICE_MESSAGE = Schema(
    {
        "message_id": Field(str, min_length=1, max_length=64),
        "sender": _USER,
        "sender_device": Field(str, check=validate_device_id),
        "type": Field(str, min_length=1, max_length=MAX_TYPE_LENGTH),
        "user_id": _USER,
        "device_id": Field(str, check=_device_or_everyone),
        "content": Field(dict, check=_content_size),
    }
)


@dataclass(frozen=True, slots=True)
class Edu:
    """One checked EDU: its type, its content, and the user whose action it reports."""

    type: str
    content: JsonObject

    @property
    def actor(self) -> str:
        """The user the EDU speaks for (every §8 type names one as ``user_id``)."""
        user_id: str = self.content["user_id"]
        return user_id


@dataclass(frozen=True, slots=True)
class ToDeviceMessage:
    """One checked to-device message for one device (or ``"*"``: all) of one user."""

    message_id: str
    sender: str
    sender_device: str
    type: str
    user_id: str
    device_id: str
    content: JsonObject

    def to_json(self) -> JsonObject:
        """The message as the ``to_device`` op carries it."""
        return {
            "message_id": self.message_id,
            "sender": self.sender,
            "sender_device": self.sender_device,
            "type": self.type,
            "user_id": self.user_id,
            "device_id": self.device_id,
            "content": self.content,
        }


def parse_edu(item: Any) -> Edu:
    """An item of a ``txn``'s ``edus``; ``RemoteProtocolError`` (``bad_params``,
    ``too_large``, an identifier's code) if it is not one of §8's."""
    _EDU.validate(item)
    schema = EDU_TYPES.get(item["type"])
    if schema is None:
        raise RemoteProtocolError(ErrorCode.BAD_PARAMS, f"unknown EDU type {item['type']!r}")
    return Edu(item["type"], schema.validate(item["content"]))


def parse_to_device_message(item: Any) -> ToDeviceMessage:
    """An item of ``to_device``'s ``messages``; ``RemoteProtocolError`` otherwise."""
    fields = _TO_DEVICE_MESSAGE.validate(item)
    return ToDeviceMessage(**fields)
