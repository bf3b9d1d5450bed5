"""Message ops of the client socket (spec/client.md §4): sending and redacting, history,
typing, read receipts and to-device messages. Thin: parse, call a service, answer.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from node.dispatch import Handler
from node.services.ephemeral import Receipts, Typing
from node.services.rooms import RoomService
from node.services.stream import client_event
from node.services.to_device import ToDevice
from node.session import Session
from node.storage.db import Database
from protocol import Endpoint, ErrorCode, EventType, JsonObject, RemoteProtocolError
from protocol.rooms import PowerLevels, RejectReason
from protocol.rooms.schemas import STATE_TYPES
from protocol.wire import MAX_FRAME_BYTES

__all__ = ["message_handlers"]

_DEFAULT_HISTORY = 50
_SENDABLE = frozenset({EventType.MESSAGE, EventType.ENCRYPTED})


def _me(session: Session) -> tuple[str, str]:
    assert session.user_id is not None
    assert session.device_id is not None
    return session.user_id, session.device_id


def message_handlers(
    rooms: RoomService, receipts: Receipts, typing: Typing, to_device: ToDevice, db: Database
) -> dict[str, Handler]:
    """The handlers of client.md §4, bound to the node's services."""

    async def send(session: Session, params: JsonObject) -> JsonObject:
        user_id, device_id = _me(session)
        event_type = params.get("type", EventType.MESSAGE.value)
        if event_type not in _SENDABLE and ("." not in event_type or event_type in STATE_TYPES):
            raise RemoteProtocolError(
                ErrorCode.BAD_PARAMS,
                f"send makes timeline events (message, encrypted or an extension type), "
                f"not {event_type!r}",
            )
        event_id = await rooms.send(
            user_id,
            device_id,
            params["room_id"],
            event_type,
            params["content"],
            txn_id=params["txn_id"],
        )
        return {"event_id": event_id}

    async def redact(session: Session, params: JsonObject) -> JsonObject:
        user_id, device_id = _me(session)
        room = rooms.room(params["room_id"])
        if params["event_id"] not in room:
            raise RemoteProtocolError(ErrorCode.NOT_FOUND, "no such event in the room")
        power = PowerLevels(room.state_view())
        own = room.event(params["event_id"])["sender"] == user_id
        if not own and power.level(user_id) < power.threshold("redact"):
            # The redaction would be allowed but take no effect (rooms.md §5 "Redactions").
            raise RemoteProtocolError(
                RejectReason.INSUFFICIENT_POWER, "redacting others' events needs the redact level"
            )
        content: JsonObject = {"redacts": params["event_id"]}
        if params.get("reason"):
            content["reason"] = params["reason"]
        event_id = await rooms.send(
            user_id,
            device_id,
            params["room_id"],
            EventType.REDACTION.value,
            content,
            txn_id=params["txn_id"],
        )
        return {"event_id": event_id}

    async def history(session: Session, params: JsonObject) -> JsonObject:
        user_id, device_id = _me(session)
        room = rooms.require_joined(user_id, params["room_id"])
        limit = params.get("limit", _DEFAULT_HISTORY)
        before = params.get("before")
        if before is not None and before not in room:
            raise RemoteProtocolError(ErrorCode.NOT_FOUND, "no such event in the room")
        bound = (room.depth(before), before) if before is not None else None
        rows = await db.read(lambda conn: _page(conn, room.room_id, bound, limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        fitting = _fitting(rows)
        more = more or fitting < len(rows)
        rows = rows[:fitting]
        events = [_client_form(row, room.room_id, user_id, device_id) for row in reversed(rows)]
        return {"events": events, "before": events[0]["event_id"] if more and events else None}

    async def set_typing(session: Session, params: JsonObject) -> JsonObject:
        user_id, _ = _me(session)
        rooms.require_joined(user_id, params["room_id"])
        typing.set(user_id, params["room_id"], params["typing"], params.get("timeout_ms"))
        return {}

    async def receipt(session: Session, params: JsonObject) -> JsonObject:
        user_id, _ = _me(session)
        await receipts.mark_read(user_id, params["room_id"], params["event_id"])
        return {}

    async def send_to_device(session: Session, params: JsonObject) -> JsonObject:
        user_id, device_id = _me(session)
        await to_device.send(
            (user_id, device_id, params["txn_id"]), params["type"], params["messages"]
        )
        return {}

    return {
        "send": send,
        "redact": redact,
        "history": history,
        "typing": set_typing,
        "receipt": receipt,
        "send_to_device": send_to_device,
    }


def _page(
    conn: sqlite3.Connection, room_id: str, bound: tuple[int, str] | None, limit: int
) -> list[tuple[Any, ...]]:
    """Accepted events of the room before ``bound`` in canonical order, newest first."""
    if bound is None:
        return conn.execute(
            "SELECT event_id, json, redacted_by, sender_device, txn_id FROM events "
            "WHERE room_id = ? AND accepted = 1 ORDER BY depth DESC, event_id DESC LIMIT ?",
            (room_id, limit),
        ).fetchall()
    return conn.execute(
        "SELECT event_id, json, redacted_by, sender_device, txn_id FROM events "
        "WHERE room_id = ? AND accepted = 1 AND (depth, event_id) < (?, ?) "
        "ORDER BY depth DESC, event_id DESC LIMIT ?",
        (room_id, *bound, limit),
    ).fetchall()


# The answer stays within the /client frame limit (client.md §4 history, wire.md §1.4). An
# event's client form is at most its stored form plus what the node adds — event id, room id,
# unsigned — which is under 1 KiB; the frame's envelope is under 128 bytes.
_HISTORY_BYTES = MAX_FRAME_BYTES[Endpoint.CLIENT] - 128
_CLIENT_FORM_MARGIN = 1024


def _fitting(rows: list[tuple[Any, ...]]) -> int:
    """How many of ``rows`` (newest first) one answer can carry: at least one."""
    size = 0
    for count, row in enumerate(rows):
        size += len(row[1].encode()) + _CLIENT_FORM_MARGIN
        if size > _HISTORY_BYTES and count > 0:
            return count
    return len(rows)


def _client_form(row: tuple[Any, ...], room_id: str, user_id: str, device_id: str) -> JsonObject:
    event_id, text, redacted_by, sender_device, txn_id = row
    event = json.loads(text)
    own = event["sender"] == user_id and sender_device == device_id
    return client_event(
        event_id, event, room_id, redacted_by=redacted_by, txn_id=txn_id if own else None
    )
