"""The node's stream: positions, live delivery to devices, catch-up from a cursor, acks
(spec/client.md §5).

Every item a device may receive — a room's event, a retraction, a read receipt, a to-device
message — gets the next **position** when it is created. Items are stored with their
position in the same transaction as the change that made them, and published to connected
devices right after that transaction commits, in position order (``Database.write``'s
``on_commit`` runs in commit order). A device that syncs first catches up from its cursor by
reading committed items, then switches to live delivery; live items that arrive while it
catches up wait in a buffer, so the device sees every item once, in order.

The stream owns the ``stream`` table, the ``devices.cursor`` column and, with the to-device
service, the ``to_device`` table; with the device-keys service, ``user_items``: items that
belong to no room, for all of a user's devices or one of them.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import trio

from node.hub import Hub
from node.log import get_log
from node.services.memberships import Memberships
from node.session import Session
from node.storage.db import Database
from node.transport.frames import text_frame
from protocol import (
    Endpoint,
    JsonObject,
    Notice,
    encode_frame,
    encode_trusted_json,
    redact_event,
)
from protocol.wire import MAX_FRAME_BYTES

__all__ = ["Item", "Stream", "SyncLimits", "client_event"]

log = get_log(__name__)


@dataclass(frozen=True, slots=True)
class SyncLimits:
    """client.md §5 numbers, from the node's settings."""

    batch_items: int = 100
    catch_up_limit: int = 1000
    room_tail: int = 20


@dataclass(frozen=True, slots=True)
class Item:
    """One stream item as it is published live (client.md §5 table)."""

    position: int
    kind: str
    payload: JsonObject
    """The item as devices receive it (``position`` and ``kind`` included)."""
    room_id: str | None = None
    device: tuple[str, str] | None = None
    """For a to-device message: the one ``(user id, device id)`` it is for."""
    sent_by: tuple[str, str, str] | None = None
    """For an event sent with a txn id: ``(user id, device id, txn id)``."""
    audience: frozenset[str] | None = None
    """For an event that arrived late: the local users who see it (client.md §5); None:
    whoever the membership index says sees the room at the item's position."""


def client_event(
    event_id: str,
    event: JsonObject,
    room_id: str,
    *,
    redacted_by: str | None = None,
    txn_id: str | None = None,
) -> JsonObject:
    """An event in client form (client.md §5): what devices see of a federation event.

    ``room_id`` is given because a create event has none of its own (events.md §2).
    """
    source = redact_event(event) if redacted_by else event
    form: JsonObject = {
        "event_id": event_id,
        "room_id": room_id,
        "type": event["type"],
        "sender": event["sender"],
        "content": source["content"],
        "origin_server_ts": event["origin_server_ts"],
    }
    if "state_key" in event:
        form["state_key"] = event["state_key"]
    unsigned: JsonObject = {}
    if txn_id is not None:
        unsigned["transaction_id"] = txn_id
    if redacted_by is not None:
        unsigned["redacted_by"] = redacted_by
    if unsigned:
        form["unsigned"] = unsigned
    return form


def _with_txn(item: Item) -> JsonObject:
    """The payload the sending device sees: its transaction id added to the event."""
    assert item.sent_by is not None
    event = item.payload["event"]
    unsigned = {**event.get("unsigned", {}), "transaction_id": item.sent_by[2]}
    return {**item.payload, "event": {**event, "unsigned": unsigned}}


def _batch(
    items: list[JsonObject], position: int, *, caught_up: bool, limited: list[str] | None = None
) -> bytes:
    params: JsonObject = {"items": items, "position": position, "caught_up": caught_up}
    if limited:
        params["limited"] = limited
    # Items are built from stored, validated events: no need to walk them again.
    return encode_frame(Notice("sync_batch", params), check=False)


# A sync_batch frame stays within the /client frame limit (client.md §5, wire.md §1.4). The
# envelope around the items — op, position, caught_up and the brackets — takes < 128 bytes.
BATCH_BYTES = MAX_FRAME_BYTES[Endpoint.CLIENT] - 128


