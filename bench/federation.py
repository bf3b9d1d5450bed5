"""Federation between two nodes (the federation issue's targets), as JSON rows.

Targets on the reference 2-core machine:
(1) throughput: events that clients create on node a, in a room shared with a user of node b,
    reach b at >= 3,000 events/s (from the first send until b stored them all);
(2) catch-up: b is down while a creates 10,000 events in the shared room; b holds all of
    them <= 5 s after it restarts;
(3) remote join: a user of b joins a room of a with 1,000 members and 10,000 events, with
    ``via`` a.test, in <= 2 s.

Both nodes run in this process (``node.app.serve_node``) on loopback, each mapping the other's
server name to its port with ``[peers]``; ports are chosen before the nodes start so that a
restarted node comes back where its peer expects it. Clients speak the client protocol with
the client library's :class:`client.link.Link`. ``serve_node`` reports only its port, so the
benchmark records the ``node.app.Node`` each start builds (:func:`_recording`): through it
it reads the outbox's ``sent_events``, counts what a node stored, and sets up big rooms with
the room service directly (setup is not measured). Both nodes and the clients share one
event loop, so a row's ``process_cpu_share`` (this process's CPU time over the wall time)
near 1.0 says that loop was the limit; the databases' threads add to it.

Run: ``python -m bench.federation``, or name scenarios:
``python -m bench.federation throughput catch_up remote_join``.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import trio

import node.app
from bench.common import emit
from client.link import Link, NodeAddress, open_link
from node.config import NodeConfig
from node.services.rooms import RoomService
from protocol import JsonObject, Notice

PASSWORD = "bench password"
TIMEOUT_S = 120.0
"""Every wait of a scenario gives up after this long: a missed target still gives a row."""


_BUILT: dict[str, node.app.Node] = {}
"""Each node started in this process, by server name (the latest start)."""


@dataclass
class _RecordedNode(node.app.Node):
    """A node that remembers itself in :data:`_BUILT` once ``serve_node`` has built it."""

    def __post_init__(self) -> None:
        _BUILT[self.server_name] = self


@contextlib.contextmanager
def _recording() -> Iterator[None]:
    """Have ``serve_node`` build :class:`_RecordedNode` while the block runs."""
    namespace = vars(node.app)
    original = namespace["Node"]
    namespace["Node"] = _RecordedNode
    try:
        yield
    finally:
        namespace["Node"] = original


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class _Node:
    """One node of the pair: its settings, and the scope it runs in while up."""

    config: NodeConfig
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    stopped: trio.Event = field(default_factory=trio.Event)

    @property
    def name(self) -> str:
        return self.config.server_name

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.config.port}/client"

    @property
    def running(self) -> node.app.Node:
        """What the node is made of (its latest start)."""
        return _BUILT[self.name]

    async def start(self, nursery: trio.Nursery) -> None:
        """Start (or restart) the node; return once it listens."""
        self.scope = trio.CancelScope()
        self.stopped = trio.Event()

        async def serve(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                with self.scope:
                    await node.app.serve_node(self.config, task_status=task_status)
            finally:
                self.stopped.set()

        await nursery.start(serve)

    async def stop(self) -> None:
        """Stop the node as a shutdown does (its links close) and wait until it is down."""
        self.scope.cancel()
        await self.stopped.wait()

    async def stored(self, room_id: str) -> int:
        """How many events of the room this node has stored."""
        count: int = await self.running.db.read(
            lambda conn: conn.execute(
                "SELECT COUNT(*) FROM events WHERE room_id = ?", (room_id,)
            ).fetchone()[0]
        )
        return count

    async def queued(self) -> int:
        """How many events wait in this node's outbox."""
        count: int = await self.running.db.read(
            lambda conn: conn.execute("SELECT COUNT(*) FROM fed_outbox").fetchone()[0]
        )
        return count


def _pair(data: Path) -> tuple[_Node, _Node]:
    """Nodes a.test and b.test, each knowing the other's (fixed) loopback port."""
    ports = {"a.test": _free_port(), "b.test": _free_port()}
    nodes = []
    for name, port in ports.items():
        config = NodeConfig(
            host="127.0.0.1",
            port=port,
            data_dir=data / name,
            server_name=name,
            password_cost="min",
            registration_mode="open",
            requests_per_second=1_000_000.0,
            request_burst=1_000_000,
            peers={other: f"127.0.0.1:{p}" for other, p in ports.items() if other != name},
        )
        nodes.append(_Node(config))
    return nodes[0], nodes[1]


