"""Staying connected: reconnecting with backoff, resuming the stream after a node restart,
retrying what is safe to retry, detecting a silent connection, and ending the device when
the node no longer knows its token (spec/client.md §1, §4 "Idempotence", §5, §6).

Tests that wait (backoff, heartbeats) run on ``network_clock``: a fake clock that jumps only
when every task has been idle for a while, so seconds pass at once but no round trip is
ever cut short. The jitter comes from a seeded generator, so the delays are the same on
every run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio
import trio.testing

import client
from client.session import MAX_ATTEMPTS
from node.config import NodeConfig
from tests.client.helpers import (
    PASSWORD,
    TIMEOUT,
    NodeRunner,
    bodies,
    caught_up,
    is_message,
    seeded_backoff,
    signed_up,
    updates_until,
)
from tests.client.proxy import Proxy

ALICE = "@alice:localhost"
BOB = "@bob:localhost"
FAST = {"backoff": seeded_backoff(initial=0.01, maximum=0.05), "heartbeat_interval": 3600.0}
"""Session options for real-clock tests: quick retries, no heartbeats in the way."""


def _reconnecting(update: client.Update) -> bool:
    return isinstance(update, client.Reconnecting)


async def _proxy(nursery: trio.Nursery, node: NodeRunner) -> Proxy:
    proxy = Proxy(node.port)
    await nursery.start(proxy.serve)
    return proxy


async def test_after_a_node_restart_the_stream_resumes_nothing_lost_nothing_twice(
    nursery: trio.Nursery,
    config: NodeConfig,
    tmp_path: Path,
    network_clock: trio.testing.MockClock,
) -> None:
    node = NodeRunner(config)
    await node.start(nursery)
    path = tmp_path / "alice.json"
    with trio.fail_after(120):  # fake seconds: the backoff waits pass at once
        async with (
            signed_up(node.url, "alice", store=str(path)) as alice,
            signed_up(node.url, "bob") as bob,
        ):
            room_id = await alice.create_room(public=True)
            await bob.join(room_id)
            await bob.send(room_id, "one")
            await bob.send(room_id, "two")
            stream = alice.sync()
            seen = await updates_until(stream, is_message("two"))
            await bob.send(room_id, "three")
            seen += await updates_until(stream, is_message("three"))
            await alice.ack()  # "two" is processed and acknowledged; "three" is only yielded

            await node.stop()
            await node.start(nursery)  # same port, same data folder
            await bob.send(room_id, "four")  # waits for bob's session to reconnect
            rest = await updates_until(stream, is_message("four"))
            if not any(isinstance(u, client.CaughtUp) for u in rest):
                # "four" was stored before alice's new catch-up, so it came in that catch-up
                # and the CaughtUp follows it.
                rest += await updates_until(stream, caught_up)

            assert bodies(seen) == ["one", "two", "three"]
            assert bodies(rest) == ["four"]  # not "three" again, and nothing missing
            assert any(_reconnecting(u) for u in rest)
            assert any(isinstance(u, client.CaughtUp) for u in rest)  # caught up again
            stream.mark_processed()
            await alice.ack()
            assert alice.store.cursor == stream.resume_after

        # A new process with the same store: everything was acknowledged, nothing comes again.
        async with client.connect(store=str(path)) as again:
            assert bodies(await updates_until(again.sync(), caught_up)) == []


async def test_a_send_whose_answer_was_lost_is_retried_and_stored_once(
    nursery: trio.Nursery, node: NodeRunner
) -> None:
    proxy = await _proxy(nursery, node)
    with trio.fail_after(TIMEOUT):
        async with signed_up(proxy.url, "alice", **FAST) as alice:
            room_id = await alice.create_room()
            dropped = proxy.drop_next_answer()
            event_id = await alice.send(room_id, "only once")
            assert dropped.is_set()
            assert proxy.connections == 2  # the answer was lost; the retry went on a new one
            page = await alice.history(room_id)
            assert [e.event_id for e in page.events if e.body == "only once"] == [event_id]


async def test_an_op_unsafe_to_repeat_reports_its_lost_answer(
    nursery: trio.Nursery, node: NodeRunner
) -> None:
    proxy = await _proxy(nursery, node)
    with trio.fail_after(TIMEOUT):
        async with signed_up(proxy.url, "alice", **FAST) as alice:
            proxy.drop_next_answer()
            with pytest.raises(client.ConnectionLostError) as lost:
                await alice.create_room(name="maybe")
            assert lost.value.op == "create_room"
            (room,) = await alice.rooms()  # the node did create it, once
            assert room.name == "maybe"


async def test_a_request_whose_answer_is_always_lost_gives_up(
    nursery: trio.Nursery, node: NodeRunner
) -> None:
    proxy = await _proxy(nursery, node)
    with trio.fail_after(TIMEOUT):
        async with signed_up(proxy.url, "alice", **FAST) as alice:
            room_id = await alice.create_room()
            proxy.drop_answers_with(b'"events":')  # every history page
            with pytest.raises(client.ConnectionLostError) as lost:
                await alice.history(room_id)
            assert lost.value.op == "history"
            assert proxy.dropped == MAX_ATTEMPTS
            assert (await alice.rooms())[0].room_id == room_id  # the session goes on


async def test_requests_wait_for_the_reconnection_with_seeded_backoff(
    nursery: trio.Nursery, node: NodeRunner, network_clock: trio.testing.MockClock
) -> None:
    proxy = await _proxy(nursery, node)
    with trio.fail_after(120):
        async with signed_up(proxy.url, "alice", heartbeat_interval=3600.0) as alice:
            room_id = await alice.create_room(name="r")
            stream = alice.sync()
            await updates_until(stream, caught_up)
            proxy.refusing = True
            await proxy.cut_all()
            waits = []
            for _ in range(4):  # the first connection attempts fail
                update = (await updates_until(stream, _reconnecting))[-1]
                assert isinstance(update, client.Reconnecting)
                waits.append((update.attempt, update.delay))
            expected = seeded_backoff()
            assert waits == [(n + 1, expected.delay(n)) for n in range(4)]
            assert waits[3][1] > waits[0][1]  # the waits grow

            answered = trio.Event()

            async def ask() -> None:
                await alice.send(room_id, "while away")
                answered.set()

            nursery.start_soon(ask)
            await trio.sleep(1)
            assert not answered.is_set()  # waiting for a connection, not failed
            proxy.refusing = False
            await answered.wait()
            assert bodies(await updates_until(stream, is_message("while away"))) == ["while away"]


async def test_a_silent_connection_is_found_by_heartbeats_and_replaced(
    nursery: trio.Nursery, node: NodeRunner, network_clock: trio.testing.MockClock
) -> None:
    proxy = await _proxy(nursery, node)
    with trio.fail_after(300):
        async with (
            signed_up(proxy.url, "alice", heartbeat_interval=5.0, response_timeout=10.0) as alice,
            signed_up(node.url, "bob") as bob,
        ):
            room_id = await alice.create_room(public=True)
            await bob.join(room_id)
            stream = alice.sync()
            await updates_until(stream, caught_up)
            proxy.stall()  # nothing goes through, nothing is closed
            await updates_until(stream, _reconnecting)
            proxy.resume()
            await bob.send(room_id, "are you there?")
            assert bodies(await updates_until(stream, is_message("are you there?"))) == [
                "are you there?"
            ]
            assert proxy.connections >= 2


async def test_a_token_refused_on_reconnect_signs_the_device_out(
    nursery: trio.Nursery, node: NodeRunner
) -> None:
    proxy = await _proxy(nursery, node)
    with trio.fail_after(TIMEOUT):
        async with (
            signed_up(proxy.url, "alice", **FAST) as laptop,
            client.connect(node.url) as phone,
        ):
            await phone.login("alice", PASSWORD)
            stream = laptop.sync()
            await updates_until(stream, caught_up)
            proxy.refusing = True
            await proxy.cut_all()
            await updates_until(stream, _reconnecting)
            assert laptop.device_id is not None
            await phone.revoke_device(laptop.device_id)  # while the laptop is away
            proxy.refusing = False
            rest = [u async for u in stream if not _reconnecting(u)]
            assert rest == [client.SignedOut("bad_credentials")]
            assert laptop.store.access_token is None


async def test_connecting_to_no_node_fails_at_once(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        await listeners[0].aclose()  # nothing listens there now
        with pytest.raises(client.ConnectError):
            async with client.connect(f"ws://127.0.0.1:{port}"):
                pass
        with pytest.raises(ValueError, match="ws:// or wss://"):
            client.connect("http://127.0.0.1:1")


async def test_a_path_the_node_does_not_serve_is_refused(node: NodeRunner) -> None:
    with trio.fail_after(TIMEOUT), pytest.raises(client.ConnectError, match="refused"):
        async with client.connect(f"{node.url}/nowhere"):
            pass


async def test_a_closed_session_refuses_requests(node: NodeRunner) -> None:
    with trio.fail_after(TIMEOUT):
        async with signed_up(node.url, "alice") as alice:
            pass
        with pytest.raises(client.SessionClosedError):
            await alice.rooms()


async def test_tokens_and_passwords_never_reach_the_logs(
    nursery: trio.Nursery, node: NodeRunner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = await _proxy(nursery, node)
    with trio.fail_after(TIMEOUT):
        async with signed_up(proxy.url, "alice", store=str(tmp_path / "a.json"), **FAST) as alice:
            token = alice.store.access_token
            assert token is not None
            await proxy.cut_all()
            await alice.rooms()  # after a reconnect, and so an authenticate
            assert proxy.connections == 2
            assert token not in repr(alice.store)
            await alice.logout()
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "signed in user_id=@alice:localhost" in logged
    assert token not in logged
    assert PASSWORD not in logged


async def test_heartbeats_keep_the_user_online_and_their_absence_does_not(
    nursery: trio.Nursery, node: NodeRunner, network_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(600):
        async with (
            signed_up(node.url, "alice") as alice,  # heartbeats every 5 s (the default)
            signed_up(node.url, "bob", heartbeat_interval=3600.0) as bob,
        ):
            room_id = await alice.create_room(public=True)
            await bob.join(room_id)
            await trio.sleep(40)  # the node's presence timeout is 30 s
            presence = {p.user_id: p.presence for p in await alice.get_presence([BOB])}
            assert presence == {BOB: "offline"}  # connected, but silent
            presence = {p.user_id: p.presence for p in await bob.get_presence([ALICE])}
            assert presence == {ALICE: "online"}
