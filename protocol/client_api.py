"""The client socket's ops: what a device may ask its node, and what the node pushes
(spec/client.md). Each op's params are declared here, so the node's handlers and the client
library see only params of the right shape.
"""

from __future__ import annotations

from typing import Any

from protocol.canonical_json import encode_trusted_json
from protocol.device_keys import (
    MAX_QUERY_USERS,
    MAX_UPLOADED_ONE_TIME_KEYS,
    check_claim_request,
)
from protocol.errors import ErrorCode, RemoteProtocolError
from protocol.events import MAX_TYPE_LENGTH
from protocol.ids import (
    parse_server_name,
    parse_user_id,
    validate_device_id,
    validate_event_id,
    validate_room_id,
)
from protocol.ops import Endpoint, OpKind, OpSpec, Role
from protocol.schema import Field, Schema

__all__ = [
    "CLIENT_OPS",
    "MAX_HISTORY_LIMIT",
    "MAX_TO_DEVICE_CONTENT_BYTES",
    "MAX_TO_DEVICE_TARGETS",
    "MAX_TYPING_TIMEOUT_MS",
    "PUSHES",
    "REQUESTS_BEFORE_AUTH",
]

# spec/client.md §2 — limits of params
MAX_HISTORY_LIMIT = 100
MAX_TYPING_TIMEOUT_MS = 120_000
MAX_TO_DEVICE_TARGETS = 1_000
MAX_TO_DEVICE_CONTENT_BYTES = 65_536
"""Canonical JSON bytes of one to-device content: an item always fits a frame (client.md §4)."""
MAX_INVITES_AT_CREATION = 100

USER = Field(str, check=parse_user_id)
ROOM = Field(str, check=validate_room_id)
EVENT = Field(str, check=validate_event_id)
DEVICE = Field(str, check=validate_device_id)
TXN = Field(str, min_length=1, max_length=64)
USERNAME = Field(str, min_length=1, max_length=64)
PASSWORD = Field(str, min_length=8, max_length=1024)
DISPLAY_NAME = Field(str, required=False, max_length=255)
REASON = Field(str, required=False, max_length=1024)
POSITION = Field(int, minimum=0)


def _optional(field: Field) -> Field:
    return Field(
        field.kind,
        required=False,
        max_length=field.max_length,
        min_length=field.min_length,
        minimum=field.minimum,
        maximum=field.maximum,
        check=field.check,
        items=field.items,
    )


def _check_to_device(messages: Any) -> None:
    """``{user id: {device id or "*": content object}}`` with at most 1,000 targets."""
    targets = 0
    for user, devices in messages.items():
        parse_user_id(user)
        if type(devices) is not dict:
            raise RemoteProtocolError(ErrorCode.BAD_PARAMS, "each user maps devices to content")
        for device, content in devices.items():
            if device != "*":
                validate_device_id(device)
            if type(content) is not dict:
                raise RemoteProtocolError(ErrorCode.BAD_PARAMS, "to-device content is an object")
            if len(encode_trusted_json(content)) > MAX_TO_DEVICE_CONTENT_BYTES:
                raise RemoteProtocolError(
                    ErrorCode.TOO_LARGE,
                    f"a to-device content is at most {MAX_TO_DEVICE_CONTENT_BYTES} bytes",
                )
            targets += 1
    if targets > MAX_TO_DEVICE_TARGETS:
        raise RemoteProtocolError(ErrorCode.TOO_LARGE, "too many to-device targets")


def _request(op: str, summary: str, /, **fields: Field) -> OpSpec:
    return OpSpec(
        name=op,
        kind=OpKind.REQUEST,
        endpoints=frozenset({Endpoint.CLIENT}),
        senders=frozenset({Role.CLIENT}),
        params=Schema(fields),
        summary=summary,
    )


def _push(op: str, summary: str, /, **fields: Field) -> OpSpec:
    return OpSpec(
        name=op,
        kind=OpKind.NOTICE,
        endpoints=frozenset({Endpoint.CLIENT}),
        senders=frozenset({Role.NODE}),
        params=Schema(fields),
        summary=summary,
    )


_SESSION = (
    _request(
        "register",
        "Create an account (if the node's registration mode allows) and log in.",
        username=USERNAME,
        password=PASSWORD,
        registration_token=Field(str, required=False, max_length=256),
        device_name=DISPLAY_NAME,
    ),
    _request(
        "login",
        "Log in with a password: a new device (or an existing one of this user) and a token.",
        username=USERNAME,
        password=Field(str, max_length=1024),
        device_id=_optional(DEVICE),
        device_name=DISPLAY_NAME,
    ),
    _request(
        "authenticate",
        "Bind this connection to the device an access token belongs to.",
        access_token=Field(str, min_length=1, max_length=256),
    ),
    _request("logout", "Revoke this device's access token and unbind the connection."),
    _request("devices", "List the user's devices."),
    _request(
        "rename_device",
        "Set a device's display name.",
        device_id=DEVICE,
        display_name=Field(str, max_length=255),
    ),
    _request("revoke_device", "Delete one of the user's devices.", device_id=DEVICE),
)

