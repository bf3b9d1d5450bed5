"""Federation between two nodes (the federation issue's targets), as JSON rows.

Targets on the reference 2-core machine:
(1) throughput: in a 20-member room split across the nodes (10 users on each), every
    member sends; >= 3,000 events/s cross the link (from the first send until each node
    holds every event of the other's). A second row sends from a only (8 senders on a, one
    member on b), to show one direction alone;
(2) catch-up: b is down while a creates 10,000 events in the shared room; b holds all of
    them <= 5 s after it restarts (counted from starting its process);
(3) remote join: a user of b joins a room of a with 1,000 members and 10,000 events, with
    ``via`` a.test, in <= 2 s.

Each node is its own ``kith serve`` process on loopback (:mod:`bench.federation_nodes`), as
real nodes are; the clients run in this process and speak the client protocol with the
client library's :class:`client.link.Link`. What b holds is counted in its database over a
read-only connection every 20 ms. The big room of (3) is made by running a in this process
from its data folder before its process starts (setup is not measured).

Besides the target, each row gives the CPU seconds that a's process, b's process and this
one (the clients) spent in the measured window: one near ``seconds`` is the process that was
the limit (a node is one Python thread's worth of work; the machine has two cores).

Run: ``python -m bench.federation``, or name scenarios:
``python -m bench.federation throughput throughput_one_way catch_up remote_join``.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import trio

from bench.common import emit
from bench.federation_nodes import POLL_S, NodeProcess, Window, pair
from client.link import Link, NodeAddress, open_link
from node.services.rooms import RoomService
from protocol import JsonObject, Notice

PASSWORD = "bench password"
TIMEOUT_S = 60.0
"""Every wait of a scenario gives up after this long: a missed target still gives a row."""
SENDERS = 8


async def _ignore(notice: Notice) -> None:
    """Clients here never sync: nothing the node pushes matters."""


@contextlib.asynccontextmanager
async def _user(server: NodeProcess, username: str) -> AsyncIterator[Link]:
    """A new account on ``server``, signed in on one connection."""
    async with open_link(NodeAddress.parse(server.url), _ignore) as link:
        await link.request("register", {"username": username, "password": PASSWORD})
        yield link


async def _until(check: Callable[[], bool], *, timeout: float = TIMEOUT_S) -> bool:
    """Poll ``check`` every 20 ms until it holds (True) or ``timeout`` passes (False)."""
    with trio.move_on_after(timeout):
        while not check():
            await trio.sleep(POLL_S)
        return True
    return False


def _settled(a: NodeProcess, b: NodeProcess, room_id: str) -> Callable[[], bool]:
    """Both outboxes are empty and both nodes hold the same number of the room's events."""
    return lambda: a.queued() == 0 and b.queued() == 0 and a.stored(room_id) == b.stored(room_id)


async def _shared_room(
    stack: contextlib.AsyncExitStack, a: NodeProcess, b: NodeProcess
) -> tuple[str, list[Link]]:
    """A public room of a that bob of b joined, and ``SENDERS`` more members of a signed in.

    Returns once both nodes hold the same events and have nothing left to send.
    """
    alice = await stack.enter_async_context(_user(a, "alice"))
    bob = await stack.enter_async_context(_user(b, "bob"))
    room_id: str = (await alice.request("create_room", {"public": True}))["room_id"]
    await bob.request("join", {"room_id": room_id, "via": [a.name]})
    senders = [await stack.enter_async_context(_user(a, f"s{i}")) for i in range(SENDERS)]
    for link in senders:
        await link.request("join", {"room_id": room_id})
    if not await _until(_settled(a, b, room_id)):
        raise RuntimeError("the room's members did not reach both nodes")
    return room_id, senders


async def _send(links: list[Link], room_id: str, events: int, label: str = "") -> None:
    """``events`` messages, sent by the links together, each as soon as its last is accepted."""

    async def send(link: Link, index: int) -> None:
        for number in range(index, events, len(links)):
            content: JsonObject = {"msgtype": "text", "body": f"message {label}{number}"}
            params = {"room_id": room_id, "txn_id": f"t{label}{number}", "content": content}
            await link.request("send", params)

    async with trio.open_nursery() as nursery:
        for index, link in enumerate(links):
            nursery.start_soon(send, link, index)


SPLIT_MEMBERS = 10
"""Members on each node in the split room of (1)."""


async def _split_room(
    stack: contextlib.AsyncExitStack, a: NodeProcess, b: NodeProcess
) -> tuple[str, list[Link], list[Link]]:
    """A public room of a with :data:`SPLIT_MEMBERS` users of each node joined; both
    nodes' members, once both nodes hold the same events and have nothing left to send."""
    on_a = [await stack.enter_async_context(_user(a, f"a{i}")) for i in range(SPLIT_MEMBERS)]
    on_b = [await stack.enter_async_context(_user(b, f"b{i}")) for i in range(SPLIT_MEMBERS)]
    room_id: str = (await on_a[0].request("create_room", {"public": True}))["room_id"]
    for link in on_a[1:]:
        await link.request("join", {"room_id": room_id})
    for link in on_b:
        await link.request("join", {"room_id": room_id, "via": [a.name]})
    if not await _until(_settled(a, b, room_id)):
        raise RuntimeError("the room's members did not reach both nodes")
    return room_id, on_a, on_b


