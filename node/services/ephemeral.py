"""Read receipts and typing notices (spec/client.md §4).

A **receipt** is durable: the user's read position in a room, stored and delivered through
the stream to the room's members — the user's own other devices included — and the basis of
unread counts. A **typing** notice is ephemeral: kept in memory, pushed to the room's
members' connected devices when the set of typing users changes, and dropped when its
timeout passes.

Both come from users of other servers too (spec/federation.md §8): ``apply_remote`` takes
them from the users' own nodes, and a local user's changes go to the ``on_local_change``
listeners, which send them on.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

import trio

from node.hub import Hub
from node.services.memberships import Memberships
from node.services.rooms import RoomService
from node.services.stream import Item, Stream
from node.storage.db import Database
from protocol import ErrorCode, Notice, RemoteProtocolError, encode_frame

__all__ = ["Receipts", "Typing"]


class Receipts:
    """Each local user's read position in each room. Owns the ``receipts`` table."""

    def __init__(self, db: Database, stream: Stream, rooms: RoomService) -> None:
        self._db = db
        self._stream = stream
        self._rooms = rooms
        self.on_local_change: list[Callable[[str, str, str], None]] = []
        """Told ``(user, room, event)`` when a local user's receipt moved (after the commit)."""

    async def mark_read(self, user_id: str, room_id: str, event_id: str) -> None:
        """The user has read ``room_id`` up to ``event_id``, an accepted event of it."""
        room = self._rooms.require_joined(user_id, room_id)
        if not room.is_accepted(event_id):
            raise RemoteProtocolError(ErrorCode.NOT_FOUND, "no such accepted event in the room")
        await self._store(user_id, room_id, event_id)
        for listener in self.on_local_change:
            listener(user_id, room_id, event_id)

    async def apply_remote(self, user_id: str, room_id: str, event_id: str) -> bool:
        """A remote user's receipt (federation.md §8), if they are joined to the room and the
        event is accepted here; False (nothing stored) otherwise."""
        room = self._rooms.rooms.get(room_id)
        if room is None or user_id not in self._rooms.members(room).joined:
            return False
        if not room.is_accepted(event_id):
            return False
        await self._store(user_id, room_id, event_id)
        return True

    async def _store(self, user_id: str, room_id: str, event_id: str) -> None:
        position = self._stream.allocate()
        data = {"user_id": user_id, "event_id": event_id}
        item = Item(
            position,
            "receipt",
            {"position": position, "kind": "receipt", "room_id": room_id, **data},
            room_id=room_id,
        )

        def job(conn: sqlite3.Connection) -> None:
            read_at = conn.execute(
                "SELECT position FROM events WHERE event_id = ?", (event_id,)
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO receipts (room_id, user_id, event_id, position) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (room_id, user_id) DO UPDATE SET event_id = excluded.event_id, "
                "position = excluded.position",
                (room_id, user_id, event_id, read_at),
            )
            conn.execute(
                "INSERT INTO stream (position, kind, room_id, event_id, user_id, data) "
                "VALUES (?, 'receipt', ?, ?, ?, ?)",
                (position, room_id, event_id, user_id, json.dumps(data)),
            )

        await self._db.write(job, on_commit=lambda _: self._stream.publish([item], position))


class Typing:
    """Who is typing where, until when (trio's clock, so tests can run it fast)."""

    def __init__(self, hub: Hub, memberships: Memberships, default_timeout_ms: int) -> None:
        self._hub = hub
        self._memberships = memberships
        self._default_ms = default_timeout_ms
        self._until: dict[str, dict[str, float]] = {}
        self._changed = trio.Event()
        self.on_local_change: list[Callable[[str, str, bool, int], None]] = []
        """Told ``(user, room, typing, timeout_ms)`` for every notice of a local user."""

    def set(self, user_id: str, room_id: str, typing: bool, timeout_ms: int | None) -> None:
        """Start or stop ``user_id`` typing in ``room_id`` (the caller checked membership)."""
        timeout = timeout_ms or self._default_ms
        self.apply(user_id, room_id, typing, timeout)
        for listener in self.on_local_change:
            listener(user_id, room_id, typing, timeout)

    def apply(self, user_id: str, room_id: str, typing: bool, timeout_ms: int) -> None:
        """Note a typing notice of any user (a remote one's comes from its node, §8)."""
        room = self._until.setdefault(room_id, {})
        was = user_id in room
        if typing:
            room[user_id] = trio.current_time() + timeout_ms / 1000
        else:
            room.pop(user_id, None)
        if typing != was:
            self._announce(room_id)
        self._changed.set()

    def typing_in(self, room_id: str) -> list[str]:
        """Users typing in the room now."""
        return sorted(self._until.get(room_id, {}))

    def _announce(self, room_id: str) -> None:
        frame = encode_frame(
            Notice("typing_update", {"room_id": room_id, "user_ids": self.typing_in(room_id)})
        )
        for user_id in self._memberships.joined(room_id):
            for session in self._hub.of_user(user_id):
                session.push_nowait(frame)

    async def run(self) -> None:
        """Expire typing notices as their timeouts pass (run in the node's nursery)."""
        while True:
            self._changed = trio.Event()
            deadlines = [t for room in self._until.values() for t in room.values()]
            with trio.move_on_at(min(deadlines, default=trio.current_time() + 3600)):
                await self._changed.wait()
            now = trio.current_time()
            for room_id, room in list(self._until.items()):
                expired = [user for user, until in room.items() if until <= now]
                for user_id in expired:
                    del room[user_id]
                if expired:
                    self._announce(room_id)
                if not room:
                    del self._until[room_id]
