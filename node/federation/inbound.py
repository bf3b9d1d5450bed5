"""Answering a peer's requests on an authenticated link (spec/federation.md §3-§7).

* ``txn``: every event goes through the checks of §4 in order — format, the signature of
  its sender's server, the content hash, then the room — and gets an outcome; events whose
  parents are missing are held while their parents are fetched from the same peer (§5);
  the answer goes back only once everything is committed (§3.2).
* ``get_missing`` and ``backfill``: events of a room the peer has (had) a user in (§5).
* ``sign_invite``: co-sign an invite of one of this node's users (§7).
* ``to_device``: store messages for this node's devices (§8), answered once committed.
* ``peer_ops`` answer the rest: ``query_keys`` and ``claim_keys`` (§10).

A transaction's EDUs (§8) go to the ``on_edus`` handler after its events.
"""

from __future__ import annotations

import json
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import trio

from node.federation.keystore import KeyStore
from node.federation.peer_link import LinkClosedError, PeerLink
from node.keys import NodeKey
from node.log import get_log
from node.services.rooms import RoomService
from node.storage.db import Database
from protocol import (
    ErrorCode,
    EventType,
    JsonObject,
    RemoteProtocolError,
    compute_event_id,
    parse_user_id,
    verify_event,
)
from protocol.events import countersign_event
from protocol.federation.ephemeral import ToDeviceMessage, parse_to_device_message
from protocol.federation.ops import MAX_MISSING_LIMIT
from protocol.rooms import RejectReason, Room
from protocol.rooms.dag import room_id_of
from protocol.wire import MAX_FRAME_BYTES, Endpoint

__all__ = ["FetchLimits", "Inbound"]

log = get_log(__name__)

_MEMBER = EventType.MEMBER.value
_ANSWER_BYTES: Final = MAX_FRAME_BYTES[Endpoint.FEDERATION] - 256 * 1024
"""Events of one fetch answer stay this far under the 4 MiB frame (room for the envelope)."""


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """§5: how far a receiver goes to fill a gap before it fetches the whole history."""

    missing_events: int = 1_000
    backfill_page: int = 500


def room_of(event: JsonObject, event_id: str) -> str:
    """The room an event belongs to: its ``room_id``, or its own id for a create event."""
    room_id = event.get("room_id")
    return room_id if type(room_id) is str else room_id_of(event_id)