async def _ignore(notice: Notice) -> None:
    """Clients here never sync: nothing the node pushes matters."""


@contextlib.asynccontextmanager
async def _user(server: _Node, username: str) -> AsyncIterator[Link]:
    """A new account on ``server``, signed in on one connection."""
    async with open_link(NodeAddress.parse(server.url), _ignore) as link:
        await link.request("register", {"username": username, "password": PASSWORD})
        yield link


async def _until(
    check: Callable[[], Awaitable[bool]], *, interval: float = 0.005, timeout: float = TIMEOUT_S
) -> bool:
    """Poll ``check`` until it holds (True) or ``timeout`` passes (False)."""
    with trio.move_on_after(timeout):
        while not await check():
            await trio.sleep(interval)
        return True
    return False


async def _shared_room(a: _Node, b: _Node, alice: Link, bob: Link) -> str:
    """A public room of alice (on a) that bob (on b) joined; returns once a sent b all."""
    room_id: str = (await alice.request("create_room", {"public": True}))["room_id"]
    await bob.request("join", {"room_id": room_id, "via": [a.name]})
    bob_id = f"@bob:{b.name}"

    async def a_saw_join() -> bool:
        return a.running.services.rooms.rooms[room_id].memberships().get(bob_id) == "join"

    async def drained() -> bool:
        return await a.queued() == 0 and await b.queued() == 0

    if not (await _until(a_saw_join) and await _until(drained)):
        raise RuntimeError("bob's join did not reach node a")
    return room_id


async def throughput(a: _Node, b: _Node, *, events: int = 10_000, senders: int = 8) -> None:
    """(1): ``senders`` clients of a send ``events`` messages as fast as a accepts them."""
    async with contextlib.AsyncExitStack() as stack:
        alice = await stack.enter_async_context(_user(a, "alice"))
        bob = await stack.enter_async_context(_user(b, "bob"))
        room_id = await _shared_room(a, b, alice, bob)
        conns = [await stack.enter_async_context(_user(a, f"s{i}")) for i in range(senders)]
        for conn in conns:
            await conn.request("join", {"room_id": room_id})
        await _until(lambda: _settled(a, b, room_id))
        before = await b.stored(room_id)
        sent_before = a.running.federation.outbox.sent_events

        async def send(conn: Link, index: int) -> None:
            for number in range(index, events, senders):
                content: JsonObject = {"msgtype": "text", "body": f"message {number}"}
                params = {"room_id": room_id, "txn_id": f"t{number}", "content": content}
                await conn.request("send", params)

        async def arrived() -> bool:
            return await b.stored(room_id) - before >= events

        cpu_before = time.process_time()
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for index, conn in enumerate(conns):
                nursery.start_soon(send, conn, index)
        send_done = time.perf_counter() - start
        complete = await _until(arrived)
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu_before
        received = await b.stored(room_id) - before
        await _until(lambda: _settled(a, b, room_id))  # the last answer is counted after it
    emit(
        {
            "bench": "federation_throughput",
            "events": events,
            "senders": senders,
            "complete": complete,
            "received": received,
            "seconds": round(seconds, 3),
            "events_per_s": round(received / seconds),
            "a_accept_seconds": round(send_done, 3),
            "a_accept_events_per_s": round(events / send_done),
            "outbox_sent_events": a.running.federation.outbox.sent_events - sent_before,
            "process_cpu_share": round(cpu / seconds, 2),
            "target": 3000,
        }
    )


async def _settled(a: _Node, b: _Node, room_id: str) -> bool:
    """Both outboxes are empty and both nodes hold the same number of the room's events."""
    return (
        await a.queued() == 0
        and await b.queued() == 0
        and await a.stored(room_id) == await b.stored(room_id)
    )


