"""Several real nodes on loopback for federation tests, each reached through a fault proxy.

Every node's ``[peers]`` table sends its links to the other nodes' proxies, so a test can
cut, stall or delay the traffic into any node (``tests.faultproxy``). Proxies start first
— their ports go into the nodes' settings — and learn their node's port once it listens; a
restarted node gets a new port and its proxy follows.

What a node holds is read from its storage (:meth:`Cluster.stored_room`), the way the node
itself rebuilds its rooms at start; what its users see is what a :class:`Device` receives.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from node.app import DATABASE_FILE_NAME, serve_node
from node.config import NodeConfig
from protocol.rooms import Room
from tests.faultproxy import FaultProxy
from tests.node.chat_client import is_membership, items_until
from tests.node.session_client import PASSWORD, Client
from tests.node.wsclient import connect, receive, send


@dataclass
class Member:
    """One node of a cluster: its settings, its proxy and the scope it runs in."""

    name: str
    config: NodeConfig
    proxy: FaultProxy
    port: int = 0
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    stopped: trio.Event = field(default_factory=trio.Event)


class Cluster:
    """Nodes named ``<letter>.test``; start, stop and restart them."""

    def __init__(self, nursery: trio.Nursery, tmp_path: Path) -> None:
        self._nursery = nursery
        self._tmp_path = tmp_path
        self.members: dict[str, Member] = {}

    def __getitem__(self, name: str) -> Member:
        return self.members[name]

    async def start(self, *letters: str, **settings: Any) -> None:
        """Start a node per letter (``a`` → server name ``a.test``), all linked by proxies."""
        proxies: dict[str, FaultProxy] = {}
        for letter in letters:
            proxy = FaultProxy("127.0.0.1", 0)
            await self._nursery.start(proxy.serve)
            proxies[letter] = proxy
        for letter in letters:
            peers = {
                f"{other}.test": f"127.0.0.1:{proxy.port}"
                for other, proxy in proxies.items()
                if other != letter
            }
            config = NodeConfig(
                host="127.0.0.1",
                port=0,
                data_dir=self._tmp_path / letter,
                server_name=f"{letter}.test",
                password_cost="min",
                registration_mode="open",
                peers=peers,
                **settings,
            )
            self.members[letter] = Member(letter, config, proxies[letter])
        for letter in letters:
            await self.run(letter)

    async def run(self, letter: str) -> None:
        """Start (or restart) one node and point its proxy at it."""
        member = self.members[letter]
        member.scope = trio.CancelScope()
        member.stopped = trio.Event()

        async def serve(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                with member.scope:
                    await serve_node(member.config, task_status=task_status)
            finally:
                member.stopped.set()

        member.port = await self._nursery.start(serve)
        member.proxy.target_port = member.port

    async def stop(self, letter: str) -> None:
        """Stop one node as a shutdown does (its links close); wait until it is down."""
        member = self.members[letter]
        member.proxy.target_port = 0
        member.proxy.cut()
        member.scope.cancel()
        await member.stopped.wait()
        member.proxy.heal()

    async def stored_room(self, letter: str, room_id: str) -> StoredRoom | None:
        """What node ``letter`` has stored of ``room_id`` (``None`` if it does not hold it).

        Read with a connection of our own; the node's writer commits whole transactions,
        so the rows are a state the node was in.
        """
        path = self.members[letter].config.data_dir / DATABASE_FILE_NAME
        return await trio.to_thread.run_sync(_read_room, path, room_id)


@dataclass(frozen=True)
class StoredRoom:
    """A room's rows in one node's ``events`` table: every event, in the order the node
    stored them (its delivery order, state.md §3), and the verdict it stored for each."""

    order: list[str]
    events: dict[str, dict[str, Any]]
    verdicts: dict[str, str | None]
    """Event id → ``None`` if accepted, else the reason code of the rejection."""

    def engine(self) -> Room:
        """A room engine fed the stored events in stored order, as a restarted node does."""
        create_id = self.order[0]
        room = Room(create_id, self.events[create_id])
        for event_id in self.order[1:]:
            room.add({event_id: self.events[event_id]})
        return room


def _read_room(path: Path, room_id: str) -> StoredRoom | None:
    conn = sqlite3.connect(path)
    try:
        held = conn.execute("SELECT 1 FROM rooms WHERE room_id = ?", (room_id,)).fetchone()
        rows = conn.execute(
            "SELECT event_id, accepted, reason, json FROM events WHERE room_id = ? "
            "ORDER BY position",
            (room_id,),
        ).fetchall()
    finally:
        conn.close()
    if held is None:
        return None
    return StoredRoom(
        order=[row[0] for row in rows],
        events={row[0]: json.loads(row[3]) for row in rows},
        verdicts={row[0]: None if row[1] else row[2] for row in rows},
    )


class DeviceGoneError(Exception):
    """The device's connection closed before its request was answered."""