class Inbound:
    """The node's answers to its peers (``peer_link.RequestHandler``)."""

    def __init__(
        self,
        *,
        server_name: str,
        key: Callable[[], NodeKey],
        keystore: KeyStore,
        rooms: RoomService,
        db: Database,
        user_is_active: Callable[[str], Awaitable[bool]],
        on_edus: Callable[[str, list[Any]], Awaitable[None]],
        on_to_device: Callable[[str, list[ToDeviceMessage]], Awaitable[None]],
        limits: FetchLimits | None = None,
        peer_ops: Mapping[str, Callable[[str, JsonObject], Awaitable[JsonObject]]] | None = None,
    ) -> None:
        self._server_name = server_name
        self._key = key
        self._keystore = keystore
        self._rooms = rooms
        self._db = db
        self._user_is_active = user_is_active
        self._on_edus = on_edus
        self._on_to_device = on_to_device
        self._limits = limits or FetchLimits()
        self._peer_ops = dict(peer_ops or {})
        """Ops answered elsewhere, with the peer's name (§10: device keys)."""
        self._acquiring: dict[str, trio.Lock] = {}

    async def __call__(self, link: PeerLink, op: str, params: JsonObject) -> JsonObject:
        if op == "txn":
            return await self._txn(link, params)
        if op == "get_missing":
            return self._get_missing(link, params)
        if op == "backfill":
            return await self._backfill(link, params)
        if op == "sign_invite":
            return await self._sign_invite(link, params)
        if op == "to_device":
            return await self._to_device(link, params)
        answer = self._peer_ops.get(op)
        if answer is not None and link.peer is not None:
            return await answer(link.peer, params)
        raise RemoteProtocolError(ErrorCode.UNKNOWN_OP, f"this node does not implement {op!r}")

    # --- §4: receiving events -----------------------------------------------------------

    def _verify(self, pdu: Any) -> tuple[str, JsonObject]:
        """§4 steps 1-3: the event's id and the form to keep, or ``RemoteProtocolError``."""
        # Every event here is part of a decoded frame (decode_json): in the data model.
        verified = verify_event(pdu, self._keystore.event_keys(pdu), decoded=True)
        return verified.event_id, verified.event

    async def _txn(self, link: PeerLink, params: JsonObject) -> JsonObject:
        await self._keystore.learn_all(params.get("keys", []))
        outcomes: list[JsonObject] = []
        by_room: dict[str, dict[str, JsonObject]] = {}
        slots: dict[str, int] = {}
        for pdu in params["pdus"]:
            try:
                event_id, event = self._verify(pdu)
            except RemoteProtocolError as exc:
                outcome: JsonObject = {"outcome": "refused", "reason": exc.code.value}
                bad_id = _event_id_or_none(pdu)
                if bad_id is not None:
                    outcome["event_id"] = bad_id
                log.info("pdu_refused", peer=link.peer, event_id=bad_id, reason=exc.code)
                outcomes.append(outcome)
                continue
            slots[event_id] = len(outcomes)
            outcomes.append({"event_id": event_id, "outcome": "held"})
            by_room.setdefault(room_of(event, event_id), {})[event_id] = event
        for room_id, events in by_room.items():
            for event_id, outcome in (await self._receive(link, room_id, events)).items():
                outcomes[slots[event_id]] = outcome
        if params["edus"] and link.peer is not None:
            await self._on_edus(link.peer, params["edus"])
        return {"pdus": outcomes}

    async def _receive(
        self, link: PeerLink, room_id: str, events: dict[str, JsonObject]
    ) -> dict[str, JsonObject]:
        """§4 step 4 for one room's events of a transaction: their outcomes by id."""
        room = self._rooms.rooms.get(room_id)
        if room is None and self._invites_local_user(events):
            room = await self._acquire(link, room_id)
        if room is None:
            log.info("pdus_refused", peer=link.peer, room=room_id, reason="not_found")
            return {eid: {"event_id": eid, "outcome": "refused", "reason": "not_found"}
                    for eid in events}  # fmt: skip
        known = {eid for eid in events if eid in room}
        fresh = {eid: event for eid, event in events.items() if eid not in known}
        changes = await self._rooms.receive(room_id, fresh)
        refused = dict(changes.refused)
        if changes.held:
            waiting = {eid: ev for eid, ev in fresh.items() if eid not in refused}
            refused.update(await self._fill_gap(link, room, waiting))
        outcomes: dict[str, JsonObject] = {}
        for event_id in events:
            if event_id in known:
                outcomes[event_id] = {"event_id": event_id, "outcome": "duplicate"}
            elif event_id in refused:  # broke a rule of state.md §1: never added
                code = refused[event_id].value
                log.info("pdu_refused", peer=link.peer, event_id=event_id, reason=code)
                outcomes[event_id] = {"event_id": event_id, "outcome": "refused", "reason": code}
            elif event_id not in room:
                log.info("pdu_held", peer=link.peer, event_id=event_id, room=room_id)
                outcomes[event_id] = {"event_id": event_id, "outcome": "held"}
            elif (reason := room.rejection(event_id)) is not None:
                log.info("pdu_rejected", peer=link.peer, event_id=event_id, reason=reason)
                outcomes[event_id] = {
                    "event_id": event_id,
                    "outcome": "rejected",
                    "reason": reason.value,
                }
            else:
                outcomes[event_id] = {"event_id": event_id, "outcome": "accepted"}
        return outcomes

    def _invites_local_user(self, events: dict[str, JsonObject]) -> bool:
        """§7: an invite of one of this node's users, for a room this node does not hold."""
        for event in events.values():
            if event.get("type") == _MEMBER and event["content"].get("membership") == "invite":
                state_key = event.get("state_key")
                if type(state_key) is str and self._rooms.is_local(state_key):
                    return True
        return False

    async def _fill_gap(
        self, link: PeerLink, room: Room, waiting: dict[str, JsonObject]
    ) -> dict[str, RejectReason]:
        """§5: fetch missing parents breadth-first from the peer, then the whole history.
        Returns the waiting events the room refused once their parents were known."""
        fetched = 0
        refused: dict[str, RejectReason] = {}
        while True:
            pending = {e: ev for e, ev in waiting.items() if e not in room and e not in refused}
            missing = sorted(
                {p for ev in pending.values() for p in ev["prev_events"] if p not in room}
                - pending.keys()
            )
            if not pending:
                return refused
            if not missing or fetched >= self._limits.missing_events:
                break
            try:
                answer = await link.request(
                    "get_missing",
                    {
                        "room_id": room.room_id,
                        "earliest": room.forward_extremities()[:20],
                        "latest": missing[:20],
                        "limit": MAX_MISSING_LIMIT,
                    },
                )
            except (RemoteProtocolError, LinkClosedError, trio.TooSlowError) as exc:
                log.info("get_missing_failed", peer=link.peer, room=room.room_id, why=str(exc))
                return refused
            got = await self._verified(answer)
            new = {eid: ev for eid, ev in got.items() if eid not in room and eid not in pending}
            if not new:
                break
            fetched += len(new)
            changes = await self._rooms.receive(room.room_id, {**new, **pending})
            refused.update((e, r) for e, r in changes.refused.items() if e in waiting)
        if any(eid not in room and eid not in refused for eid in waiting):
            await self._backfill_from(link, room.room_id, room)
            changes = await self._rooms.receive(room.room_id, waiting)
            refused.update(changes.refused)
        return refused

    async def _verified(self, answer: JsonObject) -> dict[str, JsonObject]:
        """The events of a fetch answer that pass §4 steps 1-3 (others are logged)."""
        keys = answer.get("keys")
        if isinstance(keys, list):
            await self._keystore.learn_all(keys)
        events = answer.get("events")
        good: dict[str, JsonObject] = {}
        for pdu in events if isinstance(events, list) else []:
            try:
                event_id, event = self._verify(pdu)
            except RemoteProtocolError as exc:
                log.info("fetched_event_refused", reason=exc.code)
                continue
            good[event_id] = event
        return good

    # --- §6: holding a room from its history --------------------------------------------

    async def acquire_from(self, link: PeerLink, room_id: str) -> Room:
        """Page a room's whole history from a peer and hold the room (§6 steps 1-2)."""
        lock = self._acquiring.setdefault(room_id, trio.Lock())
        async with lock:
            room = self._rooms.rooms.get(room_id)
            if room is None:
                await self._backfill_from(link, room_id, None)
                room = self._rooms.rooms.get(room_id)
            if room is None:
                raise RemoteProtocolError(ErrorCode.NOT_FOUND, f"{link.peer} sent no {room_id}")
            return room

    async def _acquire(self, link: PeerLink, room_id: str) -> Room | None:
        try:
            return await self.acquire_from(link, room_id)
        except (RemoteProtocolError, LinkClosedError, trio.TooSlowError) as exc:
            log.info("room_acquire_failed", peer=link.peer, room=room_id, why=str(exc)[:200])
            return None

    async def _backfill_from(self, link: PeerLink, room_id: str, room: Room | None) -> None:
        """Every page of ``backfill``, each added as it arrives (parents come first). The
        next page is asked for before this one is checked, so the peer prepares it while
        this node verifies."""

        async def fetch(token: str | None, into: list[JsonObject]) -> None:
            params: JsonObject = {"room_id": room_id, "limit": self._limits.backfill_page}
            if token is not None:
                params["from"] = token
            into.append(await link.request("backfill", params))

        pages: list[JsonObject] = []
        await fetch(None, pages)
        while pages:
            answer = pages.pop()
            token = answer.get("next")
            async with trio.open_nursery() as nursery:
                if type(token) is str:
                    nursery.start_soon(fetch, token, pages)
                room = await self._add_page(room_id, room, answer)

    async def _add_page(self, room_id: str, room: Room | None, answer: JsonObject) -> Room:
        """Verify a fetched page and add it: to ``room``, or as a new room (§6 step 2)."""
        events = await self._verified(answer)
        if room is not None:
            await self._rooms.receive(room_id, events)
            return room
        create_id = next((eid for eid, ev in events.items() if room_id_of(eid) == room_id), None)
        if create_id is None:
            raise RemoteProtocolError(ErrorCode.BAD_EVENT, "history without its create")
        create = events.pop(create_id)
        await self._rooms.acquire(create_id, create, events)
        return self._rooms.room(room_id)

    # --- §5: answering fetches ----------------------------------------------------------

    def _readable_room(self, link: PeerLink, room_id: str, *, public_ok: bool) -> Room:
        """The room, if the peer has (had) a user in it (or it is public, for backfill)."""
        room = self._rooms.room(room_id)
        peer = link.peer
        if peer in self._rooms.members(room).servers_named:
            return room
        if public_ok:
            rule = room.state_event((EventType.JOIN_RULES.value, ""))
            if rule is not None and rule["content"].get("join_rule") == "public":
                return room
        raise RemoteProtocolError(ErrorCode.FORBIDDEN, f"{peer} has no user in {room_id}")

    def _get_missing(self, link: PeerLink, params: JsonObject) -> JsonObject:
        room = self._readable_room(link, params["room_id"], public_ok=False)
        earliest = set(params["earliest"])
        queue = deque(params["latest"])
        taken: dict[str, JsonObject] = {}
        size = 0
        while queue and len(taken) < params["limit"]:
            event_id = queue.popleft()
            if event_id in taken or event_id in earliest or event_id not in room:
                continue
            event = room.event(event_id)
            size += len(json.dumps(event))
            if size > _ANSWER_BYTES and taken:
                break
            taken[event_id] = event
            queue.extend(event["prev_events"])
        events = list(taken.values())
        return {"events": events, "keys": self._keys_of(events)}

    async def _backfill(self, link: PeerLink, params: JsonObject) -> JsonObject:
        room = self._readable_room(link, params["room_id"], public_ok=True)
        after = _parse_token(params.get("from"))
        rows = await self._db.read(
            lambda conn: _history_page(conn, room.room_id, after, params["limit"])
        )
        events: list[JsonObject] = []
        size = 0
        last: tuple[int, str] | None = None
        for depth, event_id, text in rows:
            size += len(text)
            if size > _ANSWER_BYTES and events:
                break
            events.append(json.loads(text))
            last = (depth, event_id)
        more = last is not None and (len(events) < len(rows) or len(rows) == params["limit"])
        next_token = f"{last[0]}:{last[1]}" if more and last is not None else None
        return {"events": events, "keys": self._keys_of(events), "next": next_token}

    def _keys_of(self, events: list[JsonObject]) -> list[JsonObject]:
        """The key objects of the events' senders' servers (§5), to relay them."""
        servers = {parse_user_id(e["sender"]).server_name for e in events}
        return self._keystore.objects(sorted(servers))

    # --- §7: co-signing an invite -------------------------------------------------------

    async def _sign_invite(self, link: PeerLink, params: JsonObject) -> JsonObject:
        event_id, event = self._verify(params["event"])
        if parse_user_id(event["sender"]).server_name != link.peer:
            raise RemoteProtocolError(ErrorCode.FORBIDDEN, "the invite's sender is not the peer's")
        state_key = event.get("state_key")
        if (
            event["type"] != _MEMBER
            or event["content"].get("membership") != "invite"
            or type(state_key) is not str
        ):
            raise RemoteProtocolError(ErrorCode.BAD_PARAMS, "not an invite")
        if not self._rooms.is_local(state_key) or not await self._user_is_active(state_key):
            raise RemoteProtocolError(ErrorCode.NOT_FOUND, f"no user {state_key} here")
        key = self._key()
        signed = countersign_event(params["event"], self._server_name, key.key_id, key.signing_key)
        log.info("invite_signed", peer=link.peer, event_id=event_id, user=state_key)
        return {"event": signed}

    # --- §8: to-device messages -----------------------------------------------------------

    async def _to_device(self, link: PeerLink, params: JsonObject) -> JsonObject:
        """Store what is well-formed (each message on its own); answer once committed."""
        messages: list[ToDeviceMessage] = []
        for item in params["messages"]:
            try:
                messages.append(parse_to_device_message(item))
            except RemoteProtocolError as exc:
                log.info("to_device_refused", peer=link.peer, reason=exc.code)
        if link.peer is not None:
            await self._on_to_device(link.peer, messages)
        return {}


def _event_id_or_none(pdu: Any) -> str | None:
    try:
        return compute_event_id(pdu) if isinstance(pdu, dict) else None
    except Exception:  # any malformed event simply has no id to report
        return None


def _parse_token(token: Any) -> tuple[int, str] | None:
    if token is None:
        return None
    depth, colon, event_id = str(token).partition(":")
    if not colon or not depth.isdigit():
        raise RemoteProtocolError(ErrorCode.BAD_PARAMS, "not a token this node gave")
    return int(depth), event_id


def _history_page(
    conn: sqlite3.Connection, room_id: str, after: tuple[int, str] | None, limit: int
) -> list[tuple[int, str, str]]:
    """A room's events in causal order — by depth, then id — after a point (§5)."""
    if after is None:
        query = "SELECT depth, event_id, json FROM events WHERE room_id = ? "
        args: tuple[Any, ...] = (room_id,)
    else:
        query = (
            "SELECT depth, event_id, json FROM events "
            "WHERE room_id = ? AND (depth, event_id) > (?, ?) "
        )
        args = (room_id, *after)
    return conn.execute(query + "ORDER BY depth, event_id LIMIT ?", (*args, limit)).fetchall()