async def throughput(a: NodeProcess, b: NodeProcess, *, events: int = 10_000) -> None:
    """(1): the 20 members of a room split across a and b send ``events`` messages in all,
    as fast as their nodes accept them; done when both nodes hold all of them."""
    await a.start()
    await b.start()
    async with contextlib.AsyncExitStack() as stack:
        room_id, on_a, on_b = await _split_room(stack, a, b)
        before = a.stored(room_id)
        window = Window(a, b)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_send, on_a, room_id, events // 2, "a")
            nursery.start_soon(_send, on_b, room_id, events - events // 2, "b")
        accepted = window.elapsed()
        complete = await _until(
            lambda: a.stored(room_id) - before >= events and b.stored(room_id) - before >= events
        )
        window.close()
        held = min(a.stored(room_id), b.stored(room_id)) - before
    emit(
        {
            "bench": "federation_throughput",
            "room_members": 2 * SPLIT_MEMBERS,
            "events": events,
            "complete": complete,
            "held_by_both": held,
            "seconds": round(window.seconds, 3),
            "events_per_s": round(held / window.seconds),
            "accept_seconds": round(accepted, 3),
            **window.cpu,
            "target_events_per_s": 3000,
            "met": complete and held / window.seconds >= 3000,
        }
    )


async def throughput_one_way(a: NodeProcess, b: NodeProcess, *, events: int = 10_000) -> None:
    """``SENDERS`` clients of a send ``events`` messages as fast as a accepts them."""
    await a.start()
    await b.start()
    async with contextlib.AsyncExitStack() as stack:
        room_id, senders = await _shared_room(stack, a, b)
        before = b.stored(room_id)
        window = Window(a, b)
        await _send(senders, room_id, events)
        accepted = window.elapsed()
        complete = await _until(lambda: b.stored(room_id) - before >= events)
        window.close()
        received = b.stored(room_id) - before
    emit(
        {
            "bench": "federation_throughput_one_way",
            "events": events,
            "senders": SENDERS,
            "complete": complete,
            "received": received,
            "seconds": round(window.seconds, 3),
            "events_per_s": round(received / window.seconds),
            "a_accept_seconds": round(accepted, 3),
            "a_accept_events_per_s": round(events / accepted),
            **window.cpu,
            "target_events_per_s": 3000,
            "met": complete and received / window.seconds >= 3000,
        }
    )


async def catch_up(a: NodeProcess, b: NodeProcess, *, events: int = 10_000) -> None:
    """(2): b is down while a creates ``events`` events; time from b's restart to all held."""
    await a.start()
    await b.start()
    async with contextlib.AsyncExitStack() as stack:
        room_id, senders = await _shared_room(stack, a, b)
        before = b.stored(room_id)
        await b.stop()
        await _send(senders, room_id, events)
    if a.queued() != events:
        raise RuntimeError(f"a queued {a.queued()} events for b, not {events}")
    window = Window(a, b)
    await b.start()
    listening, listening_cpu = window.elapsed(), b.cpu_seconds()
    complete = await _until(lambda: b.stored(room_id) - before >= events)
    window.close()
    received = b.stored(room_id) - before
    emit(
        {
            "bench": "federation_catch_up",
            "events": events,
            "complete": complete,
            "received": received,
            "seconds": round(window.seconds, 3),
            "b_listening_seconds": round(listening, 3),
            "b_listening_cpu_seconds": round(listening_cpu, 2),
            "events_per_s": round(received / window.seconds),
            **window.cpu,
            "target_seconds": 5,
            "met": complete and window.seconds <= 5,
        }
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


async def _big_room(a: NodeProcess, *, members: int, events: int) -> str:
    """A public room on a with ``members`` members and ``events`` events, made in-process."""
    async with a.in_process() as running:
        accounts, rooms = running.accounts, running.services.rooms
        users = [await accounts.create_user(f"m{i}", PASSWORD) for i in range(members)]
        room_id = await rooms.create_room(users[0], name="big", public=True)
        for user_id in users[1:]:
            await rooms.send(
                user_id, "bench", room_id, "member", {"membership": "join"}, state_key=user_id
            )
        held: int = await running.db.read(
            lambda conn: conn.execute(
                "SELECT COUNT(*) FROM events WHERE room_id = ?", (room_id,)
            ).fetchone()[0]
        )
        await _fill(rooms, room_id, users, events - held)
    return room_id


async def remote_join(
    a: NodeProcess, b: NodeProcess, *, members: int = 1_000, events: int = 10_000
) -> None:
    """(3): bob of b joins a room of a with ``members`` members and ``events`` events."""
    room_id = await _big_room(a, members=members, events=events)
    await a.start()
    await b.start()
    held = a.stored(room_id)
    async with _user(b, "bob") as bob:
        window = Window(a, b)
        await bob.request("join", {"room_id": room_id, "via": [a.name]})
        window.close()
    emit(
        {
            "bench": "federation_remote_join",
            "members": members,
            "events": held,
            "b_stored": b.stored(room_id),
            "seconds": round(window.seconds, 3),
            "events_per_s": round(held / window.seconds),
            **window.cpu,
            "target_seconds": 2,
            "met": window.seconds <= 2,
        }
    )


Scenario = Callable[[NodeProcess, NodeProcess], Awaitable[None]]


def _run(scenario: Scenario) -> None:
    """Run ``scenario`` on a fresh pair of nodes in a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        a, b = pair(Path(tmp))

        async def main() -> None:
            with trio.fail_after(5 * TIMEOUT_S):
                await scenario(a, b)
            await a.stop()
            await b.stop()

        try:
            trio.run(main)
        finally:
            a.close()
            b.close()


SCENARIOS: dict[str, Scenario] = {
    "throughput": throughput,
    "throughput_one_way": throughput_one_way,
    "catch_up": catch_up,
    "remote_join": remote_join,
}


def main(names: list[str] | None = None) -> None:
    """The named federation benchmarks (all by default), each on a fresh pair of nodes."""
    for name in names or list(SCENARIOS):
        _run(SCENARIOS[name])


if __name__ == "__main__":
    main(sys.argv[1:])