@dataclass(slots=True)
class _Packed:
    """One catch-up item, encoded once, and the room it opens in ``limited`` (if any)."""

    position: int
    encoded: bytes
    limited_room: str | None = None

    @property
    def cost(self) -> int:
        """Bytes it adds to a batch: the item, its comma, and its room in ``limited``."""
        room = self.limited_room
        return len(self.encoded) + 1 + (0 if room is None else len(room.encode()) + 3)


def _pack(items: list[_Packed], max_items: int) -> list[list[_Packed]]:
    """Split ``items`` into batches of at most ``max_items`` items and ``BATCH_BYTES``.

    An item alone always fits: an event is at most 512 KiB (events.md §4) and a to-device
    content 64 KiB (client.md §4), so no batch is ever empty or over the limit.
    """
    batches: list[list[_Packed]] = []
    current: list[_Packed] = []
    size = 0
    for item in items:
        cost = item.cost
        if current and (len(current) >= max_items or size + cost > BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(item)
        size += cost
    if current:
        batches.append(current)
    return batches


def _assemble(items: list[_Packed], position: int, *, caught_up: bool) -> bytes:
    """The canonical ``sync_batch`` frame of pre-encoded items: the bytes ``_batch`` makes
    (canonical-json.md §2 orders the keys caught_up, items, limited, position)."""
    limited = [item.limited_room for item in items if item.limited_room is not None]
    parts = [
        b'{"op":"sync_batch","params":{"caught_up":',
        b"true" if caught_up else b"false",
        b',"items":[',
        b",".join(item.encoded for item in items),
        b"]",
    ]
    if limited:
        parts += [b',"limited":', encode_trusted_json(limited)]
    parts.append(b',"position":%d}}' % position)
    return b"".join(parts)


@dataclass(eq=False)
class _Syncing:
    """A session whose device streams: caught up (live) or still catching up."""

    session: Session
    user_id: str
    device_id: str
    live: bool = False
    buffer: list[Item] = field(default_factory=list)
    sent: int = 0
    """The last position pushed to this session."""


class Stream:
    """Positions, live publishing and catch-up for every device of the node."""

    def __init__(
        self, db: Database, hub: Hub, memberships: Memberships, limits: SyncLimits
    ) -> None:
        self._db = db
        self._hub = hub
        self._memberships = memberships
        self._limits = limits
        self.head = 0
        """The last position given out."""
        self.published = 0
        """The last position whose write committed: everything up to it is readable."""
        self._syncing: dict[Session, _Syncing] = {}
        self._nursery: trio.Nursery | None = None
        self.on_live: list[Callable[[Session], None]] = []
        """Called with a session each time its catch-up is done and it streams live."""

    async def load(self) -> None:
        """Continue the positions where the database stops."""
        self.head = self.published = await self._db.read(_max_position)

    def start(self, nursery: trio.Nursery) -> None:
        """Where catch-up tasks run (the node's nursery)."""
        self._nursery = nursery

    def allocate(self) -> int:
        """The next position (call when an item is created, before it is stored)."""
        self.head += 1
        return self.head

    # --- live ----------------------------------------------------------------------------

    def publish(self, items: Iterable[Item], upto: int) -> None:
        """Deliver committed items to every session that may see them (sync, in order).

        ``upto`` is the last position the committed write allocated (items or not). An item
        is encoded and framed once for all its recipients; only the sending device, which
        also sees its transaction id, gets a frame of its own.
        """
        self.published = max(self.published, upto)
        for item in items:
            shared: bytes | None = None
            for syncing in self._recipients(item):
                if not syncing.live:
                    syncing.buffer.append(item)
                    continue
                if item.position <= syncing.sent:
                    continue
                syncing.sent = item.position
                if self._sent_by(syncing, item):
                    syncing.session.push_nowait(self._frame(syncing, item))
                    continue
                if shared is None:
                    shared = text_frame(_batch([item.payload], item.position, caught_up=True))
                syncing.session.push_framed_nowait(shared)

    def _recipients(self, item: Item) -> list[_Syncing]:
        if item.device is not None:
            user_id, device_id = item.device
            sessions = self._hub.of_device(user_id, device_id)
        elif item.audience is not None:
            sessions = [s for user_id in item.audience for s in self._hub.of_user(user_id)]
        else:
            assert item.room_id is not None
            room_id, position = item.room_id, item.position
            sessions = [
                session
                for user_id in self._memberships.users_of(room_id)
                if self._memberships.sees(user_id, room_id, position)
                for session in self._hub.of_user(user_id)
            ]
        syncing = self._syncing
        return [syncing[s] for s in sessions if s in syncing]

    @staticmethod
    def _sent_by(syncing: _Syncing, item: Item) -> bool:
        sent_by = item.sent_by
        return sent_by is not None and sent_by[:2] == (syncing.user_id, syncing.device_id)

    def _frame(self, syncing: _Syncing, item: Item) -> bytes:
        payload = _with_txn(item) if self._sent_by(syncing, item) else item.payload
        return _batch([payload], item.position, caught_up=True)

    def _push_live(self, syncing: _Syncing, item: Item) -> None:
        """One buffered item, once its session went live."""
        if item.position <= syncing.sent:
            return
        syncing.sent = item.position
        syncing.session.push_nowait(self._frame(syncing, item))

    # --- sync ----------------------------------------------------------------------------

    async def sync(self, session: Session, since: int | None) -> int:
        """Start (or restart) the device's stream after ``since``; return the head."""
        user_id, device_id = session.user_id, session.device_id
        if user_id is None or device_id is None:
            raise RuntimeError("only a bound session syncs")
        if self._nursery is None:
            raise RuntimeError("the stream is not started")
        cursor = await self._db.read(
            functools.partial(_cursor, user_id=user_id, device_id=device_id)
        )
        start = cursor if since is None else max(since, cursor)
        old = self._syncing.pop(session, None)
        if old is None:
            session.on_end.append(self._forget)
        syncing = _Syncing(session, user_id, device_id, sent=start)
        self._syncing[session] = syncing
        # Everything up to ``published`` is committed; later items arrive through publish()
        # and wait in the buffer until the catch-up is done.
        target = self.published
        self._nursery.start_soon(self._catch_up, syncing, start, target)
        return target

    def _forget(self, session: Session) -> None:
        self._syncing.pop(session, None)

    async def _catch_up(self, syncing: _Syncing, start: int, target: int) -> None:
        """Send the device everything after ``start`` up to ``target``, then go live."""
        limits = self._limits
        user_id, device_id = syncing.user_id, syncing.device_id
        rooms = sorted(self._memberships.rooms_of(user_id))
        try:
            pending = await self._db.read(
                functools.partial(_count_room_items, rooms=rooms, after=start, upto=target)
            )
            if pending > limits.catch_up_limit:
                await self._send_limited(syncing, rooms, start, target)
            else:
                await self._send_all(syncing, rooms, start, target)
        except trio.Cancelled:
            raise
        except Exception:
            log.exception("catch_up_failed", user=user_id, device=device_id)
            return
        if self._syncing.get(syncing.session) is not syncing:
            return
        syncing.sent = max(syncing.sent, target)
        syncing.live = True
        buffered, syncing.buffer = syncing.buffer, []
        for item in buffered:
            self._push_live(syncing, item)
        for callback in self.on_live:
            callback(syncing.session)

    def _row_payload(self, syncing: _Syncing, row: tuple[Any, ...]) -> JsonObject | None:
        """A stored row as the device receives it, or None if the user may not see it."""
        (
            position,
            kind,
            room_id,
            event_id,
            _,
            data,
            event_json,
            redacted_by,
            sender_device,
            txn_id,
        ) = row
        if room_id is None:  # a to-device message or a user item: the row is the item
            return {"position": position, "kind": kind, **json.loads(data)}
        if kind == "event" and data is not None:  # a late event's audience (client.md §5)
            if syncing.user_id not in json.loads(data):
                return None
        elif not self._memberships.sees(syncing.user_id, room_id, position):
            return None
        if kind == "event":
            event = json.loads(event_json)
            own = (event["sender"], sender_device) == (syncing.user_id, syncing.device_id)
            form = client_event(
                event_id, event, room_id, redacted_by=redacted_by, txn_id=txn_id if own else None
            )
            return {"position": position, "kind": kind, "room_id": room_id, "event": form}
        return {"position": position, "kind": kind, "room_id": room_id, **json.loads(data)}

    def _still_wanted(self, syncing: _Syncing) -> bool:
        """False once the session ended or synced again: its catch-up stops."""
        return not syncing.session.closed.is_set() and self._syncing.get(syncing.session) is syncing

    async def _send_all(self, syncing: _Syncing, rooms: list[str], start: int, target: int) -> None:
        """client.md §5 step 2: every item after ``start``, in pages of ``batch_items``."""
        limits = self._limits
        after = start
        while after < target:
            query = functools.partial(
                _read_items,
                user_id=syncing.user_id,
                device_id=syncing.device_id,
                rooms=rooms,
                after=after,
                upto=target,
                limit=limits.batch_items,
            )
            rows = await self._db.read(query)
            packed = [
                _Packed(payload["position"], encode_trusted_json(payload))
                for payload in (self._row_payload(syncing, row) for row in rows)
                if payload is not None
            ]
            page_end = rows[-1][0] if len(rows) >= limits.batch_items else target
            if not self._still_wanted(syncing):
                return
            batches = _pack(packed, limits.batch_items) or [[]]
            for index, batch in enumerate(batches):
                last = index == len(batches) - 1
                position = page_end if last else batch[-1].position
                syncing.sent = position
                frame = _assemble(batch, position, caught_up=last and position >= target)
                await syncing.session.queue(frame)
            after = page_end
        if start >= target:
            await syncing.session.queue(_batch([], target, caught_up=True))

    async def _send_limited(
        self, syncing: _Syncing, rooms: list[str], start: int, target: int
    ) -> None:
        """client.md §5 step 3: the newest events of each room, and every to-device message.

        A room is named in ``limited`` of the batch that holds its first (oldest) event.
        """
        limits = self._limits
        query = functools.partial(
            _read_tails,
            user_id=syncing.user_id,
            device_id=syncing.device_id,
            rooms=rooms,
            after=start,
            upto=target,
            tail=limits.room_tail,
        )
        rows = await self._db.read(query)
        packed: list[_Packed] = []
        opened: set[str] = set()
        for row in rows:
            payload = self._row_payload(syncing, row)
            if payload is None:
                continue
            item = _Packed(payload["position"], encode_trusted_json(payload))
            room_id = payload.get("room_id")
            if payload["kind"] == "event" and isinstance(room_id, str) and room_id not in opened:
                opened.add(room_id)
                item.limited_room = room_id
            packed.append(item)
        batches = _pack(packed, limits.batch_items) or [[]]
        for index, batch in enumerate(batches):
            last = index == len(batches) - 1
            position = target if last else batch[-1].position
            await syncing.session.queue(_assemble(batch, position, caught_up=last))

    async def ack(self, user_id: str, device_id: str, position: int) -> None:
        """The device stored everything up to ``position`` (client.md §5 step 4)."""
        job = functools.partial(
            _store_ack, user_id=user_id, device_id=device_id, position=min(position, self.head)
        )
        await self._db.write(job)


# --- queries (run on the database's threads) ---------------------------------------------

_ITEM_COLUMNS = (
    "s.position, s.kind, s.room_id, s.event_id, s.user_id, s.data, "
    "e.json, e.redacted_by, e.sender_device, e.txn_id"
)
_TO_DEVICE_COLUMNS = (
    "t.position, 'to_device', NULL, NULL, t.user_id, "
    "json_object('sender', t.sender, 'sender_device', t.sender_device, 'type', t.type, "
    "'content', json(t.content)), NULL, NULL, NULL, NULL"
)
_USER_ITEM_COLUMNS = "u.position, u.kind, NULL, NULL, u.user_id, u.data, NULL, NULL, NULL, NULL"
_USER_ITEM_FILTER = (
    "u.user_id = ? AND (u.device_id IS NULL OR u.device_id = ?) "
    "AND u.position > ? AND u.position <= ?"
)


def _max_position(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT max(p) FROM (SELECT max(position) AS p FROM stream UNION ALL "
        "SELECT max(position) FROM to_device UNION ALL SELECT max(position) FROM events "
        "UNION ALL SELECT max(position) FROM user_items)"
    ).fetchone()
    return int(row[0] or 0)


def _cursor(conn: sqlite3.Connection, *, user_id: str, device_id: str) -> int:
    row = conn.execute(
        "SELECT cursor FROM devices WHERE user_id = ? AND device_id = ?", (user_id, device_id)
    ).fetchone()
    return int(row[0]) if row else 0


def _in(rooms: list[str]) -> str:
    return ",".join("?" * len(rooms)) or "NULL"


def _count_room_items(conn: sqlite3.Connection, *, rooms: list[str], after: int, upto: int) -> int:
    row = conn.execute(
        "SELECT count(*) FROM stream WHERE position > ? AND position <= ? "
        f"AND room_id IN ({_in(rooms)})",
        (after, upto, *rooms),
    ).fetchone()
    return int(row[0])


def _read_items(
    conn: sqlite3.Connection,
    *,
    user_id: str,
    device_id: str,
    rooms: list[str],
    after: int,
    upto: int,
    limit: int,
) -> list[tuple[Any, ...]]:
    """Room items, to-device messages and the user's items in ``(after, upto]``, by
    position, at most ``limit``."""
    return conn.execute(
        f"SELECT * FROM (SELECT {_ITEM_COLUMNS} FROM stream s LEFT JOIN events e "
        f"ON e.event_id = s.event_id AND s.kind = 'event' "
        f"WHERE s.position > ? AND s.position <= ? AND s.room_id IN ({_in(rooms)}) "
        f"UNION ALL SELECT {_TO_DEVICE_COLUMNS} FROM to_device t "
        f"WHERE t.user_id = ? AND t.device_id = ? AND t.position > ? AND t.position <= ? "
        f"UNION ALL SELECT {_USER_ITEM_COLUMNS} FROM user_items u WHERE {_USER_ITEM_FILTER}) "
        f"ORDER BY 1 LIMIT ?",
        (after, upto, *rooms, *(user_id, device_id, after, upto) * 2, limit),
    ).fetchall()


def _read_tails(
    conn: sqlite3.Connection,
    *,
    user_id: str,
    device_id: str,
    rooms: list[str],
    after: int,
    upto: int,
    tail: int,
) -> list[tuple[Any, ...]]:
    """The newest ``tail`` events of each room in the range, and every to-device message and
    user item (they are never skipped)."""
    rows: list[tuple[Any, ...]] = []
    for room_id in rooms:
        newest = conn.execute(
            f"SELECT {_ITEM_COLUMNS} FROM stream s JOIN events e ON e.event_id = s.event_id "
            "WHERE s.kind = 'event' AND s.room_id = ? AND s.position > ? AND s.position <= ? "
            "ORDER BY s.position DESC LIMIT ?",
            (room_id, after, upto, tail),
        ).fetchall()
        rows.extend(newest)
    rows.extend(
        conn.execute(
            f"SELECT {_TO_DEVICE_COLUMNS} FROM to_device t WHERE t.user_id = ? "
            "AND t.device_id = ? AND t.position > ? AND t.position <= ?",
            (user_id, device_id, after, upto),
        ).fetchall()
    )
    rows.extend(
        conn.execute(
            f"SELECT {_USER_ITEM_COLUMNS} FROM user_items u WHERE {_USER_ITEM_FILTER}",
            (user_id, device_id, after, upto),
        ).fetchall()
    )
    rows.sort(key=lambda row: int(row[0]))
    return rows


def _store_ack(conn: sqlite3.Connection, *, user_id: str, device_id: str, position: int) -> None:
    conn.execute(
        "UPDATE devices SET cursor = max(cursor, ?) WHERE user_id = ? AND device_id = ?",
        (position, user_id, device_id),
    )
    for table in ("to_device", "user_items"):
        conn.execute(
            f"DELETE FROM {table} WHERE user_id = ? AND device_id = ? AND position <= ?",
            (user_id, device_id, position),
        )
    # A user item for all the user's devices goes once each of them has it. A device that
    # comes later starts from its own query of the keys, not from old device-list items.
    conn.execute(
        "DELETE FROM user_items WHERE user_id = ? AND device_id IS NULL AND position <= "
        "(SELECT min(cursor) FROM devices WHERE user_id = ?)",
        (user_id, user_id),
    )