async def _fill(rooms: RoomService, room_id: str, senders: list[str], count: int) -> None:
    """``count`` messages in the room through the room service, from ``senders`` in turn.

    Sent by a few tasks at once so that the database's writer commits them in groups.
    """

    async def fill(offset: int, tasks: int) -> None:
        for number in range(offset, count, tasks):
            content: JsonObject = {"msgtype": "text", "body": f"filler {number}"}
            sender = senders[number % len(senders)]
            await rooms.send(sender, "bench", room_id, "message", content)

    async with trio.open_nursery() as nursery:
        for offset in range(16):
            nursery.start_soon(fill, offset, 16)


async def catch_up(a: _Node, b: _Node, nursery: trio.Nursery, *, events: int = 10_000) -> None:
    """(2): b is down while a creates ``events`` events; time from b's restart to all held."""
    async with _user(a, "alice") as alice, _user(b, "bob") as bob:
        room_id = await _shared_room(a, b, alice, bob)
    before = await b.stored(room_id)
    await b.stop()
    await _fill(a.running.services.rooms, room_id, [f"@alice:{a.name}"], events)
    if await a.queued() != events:
        raise RuntimeError("a did not queue every event for b")
    sent_before = a.running.federation.outbox.sent_events

    async def arrived() -> bool:
        return await b.stored(room_id) - before >= events

    cpu_before = time.process_time()
    start = time.perf_counter()
    await b.start(nursery)
    listening = time.perf_counter() - start
    complete = await _until(arrived)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_before
    received = await b.stored(room_id) - before
    await _until(lambda: _settled(a, b, room_id))  # the last answer is counted after it
    emit(
        {
            "bench": "federation_catch_up",
            "events": events,
            "complete": complete,
            "received": received,
            "seconds": round(seconds, 3),
            "b_listening_seconds": round(listening, 3),
            "events_per_s": round(received / seconds),
            "outbox_sent_events": a.running.federation.outbox.sent_events - sent_before,
            "process_cpu_share": round(cpu / seconds, 2),
            "target_seconds": 5,
        }
    )


async def remote_join(a: _Node, b: _Node, *, members: int = 1_000, events: int = 10_000) -> None:
    """(3): bob of b joins a room of a with ``members`` members and ``events`` events."""
    accounts, rooms = a.running.accounts, a.running.services.rooms
    users = [await accounts.create_user(f"m{i}", PASSWORD) for i in range(members)]
    room_id = await rooms.create_room(users[0], name="big", public=True)
    for user_id in users[1:]:
        await rooms.send(
            user_id, "bench", room_id, "member", {"membership": "join"}, state_key=user_id
        )
    await _fill(rooms, room_id, users, events - await a.stored(room_id))
    held = await a.stored(room_id)
    async with _user(b, "bob") as bob:
        cpu_before = time.process_time()
        start = time.perf_counter()
        await bob.request("join", {"room_id": room_id, "via": [a.name]})
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu_before
    emit(
        {
            "bench": "federation_remote_join",
            "members": members,
            "events": held,
            "b_stored": await b.stored(room_id),
            "seconds": round(seconds, 3),
            "events_per_s": round(held / seconds),
            "process_cpu_share": round(cpu / seconds, 2),
            "target_seconds": 2,
        }
    )


Scenario = Callable[[_Node, _Node, trio.Nursery], Awaitable[None]]


def _run(scenario: Scenario) -> None:
    """Run ``scenario`` on a fresh pair of nodes in a temporary folder."""

    async def main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            a, b = _pair(Path(tmp))
            async with trio.open_nursery() as nursery:
                await a.start(nursery)
                await b.start(nursery)
                with trio.fail_after(3 * TIMEOUT_S):
                    await scenario(a, b, nursery)
                nursery.cancel_scope.cancel()

    with _recording():
        trio.run(main)


SCENARIOS: dict[str, Scenario] = {
    "throughput": lambda a, b, _: throughput(a, b),
    "catch_up": catch_up,
    "remote_join": lambda a, b, _: remote_join(a, b),
}


def main(names: list[str] | None = None) -> None:
    """The named federation benchmarks (all by default), each on a fresh pair of nodes."""
    for name in names or list(SCENARIOS):
        _run(SCENARIOS[name])


if __name__ == "__main__":
    main(sys.argv[1:])
