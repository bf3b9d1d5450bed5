"""Rooms on this node: creating, signing, storing and publishing events (spec/client.md §3-§4).

Each room lives in memory as a ``protocol.rooms.Room`` — the engine that decides every
event's verdict (spec/state.md) — rebuilt from the ``events`` table at start. A change made
by a local user goes through three steps:

1. **stage** (no waiting, so the in-memory rooms change one event at a time): build the
   event on the room's forward extremities, check it against the room state — a refusal is
   answered with the reason code of spec/rooms.md §7 — sign it, add it to the engine, and
   turn what changed into stream items with their positions (the new event; retractions and
   reinstatements the engine reported; local users' membership changes);
2. **store** everything in one transaction;
3. **publish** the items to connected devices once it committed, in position order.

The service owns the tables ``rooms``, ``events``, ``stream`` (room items), ``memberships``
and the ``txns`` rows of sends and redactions.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from node.clock import now_ms
from node.keys import NodeKey
from node.log import get_log
from node.services.memberships import Memberships
from node.services.stream import Item, Stream, client_event
from node.services.txns import Transactions, store_txn
from node.storage.db import Database
from protocol import (
    ErrorCode,
    EventType,
    JsonObject,
    RemoteProtocolError,
    build_event,
    parse_user_id,
    redact_event,
    sign_event_with_id,
)
from protocol.rooms import Changes, RejectReason, Room

__all__ = ["RoomService"]

log = get_log(__name__)

_MEMBER = EventType.MEMBER.value


@dataclass(frozen=True, slots=True)
class _Members:
    """A room's users joined now, and the other servers with a user joined (or invited), or
    with a user of any membership (federation.md §5: who may read the room's history)."""

    joined: frozenset[str]
    servers_joined: frozenset[str]
    servers_present: frozenset[str]
    servers_named: frozenset[str]

    @classmethod
    def of(cls, room: Room, own_server: str) -> _Members:
        memberships = room.memberships()
        server_of = {u: parse_user_id(u).server_name for u in memberships}
        joined = frozenset(u for u, m in memberships.items() if m == "join")
        servers = frozenset(server_of[u] for u in joined) - {own_server}
        invited = frozenset(server_of[u] for u, m in memberships.items() if m == "invite")
        named = frozenset(server_of.values()) - {own_server}
        return cls(joined, servers, servers | (invited - {own_server}), named)


@dataclass
class _Staged:
    """Everything one staged change stores and publishes."""

    event_rows: list[tuple[Any, ...]] = field(default_factory=list)
    verdicts: list[tuple[int, str | None, str]] = field(default_factory=list)
    stream_rows: list[tuple[Any, ...]] = field(default_factory=list)
    membership_rows: list[tuple[str, str, int, str]] = field(default_factory=list)
    redactions: list[tuple[str, str, str]] = field(default_factory=list)
    txn: tuple[str, str, str, str] | None = None
    outbox_rows: list[tuple[str, int, str]] = field(default_factory=list)
    """(destination, position, event_id): events for other servers (federation.md §3.3)."""
    items: list[Item] = field(default_factory=list)
    joined: list[tuple[str, str]] = field(default_factory=list)
    """(room, user) of every user of any server whose membership became ``join``."""
    last_position: int = 0
    positions: dict[str, int] = field(default_factory=dict)
    """Where each new event was stored."""


def _stored_json(event: JsonObject) -> str:
    """How events are stored: compact UTF-8 JSON (any JSON would do; no need to be canonical)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


_INSERT_EVENT = (
    "INSERT INTO events (event_id, room_id, position, depth, sender, type, state_key, accepted, "
    "reason, json, sender_device, txn_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SET_VERDICT = "UPDATE events SET accepted = ?, reason = ? WHERE event_id = ?"
_INSERT_STREAM_ROW = (
    "INSERT INTO stream (position, kind, room_id, event_id, user_id, data) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_MEMBERSHIP = (
    "INSERT INTO memberships (room_id, user_id, position, membership) VALUES (?, ?, ?, ?)"
)
_SET_REDACTED = "UPDATE events SET redacted_by = ?, json = ? WHERE event_id = ?"
_INSERT_OUTBOX = "INSERT INTO fed_outbox (destination, position, event_id) VALUES (?, ?, ?)"


class RoomService:
    """The rooms this node holds, and every change local users make to them."""

    def __init__(
        self,
        *,
        server_name: str,
        key: NodeKey,
        db: Database,
        stream: Stream,
        memberships: Memberships,
        txns: Transactions,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self.server_name = server_name
        self._key = key
        self._db = db
        self._stream = stream
        self._memberships = memberships
        self._clock_ms = clock_ms
        self.rooms: dict[str, Room] = {}
        self._txns = txns
        self._members: dict[str, _Members] = {}
        """Per room, who is in it; computed again after a member event changes its state."""
        self.on_outbox: Callable[[set[str]], None] = lambda destinations: None
        """Told, after a commit, which destinations have new events queued (federation)."""
        self.on_joined: list[Callable[[list[tuple[str, str]]], None]] = []
        """Told ``[(room, user), ...]`` after a commit made users of any server joined."""

    # --- start --------------------------------------------------------------------------

    async def load(self) -> None:
        """Rebuild every room from stored events, in the order the node added them."""
        rows = await self._db.read(
            lambda conn: conn.execute(
                "SELECT event_id, room_id, json FROM events ORDER BY position"
            ).fetchall()
        )
        for event_id, room_id, text in rows:
            event = json.loads(text)
            room = self.rooms.get(room_id)
            if room is None:
                self.rooms[room_id] = Room(event_id, event)
            else:
                room.add({event_id: event})
        changes = await self._db.read(
            lambda conn: conn.execute(
                "SELECT user_id, room_id, position, membership FROM memberships ORDER BY position"
            ).fetchall()
        )
        for user_id, room_id, position, membership in changes:
            self._memberships.record(user_id, room_id, position, membership)
        log.debug("rooms_loaded", rooms=len(self.rooms), events=len(rows))

    # --- reading ------------------------------------------------------------------------

    def room(self, room_id: str) -> Room:
        """A room this node holds; ``not_found`` otherwise."""
        room = self.rooms.get(room_id)
        if room is None:
            raise RemoteProtocolError(ErrorCode.NOT_FOUND, f"no room {room_id} on this node")
        return room

    def is_local(self, user_id: str) -> bool:
        """True if ``user_id`` lives on this node."""
        return parse_user_id(user_id).server_name == self.server_name

    def require_joined(self, user_id: str, room_id: str) -> Room:
        """The room, if ``user_id`` is joined to it (``not_found``, ``not_joined``)."""
        room = self.room(room_id)
        if self._memberships.current(user_id, room_id) != "join":
            raise RemoteProtocolError(RejectReason.NOT_JOINED, "join the room first")
        return room

    # --- creating events ----------------------------------------------------------------

    async def create_room(
        self,
        user_id: str,
        *,
        name: str | None = None,
        topic: str | None = None,
        invite: Iterable[str] = (),
        direct: bool = False,
        public: bool = False,
        encryption: str | None = None,
    ) -> str:
        """client.md §3 ``create_room``: every initial event stored in one transaction."""
        invitees = list(dict.fromkeys(invite))
        if direct and (len(invitees) != 1 or public):
            raise RemoteProtocolError(
                ErrorCode.BAD_PARAMS, "a direct room has exactly one invitee and is not public"
            )
        # Users of other nodes are invited after the room exists: their node co-signs each
        # invite first (federation.md §7), which the caller does.
        content: JsonObject = {"creator": user_id, "room_version": "1"}
        if direct:
            content["direct"] = True
        create = build_event(
            event_type=EventType.CREATE,
            sender=user_id,
            state_key="",
            content=content,
            prev_events=[],
            auth_events=[],
            depth=0,
            origin_server_ts=self._clock_ms(),
        )
        signed, create_id = self._sign(create)
        room = Room(create_id, signed)
        staged = _Staged()
        self._stage_root(room, create_id, signed, staged)
        steps: list[tuple[str, JsonObject, str]] = [
            (EventType.MEMBER, {"membership": "join"}, user_id),
            (EventType.JOIN_RULES, {"join_rule": "public" if public else "invite"}, ""),
        ]
        if name is not None:
            steps.append((EventType.NAME, {"name": name}, ""))
        if topic is not None:
            steps.append((EventType.TOPIC, {"topic": topic}, ""))
        if encryption is not None:
            steps.append((EventType.ENCRYPTION, {"algorithm": encryption}, ""))
        steps += [
            (EventType.MEMBER, {"membership": "invite"}, u) for u in invitees if self.is_local(u)
        ]
        self.rooms[room.room_id] = room
        try:
            for event_type, step_content, state_key in steps:
                self._stage_event(
                    room,
                    sender=user_id,
                    event_type=event_type,
                    content=step_content,
                    state_key=state_key,
                    staged=staged,
                )
        except RemoteProtocolError:
            del self.rooms[room.room_id]
            raise
        room_row = (room.room_id, create_id, int(direct), self._clock_ms())
        await self._store(staged, room_row=room_row)
        return room.room_id

    async def send(
        self,
        user_id: str,
        device_id: str,
        room_id: str,
        event_type: str,
        content: JsonObject,
        *,
        state_key: str | None = None,
        txn_id: str | None = None,
    ) -> str:
        """Create one event as ``user_id``; idempotent per device and ``txn_id``."""
        if txn_id is None:
            room = self.room(room_id)
            staged = _Staged()
            event_id = self._stage_event(
                room,
                sender=user_id,
                event_type=event_type,
                content=content,
                state_key=state_key,
                staged=staged,
            )
            await self._store(staged)
            return event_id
        key = (user_id, device_id, txn_id)

        async def run() -> str:
            room = self.room(room_id)
            staged = _Staged()
            event_id = self._stage_event(
                room,
                sender=user_id,
                event_type=event_type,
                content=content,
                state_key=state_key,
                staged=staged,
                sent_by=key,
            )
            staged.txn = (*key, event_id)
            await self._store(staged)
            return event_id

        return await self._txns.once(key, run)

    def _sign(self, event: JsonObject) -> tuple[JsonObject, str]:
        """The signed event and its id (spec/events.md §5-§6)."""
        key = self._key
        return sign_event_with_id(event, self.server_name, key.key_id, key.signing_key)

    def _stage_event(
        self,
        room: Room,
        *,
        sender: str,
        event_type: str,
        content: JsonObject,
        state_key: str | None,
        staged: _Staged,
        sent_by: tuple[str, str, str] | None = None,
    ) -> str:
        """Build, check, sign and add one event; record what to store and publish."""
        event_id, signed = self.build_signed(
            room, sender=sender, event_type=event_type, content=content, state_key=state_key
        )
        self.stage_signed(room, event_id, signed, staged, sent_by=sent_by)
        return event_id

    def build_signed(
        self,
        room: Room,
        *,
        sender: str,
        event_type: str,
        content: JsonObject,
        state_key: str | None,
    ) -> tuple[str, JsonObject]:
        """A new event on the room's forward extremities, checked against the room state
        (the rules' reason code if refused) and signed; not added to the room."""
        parents, depth = room.next_position()
        event = build_event(
            event_type=event_type,
            sender=sender,
            room_id=room.room_id,
            state_key=state_key,
            content=content,
            prev_events=parents,
            auth_events=[],
            depth=depth,
            origin_server_ts=self._clock_ms(),
        )
        reason = room.check_new(event)
        if reason is not None:
            raise RemoteProtocolError(reason, f"the room's rules refuse this: {reason.value}")
        event["auth_events"] = room.auth_events_for(event)
        signed, event_id = self._sign(event)
        return event_id, signed

    async def store_signed(self, room: Room, event_id: str, signed: JsonObject) -> None:
        """Add, store and queue an event built earlier by :meth:`build_signed` (an invite
        co-signed by the invitee's node, federation.md §7); the rules' code if the room's
        state changed meanwhile so that it is now rejected (it is stored all the same)."""
        staged = _Staged()
        self.stage_signed(room, event_id, signed, staged)
        await self._store(staged)
        reason = room.rejection(event_id)
        if reason is not None:
            raise RemoteProtocolError(reason, f"the room's rules refuse this: {reason.value}")

    # --- events from other nodes (federation.md §4, §6) ---------------------------------

    async def receive(self, room_id: str, events: Mapping[str, JsonObject]) -> Changes:
        """Add verified events from other nodes to a room this node holds; store what the
        room's engine added and every verdict it changed, then publish."""
        room = self.room(room_id)
        changes = room.add(events)
        if changes.added or changes.accepted or changes.retracted:
            staged = _Staged()
            self._stage_changes(room, changes, staged)
            await self._store(staged)
        return changes

    async def acquire(
        self, create_id: str, create_event: JsonObject, events: Mapping[str, JsonObject]
    ) -> Changes:
        """Hold a room from its verified history (federation.md §6 steps 1-2): its create
        event and any others; judged by the same engine as every other node's."""
        room = Room(create_id, create_event)
        if room.room_id in self.rooms:
            return await self.receive(room.room_id, events)
        self.rooms[room.room_id] = room
        staged = _Staged()
        self._stage_root(room, create_id, create_event, staged)
        changes = room.add(events)
        self._stage_changes(room, changes, staged)
        direct = int(create_event["content"].get("direct") is True)
        await self._store(staged, room_row=(room.room_id, create_id, direct, self._clock_ms()))
        log.info("room_acquired", room=room.room_id, events=len(room))
        return changes

    def stage_signed(
        self,
        room: Room,
        event_id: str,
        signed: JsonObject,
        staged: _Staged,
        *,
        sent_by: tuple[str, str, str] | None = None,
    ) -> None:
        """Add an event this node signed and stage it, queued for the room's other servers."""
        changes = room.add({event_id: signed})
        if changes.refused or changes.held:  # pragma: no cover - we built it on the tips
            raise RuntimeError(f"the room refused its own node's event: {changes}")
        self._stage_changes(room, changes, staged, sent_by=(event_id, sent_by))
        position = staged.positions[event_id]
        for destination in sorted(self.destinations(room, signed)):
            staged.outbox_rows.append((destination, position, event_id))

    def members(self, room: Room) -> _Members:
        """Who is in the room now, local and remote users alike."""
        members = self._members.get(room.room_id)
        if members is None:  # recomputed only after a member event changed the state
            members = self._members[room.room_id] = _Members.of(room, self.server_name)
        return members

    def local_joined(self, room_id: str) -> list[str]:
        """This node's users joined to the room now."""
        return self._memberships.joined(room_id)

    def rooms_joined_by(self, user_id: str) -> list[str]:
        """The rooms ``user_id`` (of any server) is joined to now."""
        if self.is_local(user_id):
            return self._memberships.rooms_with(user_id, ("join",))
        return [r for r, room in self.rooms.items() if user_id in self.members(room).joined]

    def destinations(self, room: Room, event: JsonObject) -> set[str]:
        """federation.md §3.3: the other servers with a user joined or invited after
        ``event``, and for a member event the server of the user it names."""
        servers = self.members(room).servers_present
        if event["type"] != _MEMBER:
            return set(servers)
        return set(servers | {parse_user_id(event["state_key"]).server_name}) - {self.server_name}

    def _stage_root(self, room: Room, create_id: str, signed: JsonObject, staged: _Staged) -> None:
        self._stage_changes(room, Changes(added=[create_id], accepted=[create_id]), staged)

    def _stage_changes(
        self,
        room: Room,
        changes: Changes,
        staged: _Staged,
        *,
        sent_by: tuple[str, tuple[str, str, str] | None] | None = None,
    ) -> None:
        """Positions and rows for the events a ``Room.add`` added and every verdict it
        changed (state.md §6). New events get their positions in canonical order, so a
        room's events are stored in an order where parents come first; accepted ones are
        stream items. ``sent_by`` names the event a local device sent, with its txn key."""
        added = set(changes.added)
        accepted = set(changes.accepted)
        own_id, own_key = sent_by if sent_by is not None else (None, None)
        # Retractions first: they undo what the room showed before this change, so they go to
        # whoever saw it then — a user this very change removes (a late ban) included; the
        # memberships they change count from the last of them.
        position = 0
        for gone in changes.retracted:
            position = self._stream.allocate()
            reason = room.rejection(gone)
            staged.verdicts.append((0, reason.value if reason else None, gone))
            payload = {"position": position, "kind": "retraction", "room_id": room.room_id,
                       "event_id": gone}  # fmt: skip
            staged.stream_rows.append((position, "retraction", room.room_id, gone, None, None))
            staged.items.append(Item(position, "retraction", payload, room_id=room.room_id))
        for gone in changes.retracted:
            self._note_membership(room, room.event(gone), position, staged)
        for event_id in changes.added:
            position = self._stream.allocate()
            staged.positions[event_id] = position
            event = room.event(event_id)
            is_own = event_id == own_id
            if event_id in accepted:
                self._stage_item(room, event_id, position, staged, own_key if is_own else None)
            reason = room.rejection(event_id)
            staged.event_rows.append(
                (
                    event_id,
                    room.room_id,
                    position,
                    event["depth"],
                    event["sender"],
                    event["type"],
                    event.get("state_key"),
                    int(reason is None),
                    reason.value if reason else None,
                    _stored_json(event),
                    own_key[1] if is_own and own_key else None,
                    own_key[2] if is_own and own_key else None,
                )
            )
        for event_id in changes.accepted:
            if event_id not in added:  # reinstated
                staged.verdicts.append((1, None, event_id))
                self._stage_item(room, event_id, self._stream.allocate(), staged, None)
        staged.last_position = self._stream.head

    def _stage_item(
        self,
        room: Room,
        event_id: str,
        position: int,
        staged: _Staged,
        sent_by: tuple[str, str, str] | None,
    ) -> None:
        """An accepted event as an item of the stream (client.md §5)."""
        event = room.event(event_id)
        payload = {
            "position": position,
            "kind": "event",
            "room_id": room.room_id,
            "event": client_event(event_id, event, room.room_id),
        }
        audience = self._audience(room, event_id, event)
        stored = json.dumps(sorted(audience)) if audience is not None else None
        staged.stream_rows.append((position, "event", room.room_id, event_id, None, stored))
        staged.items.append(
            Item(
                position,
                "event",
                payload,
                room_id=room.room_id,
                sent_by=sent_by,
                audience=audience,
            )
        )
        self._note_membership(room, event, position, staged)
        self._note_redaction(room, event_id, staged)

    def _audience(self, room: Room, event_id: str, event: JsonObject) -> frozenset[str] | None:
        """client.md §5: the local users who see a timeline event that arrived after a
        membership change it comes before in canonical order (a late event): those joined in
        the state before it. None — the stream's rule by position, which gives the same
        answer — for every other event, and for state events, which every member sees so
        that all hold the same state (two concurrent joins see each other)."""
        if "state_key" in event or not room.is_before_a_membership_change(event_id):
            return None  # state events: whoever is in the room when they arrive sees them
        audience = {
            user_id
            for user_id in self._memberships.users_of(room.room_id)
            if room.membership_before(event_id, user_id) == "join"
        }
        return frozenset(audience)

    def _note_membership(
        self, room: Room, event: JsonObject, position: int, staged: _Staged
    ) -> None:
        """A local user's membership may have changed: record it at ``position``. Any
        user's: the room's servers are computed again when next needed."""
        if event["type"] != _MEMBER:
            return
        self._members.pop(room.room_id, None)
        user_id = event["state_key"]
        held = room.state_event((_MEMBER, user_id))
        membership = held["content"]["membership"] if held is not None else "leave"
        if membership == "join":
            staged.joined.append((room.room_id, user_id))
        if not self.is_local(user_id):
            return
        membership = "leave" if membership == "unban" else membership
        if self._memberships.record(user_id, room.room_id, position, membership):
            staged.membership_rows.append((room.room_id, user_id, position, membership))

    def _note_redaction(self, room: Room, event_id: str, staged: _Staged) -> None:
        """An accepted redaction that takes effect removes its target's content."""
        if room.event(event_id)["type"] != EventType.REDACTION:
            return
        target = room.redaction_target(event_id)
        if target is not None:
            redacted = _stored_json(redact_event(room.event(target)))
            staged.redactions.append((event_id, redacted, target))

    async def _store(
        self, staged: _Staged, *, room_row: tuple[str, str, int, int] | None = None
    ) -> None:
        """One transaction for everything staged; publish once it committed."""

        def job(conn: sqlite3.Connection) -> None:
            if room_row is not None:
                conn.execute(
                    "INSERT INTO rooms (room_id, create_event_id, direct, created_ts) "
                    "VALUES (?, ?, ?, ?)",
                    room_row,
                )
            # Only the statements with rows run: a message is one event and one stream row.
            for statement, rows in (
                (_INSERT_EVENT, staged.event_rows),
                (_SET_VERDICT, staged.verdicts),
                (_INSERT_STREAM_ROW, staged.stream_rows),
                (_INSERT_MEMBERSHIP, staged.membership_rows),
                (_SET_REDACTED, staged.redactions),
                (_INSERT_OUTBOX, staged.outbox_rows),
            ):
                if rows:
                    conn.executemany(statement, rows)
            if staged.txn is not None:
                user_id, device_id, txn_id, result = staged.txn
                store_txn(conn, (user_id, device_id, txn_id), result, self._clock_ms())

        def committed(_: None) -> None:
            self._stream.publish(staged.items, staged.last_position)
            if staged.outbox_rows:
                self.on_outbox({row[0] for row in staged.outbox_rows})
            if staged.joined:
                for listener in self.on_joined:
                    listener(staged.joined)

        await self._db.write(job, on_commit=committed)
