"""Room ops of the client socket (spec/client.md §3): creating and changing rooms, and
reading the user's rooms and a room's members. Thin: parse, call the room service, answer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from node.dispatch import Handler
from node.federation.service import Federation
from node.services.memberships import Memberships
from node.services.rooms import RoomService
from node.session import Session
from node.storage.db import Database
from protocol import MAX_SAFE_INTEGER, ErrorCode, EventType, JsonObject, RemoteProtocolError
from protocol.rooms import PowerLevels, Room

__all__ = ["room_handlers"]

_MEMBER = EventType.MEMBER.value
_COUNTED = ("message", "encrypted")


def _me(session: Session) -> tuple[str, str]:
    assert session.user_id is not None
    assert session.device_id is not None
    return session.user_id, session.device_id


def _text(room: Room, event_type: str, key: str) -> str | None:
    event = room.state_event((event_type, ""))
    return None if event is None else event["content"].get(key)


def _joined_count(room: Room) -> int:
    return sum(
        1
        for (kind, _), event_id in room.state().items()
        if kind == _MEMBER and room.event(event_id)["content"]["membership"] == "join"
    )


def room_handlers(
    rooms: RoomService, memberships: Memberships, db: Database, federation: Federation
) -> dict[str, Handler]:
    """The handlers of client.md §3, bound to the node's services."""

    def state_change(
        make: Callable[[str, JsonObject], tuple[str, JsonObject, str]],
    ) -> Handler:
        """A handler creating one state event: ``make(user, params)`` → type, content, key."""

        async def handler(session: Session, params: JsonObject) -> JsonObject:
            user_id, device_id = _me(session)
            event_type, content, state_key = make(user_id, params)
            event_id = await rooms.send(
                user_id, device_id, params["room_id"], event_type, content, state_key=state_key
            )
            return {"event_id": event_id}

        return handler

    def membership(value: str, *, target_param: bool) -> Handler:
        def make(user_id: str, params: JsonObject) -> tuple[str, JsonObject, str]:
            target = params["user_id"] if target_param else user_id
            content: JsonObject = {"membership": value}
            if params.get("reason"):
                content["reason"] = params["reason"]
            return _MEMBER, content, target

        return state_change(make)

    invite_local = membership("invite", target_param=True)
    join_local = membership("join", target_param=False)

    async def invite(session: Session, params: JsonObject) -> JsonObject:
        if rooms.is_local(params["user_id"]):
            return await invite_local(session, params)
        # federation.md §7: the invitee's node co-signs first
        user_id, _ = _me(session)
        event_id = await federation.invite(params["room_id"], user_id, params["user_id"])
        return {"event_id": event_id}

    async def join(session: Session, params: JsonObject) -> JsonObject:
        room_id = params["room_id"]
        if room_id not in rooms.rooms:  # federation.md §6: hold the room first
            if not params.get("via"):
                raise RemoteProtocolError(
                    ErrorCode.NOT_FOUND, f"no room {room_id} here; say which servers hold it (via)"
                )
            await federation.fetch_room(room_id, params["via"])
        return await join_local(session, params)

    def simple(event_type: str, key: str) -> Handler:
        return state_change(lambda _, params: (event_type, {key: params[key]}, ""))

    async def create_room(session: Session, params: JsonObject) -> JsonObject:
        user_id, _ = _me(session)
        room_id = await rooms.create_room(
            user_id,
            name=params.get("name"),
            topic=params.get("topic"),
            invite=params.get("invite", []),
            direct=params.get("direct", False),
            public=params.get("public", False),
            encryption=params.get("encryption"),
        )
        for invitee in dict.fromkeys(params.get("invite", [])):
            if not rooms.is_local(invitee):
                await federation.invite(room_id, user_id, invitee)
        return {"room_id": room_id}

    def set_join_rule(user_id: str, params: JsonObject) -> tuple[str, JsonObject, str]:
        if params["join_rule"] not in ("public", "invite"):
            raise RemoteProtocolError(ErrorCode.BAD_PARAMS, "join_rule is public or invite")
        return EventType.JOIN_RULES.value, {"join_rule": params["join_rule"]}, ""

    async def list_rooms(session: Session, params: JsonObject) -> JsonObject:
        user_id, _ = _me(session)
        room_ids = sorted(memberships.rooms_with(user_id, ("join", "invite")))
        unread = await db.read(lambda conn: _unread_counts(conn, user_id, room_ids))
        summaries = []
        for room_id in room_ids:
            room = rooms.room(room_id)
            create = room.event(room.create_id)
            encryption = room.state_event((EventType.ENCRYPTION.value, ""))
            summaries.append(
                {
                    "room_id": room_id,
                    "name": _text(room, EventType.NAME, "name"),
                    "topic": _text(room, EventType.TOPIC, "topic"),
                    "direct": create["content"].get("direct", False) is True,
                    "encrypted": encryption is not None,
                    "encryption": encryption["content"] if encryption is not None else None,
                    "membership": memberships.current(user_id, room_id),
                    "member_count": _joined_count(room),
                    "unread_count": unread.get(room_id, 0),
                }
            )
        return {"rooms": summaries}

    async def members(session: Session, params: JsonObject) -> JsonObject:
        user_id, _ = _me(session)
        room = rooms.require_joined(user_id, params["room_id"])
        power = PowerLevels(room.state_view())
        listed = []
        for (kind, member), event_id in sorted(room.state().items()):
            if kind != _MEMBER:
                continue
            content = room.event(event_id)["content"]
            value = content["membership"]
            listed.append(
                {
                    "user_id": member,
                    "membership": "leave" if value == "unban" else value,
                    "display_name": content.get("displayname"),
                    "level": min(power.level(member), MAX_SAFE_INTEGER),
                    "creator": member == power.creator,
                }
            )
        return {"members": listed}

    def level(_: str, params: JsonObject) -> tuple[str, JsonObject, str]:
        return EventType.POWER_LEVELS.value, {"level": params["level"]}, params["user_id"]

    def thresholds(_: str, params: JsonObject) -> tuple[str, JsonObject, str]:
        return EventType.POWER_LEVELS.value, params["thresholds"], ""

    return {
        "create_room": create_room,
        "invite": invite,
        "join": join,
        "leave": membership("leave", target_param=False),
        "kick": membership("leave", target_param=True),
        "ban": membership("ban", target_param=True),
        "unban": membership("unban", target_param=True),
        "set_name": simple(EventType.NAME.value, "name"),
        "set_topic": simple(EventType.TOPIC.value, "topic"),
        "set_join_rule": state_change(set_join_rule),
        "set_level": state_change(level),
        "set_thresholds": state_change(thresholds),
        "rooms": list_rooms,
        "members": members,
    }


def _unread_counts(conn: sqlite3.Connection, user_id: str, room_ids: list[str]) -> dict[str, int]:
    """client.md §3: messages by others accepted after the user's read receipt."""
    counts: dict[str, int] = {}
    for room_id in room_ids:
        row = conn.execute(
            "SELECT coalesce((SELECT position FROM receipts WHERE room_id = ? AND user_id = ?), 0)",
            (room_id, user_id),
        ).fetchone()
        counted = conn.execute(
            "SELECT count(*) FROM events WHERE room_id = ? AND accepted = 1 AND position > ? "
            "AND sender != ? AND type IN (?, ?)",
            (room_id, row[0], user_id, *_COUNTED),
        ).fetchone()
        counts[room_id] = int(counted[0])
    return counts