class Device:
    """A user's device that keeps syncing, across its node's restarts (spec/client.md §5).

    A reader task takes every frame: answers go to the request waiting for them, and the
    items of ``sync_batch`` notices are kept in arrival order. After a reconnect the device
    authenticates with its token and syncs from the last position it processed, as a real
    client resumes, so an item it receives twice was sent twice.
    """

    def __init__(self, nursery: trio.Nursery, name: str, letter: str) -> None:
        self._nursery = nursery
        self.name = name
        self.user_id = f"@{name}:{letter}.test"
        self.items: list[dict[str, Any]] = []
        """Every ``event`` and ``retraction`` item received, in order."""
        self.position = 0
        """The last stream position processed (the ``since`` of the next sync)."""
        self._token: str | None = None
        self._ws: WebSocketConnection | None = None
        self._ids = itertools.count(1)
        self._answers: dict[int, list[dict[str, Any]]] = {}
        self._changed = trio.Event()

    @property
    def connected(self) -> bool:
        """True while the device has an open connection to its node."""
        return self._ws is not None

    async def register(self, port: int) -> None:
        """Connect, register the user (this device is its first) and start syncing."""
        await self._nursery.start(self._read, port)
        result = await self.result("register", username=self.name, password=PASSWORD)
        self._token = result["access_token"]
        await self.result("sync")

    async def reconnect(self, port: int) -> None:
        """Connect again as the same device and resume from the last position processed."""
        assert self._token is not None, "register first"
        assert self._ws is None, "still connected"
        await self._nursery.start(self._read, port)
        await self.result("authenticate", access_token=self._token)
        await self.result("sync", since=self.position)

    async def request(self, op: str, **params: Any) -> dict[str, Any]:
        """Send ``op`` and return its answer frame; :class:`DeviceGoneError` if the link drops."""
        ws = self._ws
        if ws is None:
            raise DeviceGoneError(f"{self.user_id} is not connected")
        request_id = next(self._ids)
        slot = self._answers[request_id] = []
        try:
            await send(ws, {"id": request_id, "op": op, "params": params})
            await self.wait_until(lambda: bool(slot) or self._ws is not ws)
        except ConnectionClosed as exc:
            raise DeviceGoneError(f"{self.user_id}: {op} was not answered") from exc
        finally:
            del self._answers[request_id]
        if not slot:
            raise DeviceGoneError(f"{self.user_id}: {op} was not answered")
        return slot[0]

    async def result(self, op: str, **params: Any) -> dict[str, Any]:
        """The result of ``op``, which must succeed."""
        answer = await self.request(op, **params)
        assert "result" in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds; checked after every frame and disconnect."""
        while not condition():
            await self._changed.wait()

    def events(self, room_id: str) -> list[dict[str, Any]]:
        """The events received of ``room_id``, in order (client form)."""
        return [
            item["event"]
            for item in self.items
            if item["kind"] == "event" and item["room_id"] == room_id
        ]

    async def _read(self, port: int, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            async with connect(port) as ws:
                self._ws = ws
                task_status.started()
                try:
                    while True:
                        self._take(await receive(ws))
                except ConnectionClosed:
                    pass  # the node went away; ``reconnect`` starts a new reader
        finally:
            self._ws = None
            self._pulse()

    def _take(self, frame: dict[str, Any]) -> None:
        if "id" in frame:
            slot = self._answers.get(frame["id"])
            if slot is not None:
                slot.append(frame)
        elif frame.get("op") == "sync_batch":
            batch = frame["params"]
            self.items += [i for i in batch["items"] if i["kind"] in ("event", "retraction")]
            self.position = batch["position"]
        self._pulse()

    def _pulse(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


async def shared_room(alice: Client, bob: Client, bob_id: str = "@bob:b.test") -> str:
    """A room ``alice`` creates with ``bob`` (of another node) invited and joined, both
    devices syncing: its id, once each side saw the other's membership."""
    await alice.result("sync")
    await bob.result("sync")
    room_id: str = (await alice.result("create_room", name="r", invite=[bob_id]))["room_id"]
    await items_until(bob, is_membership(bob_id, "invite"))
    await bob.result("join", room_id=room_id)
    await items_until(alice, is_membership(bob_id, "join"))
    return room_id
