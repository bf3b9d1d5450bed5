"""A fake peer node for the conformance suite: it opens a link to the node under test's
``/federation`` endpoint and speaks spec/federation.md by hand, frame by frame, so it can
send what a well-behaved node never would and see exactly what the node answers.

A fake peer has its own Ed25519 key and its own server name, fresh for each peer and under
the ``.invalid`` top-level domain (RFC 6761), so the node can never dial it: everything the
node asks of it comes over the link the fake peer opened (§2.3, one link per pair). While
it waits for an answer, or while :meth:`FakePeer.serve` runs, it answers the node's own
requests: ``ping`` and ``to_device`` with ``{}``, ``txn`` by accepting every event (each is
recorded in :attr:`FakePeer.pdus`), ``backfill`` and ``get_missing`` from the rooms it made
itself (:meth:`FakePeer.create_room`), anything else ``not_found``.

The links the node opens itself go to ``tests.conformance.fake_peer_server``, whose
responder end of a link is a :class:`FakePeer` too.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import nacl.signing

from protocol import build_event, compute_event_id, derive_key_id, sign_event_with_id
from protocol.federation.keys import ServerKeys, build_key_object, parse_key_object
from protocol.federation.link import LinkRoles, check_proof, encode_nonce, make_proof
from protocol.rooms import select_auth_events
from tests.conformance.client_session import RUN, Session, session
from tests.conformance.wsclient import Closed, Received, Text, connect

__all__ = [
    "NO_EVENT",
    "NO_ROOM",
    "TIMEOUT",
    "FakePeer",
    "LinkClosedError",
    "LinkSocket",
    "RoomHistory",
    "assert_serving",
    "authenticated",
    "fake_server_name",
    "now_ms",
    "open_fake_peer",
    "other_key",
    "parents_first",
    "room_creator",
]

SUBPROTOCOL = "kith.v1"
NO_ROOM = "!" + "B" * 42 + "A"
"""A valid room id no node holds (the hash of no create event anyone could make)."""
NO_EVENT = "$" + "C" * 42 + "A"
"""A valid event id of no event."""
_servers = itertools.count(1)


def now_ms() -> int:
    """The fake peer's clock, in milliseconds since the Unix epoch (a link proof's ``ts``)."""
    return int(time.time() * 1000)


def fake_server_name() -> str:
    """A server name no other fake peer, in this run or an earlier one, has used.

    Fresh names keep runs against one long-lived node apart: the node pins the first key
    object it sees for a name (§1.2), so a name must never come back with another key.
    """
    return f"peer{next(_servers)}-{RUN}.conformance.invalid"


class LinkSocket(Protocol):
    """What a fake peer needs of its WebSocket, whichever end opened it."""

    async def send_text(self, text: str) -> None:
        """Send one text message."""

    async def receive(self) -> Received:
        """The next complete message, or ``Closed`` once the link is closed."""


class LinkClosedError(Exception):
    """The node closed the link; ``code`` is its WebSocket close code."""

    def __init__(self, closed: Closed) -> None:
        super().__init__(f"the node closed the link with {closed.code} {closed.reason!r}")
        self.code = closed.code


@dataclass
class RoomHistory:
    """What a fake peer knows of a room: the events it fetched or made, by id."""

    room_id: str
    events: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, event: dict[str, Any], event_id: str | None = None) -> str:
        """Add one event; its id."""
        event_id = event_id or compute_event_id(event)
        self.events[event_id] = event
        return event_id

    def extremities(self) -> list[str]:
        """The forward extremities, as state.md §2 orders them for ``prev_events``."""
        parents = {p for event in self.events.values() for p in event["prev_events"]}
        tips = [eid for eid in self.events if eid not in parents]
        tips.sort(key=lambda eid: (self.events[eid]["depth"], eid), reverse=True)
        return tips[:20]

    def next_depth(self) -> int:
        """``depth`` of an event on the extremities: one more than the deepest of them."""
        return 1 + int(max(self.events[eid]["depth"] for eid in self.extremities()))

    def ordered(self) -> list[str]:
        """Every event id, parents first: by ``(depth, event_id)`` (state.md §3)."""
        return sorted(self.events, key=lambda eid: (self.events[eid]["depth"], eid))

    def holder(self, register: tuple[str, str]) -> str | None:
        """The event holding a register: its latest writer by ``(depth, event_id)``.

        Enough for ``auth_events`` (rooms.md §6), which commit to the state without
        deciding it; the suite never builds on a contested register.
        """
        writers = [
            (event["depth"], eid)
            for eid, event in self.events.items()
            if (event["type"], event.get("state_key")) == register
        ]
        return max(writers)[1] if writers else None


class FakePeer:
    """One link to the node under test, from a fake server: see the module's docstring."""

    def __init__(
        self,
        ws: LinkSocket,
        node_name: str,
        name: str | None = None,
        *,
        key: nacl.signing.SigningKey | None = None,
    ) -> None:
        self.ws = ws
        self.node_name = node_name
        """The node's server name: who the fake peer asks for in ``link_hello``."""
        self.name = name or fake_server_name()
        self.key = key or nacl.signing.SigningKey(os.urandom(32))
        """The fake server's one signing key: fresh, unless a fixed server name needs the
        same key every time (the node pins the first key object it sees, §1.2)."""
        self.nonce = encode_nonce(os.urandom(32))
        self.node_nonce: str | None = None
        self.node_keys: ServerKeys | None = None
        """The node's key object from its ``link_hello`` answer, once checked."""
        self.requests: list[dict[str, Any]] = []
        """Every request the node sent on this link, in order."""
        self.pdus: dict[str, dict[str, Any]] = {}
        """Every event the node sent in a ``txn``, by id."""
        self.rooms: dict[str, RoomHistory] = {}
        """The rooms this fake server holds, whose history it gives the node (§5)."""
        self._ids = itertools.count(1)

    # --- frames -----------------------------------------------------------------------

    async def send(self, frame: dict[str, Any]) -> None:
        """Send one frame as it is."""
        await self.ws.send_text(json.dumps(frame, ensure_ascii=False))

    async def _frame(self) -> dict[str, Any]:
        message = await self.ws.receive()
        if isinstance(message, Closed):
            raise LinkClosedError(message)
        assert isinstance(message, Text), f"expected a text frame, got {message!r}"
        frame: dict[str, Any] = json.loads(message.data)
        return frame

    async def request(self, op: str, **params: Any) -> dict[str, Any]:
        """Send a request; its answer frame. The node's requests meanwhile are answered."""
        request_id = next(self._ids)
        await self.send({"id": request_id, "op": op, "params": params})
        while True:
            frame = await self._frame()
            if "op" in frame:
                await self._answer(frame)
            elif frame.get("id") == request_id:
                return frame
            else:
                raise AssertionError(f"a frame that answers no request of ours: {frame!r}")

    call = request

    async def result(self, op: str, **params: Any) -> dict[str, Any]:
        """The result of a request that must succeed."""
        answer = await self.request(op, **params)
        assert "result" in answer, f"{op}: {answer!r}"
        result: dict[str, Any] = answer["result"]
        return result

    async def error(self, op: str, **params: Any) -> str:
        """The error code of a request that must fail."""
        answer = await self.request(op, **params)
        assert "error" in answer, f"{op}: {answer!r}"
        code: str = answer["error"]["code"]
        return code

    async def next_request(self) -> dict[str, Any]:
        """Wait for the node's next request, answer it and return it."""
        frame = await self._frame()
        assert "op" in frame, f"a frame that answers no request of ours: {frame!r}"
        await self._answer(frame)
        return frame

    async def close_code(self) -> int:
        """Wait for the node to close the link, answering its requests; the close code."""
        try:
            while True:
                await self.next_request()
        except LinkClosedError as closed:
            return closed.code

    async def serve(self) -> None:
        """Answer the node's requests until the link closes (run it in a nursery)."""
        await self.close_code()

    async def _answer(self, frame: dict[str, Any]) -> None:
        """Answer one request of the node (notices, if any, need no answer)."""
        self.requests.append(frame)
        if "id" in frame:
            await self.send(self.answer_for(frame))

    def answer_for(self, frame: dict[str, Any]) -> dict[str, Any]:
        """The answer frame to one request of the node: see the module's docstring."""
        op, params = frame["op"], frame.get("params", {})
        if op in ("ping", "to_device"):
            return {"id": frame["id"], "result": {}}
        if op == "txn":
            outcomes = []
            for pdu in params.get("pdus", []):
                event_id = compute_event_id(pdu)
                self.pdus[event_id] = pdu
                outcomes.append({"event_id": event_id, "outcome": "accepted"})
            return {"id": frame["id"], "result": {"pdus": outcomes}}
        if op in ("backfill", "get_missing") and params.get("room_id") in self.rooms:
            room = self.rooms[params["room_id"]]
            ids = room.ordered() if op == "backfill" else _walk_back(room, params)
            events = [room.events[eid] for eid in ids]
            result: dict[str, Any] = {"events": events, "keys": [self.key_object()]}
            if op == "backfill":
                result["next"] = None
            return {"id": frame["id"], "result": result}
        error = {"code": "not_found", "message": "the fake peer holds no such room"}
        return {"id": frame["id"], "error": error}

    # --- §2.2 the handshake -----------------------------------------------------------

    def key_object(self, *, ts: int | None = None) -> dict[str, Any]:
        """The fake server's key object (§1.1), signed by its key."""
        return build_key_object(self.name, now_ms() if ts is None else ts, [self.key], [])

    def roles(self) -> LinkRoles:
        """This link's names and nonces, once the node answered ``link_hello``."""
        assert self.node_nonce is not None, "link_hello was not answered"
        return LinkRoles(self.name, self.node_name, self.nonce, self.node_nonce)

    def proof(
        self,
        *,
        ts: int | None = None,
        key: nacl.signing.SigningKey | None = None,
        roles: LinkRoles | None = None,
    ) -> dict[str, Any]:
        """The fake server's link proof (§2.2); each argument can make it wrong."""
        return make_proof(
            roles or self.roles(), self.name, now_ms() if ts is None else ts, key or self.key
        )

    async def hello(
        self, *, responder: str | None = None, keys: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send ``link_hello``; its answer frame. A result's nonce is kept for the proof."""
        answer = await self.request(
            "link_hello",
            server_name=self.name,
            responder=self.node_name if responder is None else responder,
            nonce=self.nonce,
            keys=self.key_object() if keys is None else keys,
        )
        if "result" in answer and isinstance(answer["result"].get("nonce"), str):
            self.node_nonce = answer["result"]["nonce"]
        return answer

    def check_hello_result(self, result: dict[str, Any]) -> None:
        """What the initiator checks of the node's answer (§2.2): its name, its key object
        and its proof, signed by the node for this link."""
        assert result.keys() == {"server_name", "nonce", "keys", "proof"}, result
        assert result["server_name"] == self.node_name
        keys = parse_key_object(result["keys"])
        assert keys.server_name == self.node_name
        check_proof(result["proof"], self.roles(), self.node_name, keys.link_key, now_ms())
        self.node_keys = keys

    async def authenticate(self) -> None:
        """The whole handshake: ``link_hello``, the node's answer checked, ``link_prove``."""
        hello = await self.hello()
        assert "result" in hello, hello
        self.check_hello_result(hello["result"])
        assert await self.result("link_prove", proof=self.proof()) == {}

    # --- events -----------------------------------------------------------------------

    def user(self, label: str = "mallory") -> str:
        """A user id of the fake server."""
        return f"@{label}:{self.name}"

    def event(
        self,
        sender: str | None = None,
        room_id: str = NO_ROOM,
        *,
        event_type: str = "message",
        content: dict[str, Any] | None = None,
        state_key: str | None = None,
        prev_events: list[str] | None = None,
        auth_events: list[str] | None = None,
        depth: int = 1,
        key: nacl.signing.SigningKey | None = None,
        ts: int | None = None,
    ) -> tuple[dict[str, Any], str]:
        """An event signed as the fake server (by ``key``, its own by default); its id.

        By default a message of the fake server's user in a room no node holds, whose one
        parent no node has, made now (``ts``).
        """
        event = build_event(
            event_type=event_type,
            sender=sender or self.user(),
            room_id=None if event_type == "create" else room_id,
            content={"body": "hello", "msgtype": "text"} if content is None else content,
            prev_events=[NO_EVENT] if prev_events is None else prev_events,
            auth_events=auth_events or [],
            depth=depth,
            origin_server_ts=now_ms() if ts is None else ts,
            state_key=state_key,
        )
        key = key or self.key
        return sign_event_with_id(event, self.name, derive_key_id(key.verify_key), key)

    def event_in(
        self, room: RoomHistory, *, sender: str | None = None, **fields: Any
    ) -> tuple[dict[str, Any], str]:
        """An event on the room's forward extremities, with the ``auth_events`` of rooms.md §6."""
        sender = sender or self.user()
        draft = {"type": fields.get("event_type", "message"), "sender": sender, **fields}
        draft["content"] = fields.get("content", {"body": "hello", "msgtype": "text"})
        auth = select_auth_events(draft, room.holder)
        return self.event(
            room_id=room.room_id,
            sender=sender,
            prev_events=room.extremities(),
            auth_events=auth,
            depth=room.next_depth(),
            **fields,
        )

    def create_room(self, creator: str | None = None) -> RoomHistory:
        """A room of the fake server, invite-only, that the node does not hold yet: its
        ``create``, the creator's ``join`` and its ``join_rules`` (client.md §3's order).
        The fake peer gives its history to the node when asked (§5)."""
        creator = creator or self.user()
        create, create_id = self.event(
            creator,
            event_type="create",
            state_key="",
            content={"creator": creator, "room_version": "1"},
            prev_events=[],
            depth=0,
        )
        room = RoomHistory("!" + create_id[1:])
        room.add(create, create_id)
        for event_type, state_key, content in (
            ("member", creator, {"membership": "join"}),
            ("join_rules", "", {"join_rule": "invite"}),
        ):
            room.add(
                *self.event_in(
                    room,
                    sender=creator,
                    event_type=event_type,
                    state_key=state_key,
                    content=content,
                )
            )
        self.rooms[room.room_id] = room
        return room

    async def txn(self, *pdus: dict[str, Any], **extra: Any) -> list[dict[str, Any]]:
        """Send the events in one ``txn`` (``keys`` among ``extra``); the node's outcomes."""
        result = await self.result(
            "txn", txn_id=f"t{next(self._ids)}", pdus=list(pdus), edus=[], **extra
        )
        outcomes: list[dict[str, Any]] = result["pdus"]
        assert len(outcomes) == len(pdus), result
        return outcomes

    async def history(self, room_id: str, *, limit: int = 100) -> RoomHistory:
        """The room's whole history, paged with ``backfill`` (§5)."""
        room = RoomHistory(room_id)
        token: str | None = None
        while True:
            params: dict[str, Any] = {"room_id": room_id, "limit": limit}
            if token is not None:
                params["from"] = token
            page = await self.result("backfill", **params)
            for event in page["events"]:
                room.add(event)
            token = page["next"]
            if token is None:
                return room

    async def join(self, room: RoomHistory, user: str | None = None) -> tuple[str, str]:
        """Join a public room as a user of the fake server; (the join's id, its outcome)."""
        user = user or self.user()
        join, join_id = self.event_in(
            room, sender=user, event_type="member", state_key=user, content={"membership": "join"}
        )
        [outcome] = await self.txn(join)
        assert outcome.get("event_id") == join_id, outcome
        if outcome["outcome"] in ("accepted", "rejected"):
            room.add(join, join_id)
        return join_id, str(outcome["outcome"])


def _walk_back(room: RoomHistory, params: dict[str, Any]) -> list[str]:
    """``get_missing`` (§5): breadth-first back from ``latest``, stopping at ``earliest``."""
    earliest = set(params["earliest"])
    taken: list[str] = []
    queue = list(params["latest"])
    while queue and len(taken) < params["limit"]:
        event_id = queue.pop(0)
        if event_id in taken or event_id in earliest or event_id not in room.events:
            continue
        taken.append(event_id)
        queue.extend(room.events[event_id]["prev_events"])
    return taken


@asynccontextmanager
async def open_fake_peer(
    node_url: str, node_name: str, name: str | None = None
) -> AsyncIterator[FakePeer]:
    """A fake peer connected to the node's ``/federation`` endpoint (not yet authenticated)."""
    async with await connect(node_url + "/federation", subprotocols=(SUBPROTOCOL,)) as ws:
        yield FakePeer(ws, node_name, name)


# --- shared by the federation test modules ---------------------------------------------

TIMEOUT = 10


def other_key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(os.urandom(32))


async def assert_serving(node_url: str, server_name: str) -> None:
    """The node still opens, authenticates and serves a new link."""
    async with open_fake_peer(node_url, server_name) as peer:
        await peer.authenticate()
        assert await peer.result("ping") == {}


@asynccontextmanager
async def authenticated(node_url: str, server_name: str) -> AsyncIterator[FakePeer]:
    async with open_fake_peer(node_url, server_name) as peer:
        await peer.authenticate()
        yield peer


@asynccontextmanager
async def room_creator(
    node_url: str, token: str, *, public: bool
) -> AsyncIterator[tuple[Session, str]]:
    """A user of the node and a room they created (public or invite-only)."""
    async with session(node_url) as creator:
        await creator.register(token, "fed")
        room_id = (await creator.result("create_room", name="federation", public=public))["room_id"]
        yield creator, room_id


def parents_first(room: RoomHistory, order: list[str]) -> bool:
    seen: set[str] = set()
    for event_id in order:
        if any(parent not in seen for parent in room.events[event_id]["prev_events"]):
            return False
        seen.add(event_id)
    return True