_ROOMS = (
    _request(
        "create_room",
        "Create a group room, or a direct room with exactly one invitee.",
        name=Field(str, required=False, max_length=255),
        topic=Field(str, required=False, max_length=4096),
        invite=Field(list, required=False, max_length=MAX_INVITES_AT_CREATION, items=USER),
        direct=Field(bool, required=False),
        public=Field(bool, required=False),
        encryption=Field(str, required=False, min_length=1, max_length=255),
    ),
    _request("invite", "Invite a user.", room_id=ROOM, user_id=USER),
    _request(
        "join",
        "Join a room (public, or one the user is invited to); via: servers that hold it.",
        room_id=ROOM,
        via=Field(list, required=False, max_length=8, items=Field(str, check=parse_server_name)),
    ),
    _request("leave", "Leave a room, or decline an invitation.", room_id=ROOM),
    _request("kick", "Remove a member.", room_id=ROOM, user_id=USER, reason=REASON),
    _request("ban", "Ban a user.", room_id=ROOM, user_id=USER, reason=REASON),
    _request("unban", "Lift a ban.", room_id=ROOM, user_id=USER),
    _request("set_name", "Set the room's name.", room_id=ROOM, name=Field(str, max_length=255)),
    _request("set_topic", "Set the room's topic.", room_id=ROOM, topic=Field(str, max_length=4096)),
    _request(
        "set_join_rule",
        "Make the room public or invite-only.",
        room_id=ROOM,
        join_rule=Field(str, max_length=16),
    ),
    _request(
        "set_level",
        "Set a user's power level.",
        room_id=ROOM,
        user_id=USER,
        level=Field(int, minimum=0),
    ),
    _request(
        "set_thresholds",
        "Set the room's power thresholds (the content of the room-wide power_levels event).",
        room_id=ROOM,
        thresholds=Field(dict),
    ),
    _request("rooms", "The user's rooms with member and unread counts."),
    _request("members", "A room's members.", room_id=ROOM),
)

_MESSAGES = (
    _request(
        "send",
        "Send an event to a room; retrying with the same txn_id never duplicates it.",
        room_id=ROOM,
        txn_id=TXN,
        type=Field(str, required=False, min_length=1, max_length=MAX_TYPE_LENGTH),
        content=Field(dict),
    ),
    _request(
        "redact",
        "Redact an event.",
        room_id=ROOM,
        event_id=EVENT,
        txn_id=TXN,
        reason=REASON,
    ),
    _request(
        "history",
        "A page of a room's timeline, backwards from an event (or from the newest).",
        room_id=ROOM,
        before=_optional(EVENT),
        limit=Field(int, required=False, minimum=1, maximum=MAX_HISTORY_LIMIT),
    ),
    _request(
        "typing",
        "Start or stop typing in a room; typing stops by itself after the timeout.",
        room_id=ROOM,
        typing=Field(bool),
        timeout_ms=Field(int, required=False, minimum=1, maximum=MAX_TYPING_TIMEOUT_MS),
    ),
    _request("receipt", "Mark a room read up to an event.", room_id=ROOM, event_id=EVENT),
    _request(
        "send_to_device",
        "Send messages to devices; each is kept until the device acknowledges it.",
        type=Field(str, min_length=1, max_length=MAX_TYPE_LENGTH),
        txn_id=TXN,
        messages=Field(dict, check=_check_to_device),
    ),
)

_SYNC = (
    _request(
        "sync",
        "Start this device's stream after a position (or from the start); the node pushes.",
        since=_optional(POSITION),
    ),
    _request("ack", "This device has everything up to a position.", position=POSITION),
    _request("heartbeat", "This device is still here (presence)."),
    _request(
        "set_presence",
        "Set the user's status message.",
        status_msg=Field(str, max_length=256),
    ),
    _request(
        "get_presence",
        "The presence of some of the user's contacts.",
        user_ids=Field(list, max_length=1000, items=USER),
    ),
)


def _keys_request(op: str, summary: str, /, **fields: Field) -> OpSpec:
    """An op of device keys: asked by a device of its node, and by a node of another
    (spec/client.md §9, spec/federation.md §10), with the same params."""
    return OpSpec(
        name=op,
        kind=OpKind.REQUEST,
        endpoints=frozenset({Endpoint.CLIENT, Endpoint.FEDERATION}),
        senders=frozenset({Role.CLIENT, Role.NODE}),
        params=Schema(fields),
        summary=summary,
    )


_KEYS = (
    _request(
        "upload_keys",
        "Publish this device's identity keys, one-time keys and fallback key.",
        device_keys=Field(dict, required=False),
        one_time_keys=Field(dict, required=False, max_length=MAX_UPLOADED_ONE_TIME_KEYS),
        fallback_key=Field(dict, required=False, max_length=1),
    ),
    _keys_request(
        "query_keys",
        "The identity keys of every device of some users.",
        user_ids=Field(list, max_length=MAX_QUERY_USERS, items=USER),
    ),
    _keys_request(
        "claim_keys",
        "Take one one-time key (or the fallback key) of each of some devices.",
        one_time_keys=Field(dict, check=check_claim_request),
    ),
)

PUSHES = (
    _push(
        "sync_batch",
        "A batch of the device's stream.",
        items=Field(list),
        position=POSITION,
        caught_up=Field(bool),
        limited=Field(list, required=False, items=ROOM),
    ),
    _push(
        "presence_update",
        "A contact's presence changed.",
        user_id=USER,
        presence=Field(str, max_length=16),
        last_active_ts=Field(int, required=False, minimum=0),
        status_msg=Field(str, required=False, max_length=256),
    ),
    _push(
        "typing_update", "Who is typing in a room.", room_id=ROOM, user_ids=Field(list, items=USER)
    ),
    _push("signed_out", "This device was logged out or revoked.", reason=Field(str, max_length=64)),
)

CLIENT_OPS: tuple[OpSpec, ...] = (*_SESSION, *_ROOMS, *_MESSAGES, *_SYNC, *_KEYS, *PUSHES)

REQUESTS_BEFORE_AUTH = frozenset({"ping", "register", "login", "authenticate"})
"""The only requests a connection may make before it is bound to a device."""
