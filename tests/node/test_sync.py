"""The device's stream (spec/client.md §5): catch-up, live delivery, acks, visibility,
limited catch-up, several devices of one user."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from tests.node.chat_client import batches_until_caught_up, bodies, items_until, say, user
from tests.node.session_client import Client, node_config, start_node

TIMEOUT = 15


def _items(batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for batch in batches for item in batch["items"]]


def _positions_increase(items: list[dict[str, Any]]) -> bool:
    positions = [item["position"] for item in items]
    return positions == sorted(set(positions))


async def _sync(connection: Client, since: int | None = None) -> list[dict[str, Any]]:
    params = {} if since is None else {"since": since}
    await connection.result("sync", **params)
    return _items(await batches_until_caught_up(connection))


async def test_three_devices_each_see_every_message_once_in_order(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice, user(port, "bob") as laptop:
                room_id = (await alice.result("create_room", public=True))["room_id"]
                await laptop.result("join", room_id=room_id)
                device_ids = [(await laptop.result("devices"))["devices"][0]["device_id"]]
                async with user(port, "bob", register=False) as phone:
                    await _sync(laptop)
                    await _sync(phone)
                    async with user(port, "bob", register=False) as tablet:
                        await _sync(tablet)
                        device_ids.append(
                            next(
                                d["device_id"]
                                for d in (await tablet.result("devices"))["devices"]
                                if d["current"]
                            )
                        )
                        await say(alice, room_id, "one")
                        await say(laptop, room_id, "two")
                    # the tablet is offline now; the others keep talking
                    for i in range(3, 8):
                        await say(alice if i % 2 else phone, room_id, f"{i}")
                    expected = ["one", "two", *[str(i) for i in range(3, 8)]]
                    for device in (laptop, phone):
                        items = await items_until(device, lambda item: bodies([item]) == ["7"])
                        assert bodies(items)[-7:] == expected
                        assert _positions_increase(items)
                async with user(port, "bob", register=False, device=device_ids[1]) as tablet:
                    items = await _sync(tablet)  # its cursor is 0: everything, once
                    assert bodies(items) == expected
                    assert _positions_increase(items)
            nursery.cancel_scope.cancel()


async def test_acknowledged_items_are_never_sent_again(tmp_path: Path) -> None:
    config = node_config(tmp_path)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, config)
            async with user(port, "alice") as alice:
                room_id = (await alice.result("create_room"))["room_id"]
                device = (await alice.result("devices"))["devices"][0]["device_id"]
                await say(alice, room_id, "before")
                items = await _sync(alice)
                await alice.result("ack", position=items[-1]["position"])
                await say(alice, room_id, "after")
            nursery.cancel_scope.cancel()
        async with trio.open_nursery() as nursery:  # a node restart in between
            port = await start_node(nursery, config)
            async with user(port, "alice", register=False, device=device) as alice:
                assert bodies(await _sync(alice, since=0)) == ["after"]
            nursery.cancel_scope.cancel()


async def test_live_items_follow_the_catch_up_without_gaps_or_repeats(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice, user(port, "bob") as bob:
                room_id = (await alice.result("create_room", public=True))["room_id"]
                await bob.result("join", room_id=room_id)
                for i in range(150):
                    await say(alice, room_id, f"old {i}")
                await bob.result("sync")

                async def talk() -> None:
                    for i in range(50):
                        await say(alice, room_id, f"new {i}")

                nursery.start_soon(talk)
                items = await items_until(bob, lambda item: bodies([item]) == ["new 49"])
                said = bodies(items)
                assert said == [f"old {i}" for i in range(150)] + [f"new {i}" for i in range(50)]
                assert _positions_increase(items)
            nursery.cancel_scope.cancel()


async def test_members_see_their_part_of_the_room_only(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice, user(port, "bob") as bob:
                room_id = (await alice.result("create_room"))["room_id"]
                await say(alice, room_id, "before bob")
                await alice.result("invite", room_id=room_id, user_id="@bob:localhost")
                await say(alice, room_id, "while invited")
                await bob.result("join", room_id=room_id)
                await say(alice, room_id, "with bob")
                await bob.result("leave", room_id=room_id)
                await say(alice, room_id, "after bob")
                items = await _sync(bob)
                assert bodies(items) == ["with bob"]
                memberships = [
                    item["event"]["content"]["membership"]
                    for item in items
                    if item["kind"] == "event" and item["event"]["type"] == "member"
                ]
                assert memberships == ["invite", "join", "leave"]
            nursery.cancel_scope.cancel()


async def test_a_long_absence_gets_the_newest_events_and_a_limited_marker(tmp_path: Path) -> None:
    config = node_config(tmp_path, sync_catch_up_limit=10, sync_room_tail=3)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, config)
            async with user(port, "alice") as alice:
                room_id = (await alice.result("create_room"))["room_id"]
                for i in range(30):
                    await say(alice, room_id, f"m{i}")
                await alice.result("sync")
                (batch,) = await batches_until_caught_up(alice)
                assert batch["limited"] == [room_id]
                assert bodies(batch["items"]) == ["m27", "m28", "m29"]
                page = await alice.result(
                    "history",
                    room_id=room_id,
                    before=batch["items"][0]["event"]["event_id"],
                    limit=3,
                )
                assert [e["content"]["body"] for e in page["events"]] == ["m24", "m25", "m26"]
            nursery.cancel_scope.cancel()


async def test_the_sending_device_sees_its_transaction_id(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice:
                room_id = (await alice.result("create_room"))["room_id"]
                async with user(port, "alice", register=False) as other:
                    await _sync(alice)
                    await _sync(other)
                    await alice.result(
                        "send", room_id=room_id, txn_id="mine", content={"body": "hi"}
                    )
                    (own,) = [
                        i
                        for i in await items_until(alice, lambda i: bodies([i]) == ["hi"])
                        if bodies([i])
                    ]
                    (seen,) = [
                        i
                        for i in await items_until(other, lambda i: bodies([i]) == ["hi"])
                        if bodies([i])
                    ]
                    assert own["event"]["unsigned"] == {"transaction_id": "mine"}
                    assert "unsigned" not in seen["event"]
            nursery.cancel_scope.cancel()


# The longest text body is 100,000 characters; four-byte ones make it 400 KB (rooms.md §3).
_LONGEST = "😀" * 99_999  # after a one-digit tag: 100,000 characters


async def test_batches_of_the_longest_messages_stay_within_the_frame_limit(
    tmp_path: Path,
) -> None:
    # The test's WebSocket refuses messages over 1 MiB, as every device must (wire.md §1.4).
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice:
                room_id = (await alice.result("create_room"))["room_id"]
                for i in range(5):
                    await say(alice, room_id, f"{i}{_LONGEST}")
                await alice.result("sync")
                batches = await batches_until_caught_up(alice)
                items = _items(batches)
                assert [body[0] for body in bodies(items)] == ["0", "1", "2", "3", "4"]
                assert _positions_increase(items)
                assert len(batches) >= 3
                assert [b["caught_up"] for b in batches] == [False] * (len(batches) - 1) + [True]
                positions = [b["position"] for b in batches]
                assert positions == sorted(set(positions))
            nursery.cancel_scope.cancel()


async def test_a_limited_catch_up_of_long_messages_names_each_room_once(tmp_path: Path) -> None:
    config = node_config(tmp_path, sync_catch_up_limit=2, sync_room_tail=3)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, config)
            async with user(port, "alice") as alice:
                rooms = [(await alice.result("create_room"))["room_id"] for _ in range(2)]
                for i in range(4):
                    for room_id in rooms:
                        await say(alice, room_id, f"{i}{_LONGEST}")
                await alice.result("sync")
                batches = await batches_until_caught_up(alice)
                named = [room for batch in batches for room in batch.get("limited", [])]
                assert sorted(named) == sorted(rooms)
                items = _items(batches)
                for room_id in rooms:
                    in_room = [i for i in items if i.get("room_id") == room_id]
                    assert [body[0] for body in bodies(in_room)] == ["1", "2", "3"]
                    opened_in = next(
                        batch for batch in batches if room_id in batch.get("limited", [])
                    )
                    assert in_room[0] in opened_in["items"]
                assert len(batches) >= 3
            nursery.cancel_scope.cancel()


async def test_a_history_page_of_long_messages_is_cut_to_fit_and_continues(
    tmp_path: Path,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice:
                room_id = (await alice.result("create_room"))["room_id"]
                for i in range(4):
                    await say(alice, room_id, f"{i}{_LONGEST}")
                seen: list[str] = []
                before = None
                pages = 0
                while True:
                    params: dict[str, Any] = {"room_id": room_id, "limit": 100}
                    if before is not None:
                        params["before"] = before
                    page = await alice.result("history", **params)
                    pages += 1
                    seen = [
                        e["content"]["body"][0] for e in page["events"] if e["type"] == "message"
                    ] + seen
                    before = page["before"]
                    if before is None:
                        break
                assert seen == ["0", "1", "2", "3"]
                assert pages >= 2
            nursery.cancel_scope.cancel()


async def test_a_to_device_content_over_64_kib_is_too_large_and_not_sent(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice:
                me = "@alice:localhost"
                big = {"blob": "x" * 65_536}
                code = await alice.error(
                    "send_to_device", type="test", txn_id="t1", messages={me: {"*": big}}
                )
                assert code == "too_large"
                fits = {"blob": "x" * (65_536 - 20)}
                await alice.result(
                    "send_to_device", type="test", txn_id="t2", messages={me: {"*": fits}}
                )
                items = await _sync(alice)
                assert [i["content"] for i in items if i["kind"] == "to_device"] == [fits]
            nursery.cancel_scope.cancel()
