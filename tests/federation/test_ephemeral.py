"""Presence, typing, receipts and to-device messages across two real nodes
(spec/federation.md §8)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

from tests.federation.cluster import Cluster, shared_room
from tests.node.chat_client import (
    batches_until_caught_up,
    items_until,
    say,
    user,
)
from tests.node.session_client import Client

TIMEOUT = 20
ALICE = "@alice:a.test"
BOB = "@bob:b.test"


async def notice_until(
    connection: Client, op: str, predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The params of the first ``op`` notice that matches ``predicate`` (others skipped)."""
    while True:
        notice = await connection.notice()
        if notice["op"] == op and predicate(notice["params"]):
            params: dict[str, Any] = notice["params"]
            return params


async def test_presence_of_a_remote_contact_follows_their_devices(cluster: Cluster) -> None:
    with trio.fail_after(TIMEOUT):
        async with user(cluster["a"].port, "alice") as alice:
            async with user(cluster["b"].port, "bob") as bob:
                await shared_room(alice, bob)
                await bob.result("set_presence", status_msg="at lunch")
                update = await notice_until(
                    alice, "presence_update", lambda p: p.get("status_msg") == "at lunch"
                )
                assert (update["user_id"], update["presence"]) == (BOB, "online")
                answer = await alice.result("get_presence", user_ids=[BOB])
                assert answer["presence"][0]["status_msg"] == "at lunch"
            gone = await notice_until(alice, "presence_update", lambda p: p["user_id"] == BOB)
            assert gone["presence"] == "offline"


async def test_users_online_before_they_share_a_room_see_each_other_online(
    cluster: Cluster,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with user(cluster["a"].port, "alice") as alice, user(cluster["b"].port, "bob") as bob:
            await shared_room(alice, bob)  # both were online before; nothing changed since
            update = await notice_until(alice, "presence_update", lambda p: p["user_id"] == BOB)
            assert update["presence"] == "online"
            update = await notice_until(bob, "presence_update", lambda p: p["user_id"] == ALICE)
            assert update["presence"] == "online"
            answer = await alice.result("get_presence", user_ids=[BOB])
            assert answer["presence"][0]["presence"] == "online"


async def test_a_restarted_node_learns_who_is_online_without_a_change(cluster: Cluster) -> None:
    with trio.fail_after(TIMEOUT):
        async with user(cluster["a"].port, "alice") as alice:
            async with user(cluster["b"].port, "bob") as bob:
                await shared_room(alice, bob)
            await cluster.stop("b")
            await cluster.run("b")
            # Bob's node knows nothing of alice's presence after its restart; when the link
            # comes back, a tells it alice is online (§8) — alice changed nothing.
            async with user(cluster["b"].port, "bob", register=False) as bob:
                await bob.result("sync")
                update = await notice_until(bob, "presence_update", lambda p: p["user_id"] == ALICE)
                assert update["presence"] == "online"


async def test_users_of_a_node_that_went_away_become_offline_after_the_silence(
    cluster: Cluster, network_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(TIMEOUT + 120):  # virtual time: the silence is 90 s
        async with user(cluster["a"].port, "alice") as alice:
            async with user(cluster["b"].port, "bob") as bob:
                await shared_room(alice, bob)
                await notice_until(alice, "presence_update", lambda p: p["user_id"] == BOB)
                cluster["b"].proxy.cut()  # b's word that bob left can no longer arrive
                await cluster.stop("b")
            stopped = trio.current_time()
            gone = await notice_until(alice, "presence_update", lambda p: p["user_id"] == BOB)
            assert gone["presence"] == "offline"
            assert trio.current_time() - stopped == pytest.approx(90, abs=5)


async def test_typing_and_receipts_reach_the_other_node(cluster: Cluster) -> None:
    with trio.fail_after(TIMEOUT):
        async with user(cluster["a"].port, "alice") as alice, user(cluster["b"].port, "bob") as bob:
            room_id = await shared_room(alice, bob)
            await alice.result("typing", room_id=room_id, typing=True, timeout_ms=30_000)
            typing = await notice_until(bob, "typing_update", lambda p: p["user_ids"] != [])
            assert typing == {"room_id": room_id, "user_ids": [ALICE]}
            await alice.result("typing", room_id=room_id, typing=False)
            await notice_until(bob, "typing_update", lambda p: p["user_ids"] == [])
            event_id = await say(alice, room_id, "read me")
            await items_until(bob, lambda item: item.get("event", {}).get("event_id") == event_id)
            await bob.result("receipt", room_id=room_id, event_id=event_id)
            seen = await items_until(
                alice, lambda item: item["kind"] == "receipt" and item["user_id"] == BOB
            )
            assert seen[-1]["event_id"] == event_id


async def test_typing_stops_by_itself_on_the_other_node(
    cluster: Cluster, network_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(TIMEOUT):
        async with user(cluster["a"].port, "alice") as alice, user(cluster["b"].port, "bob") as bob:
            room_id = await shared_room(alice, bob)
            await alice.result("typing", room_id=room_id, typing=True, timeout_ms=5_000)
            await notice_until(bob, "typing_update", lambda p: p["user_ids"] == [ALICE])
            started = trio.current_time()
            await notice_until(bob, "typing_update", lambda p: p["user_ids"] == [])
            assert trio.current_time() - started == pytest.approx(5, abs=0.5)


def to_device_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for item in items if item["kind"] == "to_device"]


async def test_to_device_messages_wait_out_a_down_node_and_arrive_once(cluster: Cluster) -> None:
    with trio.fail_after(TIMEOUT):
        async with user(cluster["a"].port, "alice") as alice:
            async with user(cluster["b"].port, "bob") as bob:
                await shared_room(alice, bob)  # so b links to a when it starts (§3.3)
                device = (await bob.result("devices"))["devices"][0]["device_id"]
            await cluster.stop("b")
            for n in range(3):
                messages = {BOB: {"*" if n % 2 else device: {"n": n}}}
                await alice.result(
                    "send_to_device", type="t.key", txn_id=f"k{n}", messages=messages
                )
            # A retried request (same txn id) adds nothing.
            messages = {BOB: {device: {"n": 0}}}
            await alice.result("send_to_device", type="t.key", txn_id="k0", messages=messages)
        await cluster.run("b")
        async with user(cluster["b"].port, "bob", register=False, device=device) as bob:
            await bob.result("sync", since=0)
            got = to_device_items(await items_until(bob, lambda i: i.get("content") == {"n": 2}))
            assert [(i["sender"], i["type"], i["content"]) for i in got] == [
                (ALICE, "t.key", {"n": n}) for n in range(3)
            ]
            await bob.result("ack", position=got[-1]["position"])
        async with user(cluster["b"].port, "bob", register=False, device=device) as bob:
            await bob.result("sync", since=0)
            batches = await batches_until_caught_up(bob)
            assert to_device_items([i for batch in batches for i in batch["items"]]) == []
