"""The sync iterator (spec/client.md §5, §6, §1): catch-up then live, in order, each item
once; acknowledgements written to the store and honoured by the node; the pushes that are
not stream items; the end of the stream when the device is signed out."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import trio
import trio.testing

import client
from tests.client.helpers import (
    PASSWORD,
    TIMEOUT,
    NodeRunner,
    bodies,
    caught_up,
    is_message,
    signed_up,
    updates_until,
)
from tests.node.session_client import node_config, start_node

BOB = "@bob:localhost"


def _positions(updates: list[client.Update]) -> list[int]:
    return [
        u.position
        for u in updates
        if isinstance(u, client.EventItem | client.Receipt | client.ToDevice | client.Retraction)
    ]


async def test_catch_up_then_live_in_order_each_item_once(node: NodeRunner) -> None:
    with trio.fail_after(TIMEOUT):
        async with signed_up(node.url, "alice") as alice, signed_up(node.url, "bob") as bob:
            room_id = await alice.create_room(public=True)
            await bob.join(room_id)
            for i in range(130):  # more than one batch of 100
                await alice.send(room_id, f"old {i}")
            stream = bob.sync()

            async def talk() -> None:
                for i in range(20):
                    await alice.send(room_id, f"new {i}")

            seen = await updates_until(stream, caught_up)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(talk)
                seen += await updates_until(stream, is_message("new 19"))
            said = bodies(seen)
            assert said == [f"old {i}" for i in range(130)] + [f"new {i}" for i in range(20)]
            positions = _positions(seen)
            assert positions == sorted(set(positions))
            assert sum(isinstance(u, client.CaughtUp) for u in seen) == 1


async def test_a_catch_up_of_the_longest_messages_fits_the_frame_limit(
    node: NodeRunner, network_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(60):
        async with signed_up(node.url, "alice") as alice:
            room_id = await alice.create_room()
            for _ in range(3):
                await alice.send(room_id, "😀" * 100_000)
            stream = alice.sync()
            seen = await updates_until(
                stream, lambda u: caught_up(u) or isinstance(u, client.Reconnecting)
            )
            assert isinstance(seen[-1], client.CaughtUp)
            assert len(bodies(seen)) == 3


async def test_the_sending_device_sees_its_transaction_id(node: NodeRunner) -> None:
    with trio.fail_after(TIMEOUT):
        async with signed_up(node.url, "alice") as alice:
            room_id = await alice.create_room()
            event_id = await alice.send(room_id, "hi", txn_id="mine")
            seen = await updates_until(alice.sync(), is_message("hi"))
            last = seen[-1]
            assert isinstance(last, client.EventItem)
            assert (last.event.event_id, last.event.transaction_id) == (event_id, "mine")
            assert last.room_id == room_id


async def test_acks_are_stored_and_the_next_session_starts_after_them(
    node: NodeRunner, tmp_path: Path
) -> None:
    path = tmp_path / "alice.json"
    with trio.fail_after(TIMEOUT):
        async with signed_up(node.url, "alice", store=str(path)) as alice:
            room_id = await alice.create_room()
            await alice.send(room_id, "first")
            stream = alice.sync()
            seen = await updates_until(stream, is_message("first"))
            await alice.send(room_id, "second")
            seen += await updates_until(stream, is_message("second"))
            # "second" is yielded but the loop has not asked for more: not processed yet.
            await alice.ack()
            cursor = json.loads(path.read_text())["cursor"]
            assert cursor == _positions(seen)[-2]
            assert stat.S_IMODE(path.stat().st_mode) == 0o600

        async with client.connect(store=str(path)) as again:
            assert again.user_id == "@alice:localhost"
            seen = await updates_until(again.sync(), caught_up)
            assert bodies(seen) == ["second"]  # delivered again: it was never processed
            await again.ack()

        async with client.connect(store=str(path)) as third:
            seen = await updates_until(third.sync(), caught_up)
            assert bodies(seen) == []  # acknowledged: never again


async def test_manual_acks_wait_for_the_application(node: NodeRunner, tmp_path: Path) -> None:
    path = tmp_path / "alice.json"
    with trio.fail_after(TIMEOUT):
        async with signed_up(node.url, "alice", store=str(path)) as alice:
            room_id = await alice.create_room()
            for body in ("a", "b", "c"):
                await alice.send(room_id, body)
            seen = await updates_until(alice.sync(auto_ack=False), caught_up)
            (b,) = [u for u in seen if isinstance(u, client.EventItem) and u.event.body == "b"]
            await alice.ack(b.position)
            assert alice.store.cursor == b.position
        async with client.connect(store=str(path)) as again:
            assert bodies(await updates_until(again.sync(), caught_up)) == ["c"]


async def test_a_long_absence_yields_limited_then_the_newest_events(tmp_path: Path) -> None:
    config = node_config(tmp_path, sync_catch_up_limit=10, sync_room_tail=3)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, config)
            async with signed_up(f"ws://127.0.0.1:{port}", "alice") as alice:
                room_id = await alice.create_room()
                for i in range(30):
                    await alice.send(room_id, f"m{i}")
                seen = await updates_until(alice.sync(), caught_up)
                assert seen[0] == client.Limited((room_id,))
                assert bodies(seen) == ["m27", "m28", "m29"]
                first = seen[1]
                assert isinstance(first, client.EventItem)
                page = await alice.history(room_id, before=first.event.event_id, limit=3)
                assert [e.body for e in page.events] == ["m24", "m25", "m26"]
            nursery.cancel_scope.cancel()


async def test_receipts_presence_and_typing_reach_the_stream(node: NodeRunner) -> None:
    with trio.fail_after(TIMEOUT):
        async with signed_up(node.url, "alice") as alice, signed_up(node.url, "bob") as bob:
            room_id = await alice.create_room(public=True)
            await bob.join(room_id)
            stream = alice.sync()
            seen = await updates_until(stream, lambda u: isinstance(u, client.PresenceChanged))
            # client.md §6: after the first catch-up, the contacts who are online.
            presence = seen[-1]
            assert isinstance(presence, client.PresenceChanged)
            assert (presence.presence.user_id, presence.presence.online) == (BOB, True)

            event_id = await bob.send(room_id, "read me")
            await bob.receipt(room_id, event_id)
            seen = await updates_until(stream, lambda u: isinstance(u, client.Receipt))
            receipt = seen[-1]
            assert isinstance(receipt, client.Receipt)
            assert (receipt.room_id, receipt.user_id, receipt.event_id) == (room_id, BOB, event_id)

            await bob.typing(room_id, True)
            seen = await updates_until(stream, lambda u: isinstance(u, client.TypingChanged))
            assert seen[-1] == client.TypingChanged(room_id, (BOB,))
            await bob.set_presence("busy")
            seen = await updates_until(stream, lambda u: isinstance(u, client.PresenceChanged))
            status = seen[-1]
            assert isinstance(status, client.PresenceChanged)
            assert status.presence.status_msg == "busy"


async def test_a_revoked_device_is_signed_out_and_forgets_its_token(
    node: NodeRunner, tmp_path: Path
) -> None:
    path = tmp_path / "laptop.json"
    with trio.fail_after(TIMEOUT):
        async with (
            signed_up(node.url, "alice", store=str(path)) as laptop,
            client.connect(node.url) as phone,
        ):
            await phone.login("alice", PASSWORD)
            stream = laptop.sync()
            await updates_until(stream, caught_up)
            assert laptop.device_id is not None
            await phone.revoke_device(laptop.device_id)
            rest = [update async for update in stream]  # the stream ends by itself
            assert rest == [client.SignedOut("revoked")]
            assert not laptop.logged_in
            stored = json.loads(path.read_text())
            assert (stored["access_token"], stored["device_id"]) == (None, None)
            try:
                await laptop.rooms()
            except client.ClientError as refused:
                assert refused.code == "not_authenticated"
            else:
                raise AssertionError("a signed-out session still acts as the device")
            # The connection is unbound, not gone: logging in again works, with a new stream.
            await laptop.login("alice", PASSWORD)
            await updates_until(laptop.sync(), caught_up)


async def test_logout_ends_the_stream(node: NodeRunner) -> None:
    with trio.fail_after(TIMEOUT):
        async with signed_up(node.url, "alice") as alice:
            stream = alice.sync()
            await updates_until(stream, caught_up)
            await alice.logout()
            assert [update async for update in stream] == [client.SignedOut("logout")]


async def test_one_sync_iterator_at_a_time(node: NodeRunner) -> None:
    with trio.fail_after(TIMEOUT):
        async with signed_up(node.url, "alice") as alice:
            stream = alice.sync()
            try:
                alice.sync()
            except RuntimeError:
                pass
            else:
                raise AssertionError("two iterators would split the stream between them")
            await stream.aclose()
            await updates_until(alice.sync(), caught_up)
