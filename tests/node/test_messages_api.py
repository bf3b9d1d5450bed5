"""Messages over the client socket (spec/client.md §4): sends, idempotence, history,
redactions, receipts and unread counts, typing, to-device messages."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import trio

from tests.node.chat_client import batches_until_caught_up, items_until, say, txn, user
from tests.node.session_client import node_config, start_node

TIMEOUT = 10


async def test_a_retried_send_is_never_a_duplicate(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice:
                room_id = (await alice.result("create_room"))["room_id"]
                content = {"body": "once", "msgtype": "text"}
                first = await alice.result("send", room_id=room_id, txn_id="same", content=content)
                again = await alice.result("send", room_id=room_id, txn_id="same", content=content)
                assert first == again
                page = await alice.result("history", room_id=room_id)
                assert [e["content"].get("body") for e in page["events"]].count("once") == 1
                sent = next(e for e in page["events"] if e["event_id"] == first["event_id"])
                assert sent["unsigned"] == {"transaction_id": "same"}
            nursery.cancel_scope.cancel()


async def test_retries_racing_the_first_send_wait_for_it(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice:
                room_id = (await alice.result("create_room"))["room_id"]
                device = (await alice.result("devices"))["devices"][0]["device_id"]
                async with user(port, "alice", register=False, device=device) as again:
                    results: list[str] = []

                    async def send(connection: object) -> None:
                        answer = await connection.result(  # type: ignore[attr-defined]
                            "send", room_id=room_id, txn_id="race", content={"body": "x"}
                        )
                        results.append(answer["event_id"])

                    async with trio.open_nursery() as racing:
                        racing.start_soon(send, alice)
                        racing.start_soon(send, again)
                    assert len(set(results)) == 1
            nursery.cancel_scope.cancel()


async def test_the_longest_body_fits_and_state_types_are_not_sent(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice:
                room_id = (await alice.result("create_room"))["room_id"]
                longest = {"body": "😀" * 100_000}
                await alice.result("send", room_id=room_id, txn_id=txn(), content=longest)
                too_long = {"body": "x" * 100_001}
                assert (
                    await alice.error("send", room_id=room_id, txn_id=txn(), content=too_long)
                    == "bad_content"
                )
                for kind in ("member", "topic", "redaction", "poll"):
                    assert (
                        await alice.error(
                            "send", room_id=room_id, txn_id=txn(), type=kind, content={}
                        )
                        == "bad_params"
                    )
                await alice.result(
                    "send", room_id=room_id, txn_id=txn(), type="org.example.poll", content={"q": 1}
                )
            nursery.cancel_scope.cancel()


async def test_history_pages_back_in_canonical_order(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice, user(port, "bob") as bob:
                room_id = (await alice.result("create_room", public=True))["room_id"]
                for i in range(25):
                    await say(alice, room_id, f"m{i}")
                assert await bob.error("history", room_id=room_id) == "not_joined"
                seen: list[str] = []
                before = None
                while True:
                    params = {"room_id": room_id, "limit": 10}
                    if before is not None:
                        params["before"] = before
                    page = await alice.result("history", **params)
                    seen = [e["content"].get("body", e["type"]) for e in page["events"]] + seen
                    before = page["before"]
                    if before is None:
                        break
                assert seen[-25:] == [f"m{i}" for i in range(25)]
                assert seen[0] == "create"
            nursery.cancel_scope.cancel()


async def test_a_redacted_message_loses_its_content(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice, user(port, "bob") as bob:
                room_id = (await alice.result("create_room", public=True))["room_id"]
                await bob.result("join", room_id=room_id)
                secret = await say(alice, room_id, "oops, my password")
                assert (
                    await bob.error("redact", room_id=room_id, event_id=secret, txn_id=txn())
                    == "insufficient_power"
                )
                redaction = (
                    await alice.result("redact", room_id=room_id, event_id=secret, txn_id=txn())
                )["event_id"]
                page = await bob.result("history", room_id=room_id)
                target = next(e for e in page["events"] if e["event_id"] == secret)
                assert target["content"] == {}
                assert target["unsigned"]["redacted_by"] == redaction
            nursery.cancel_scope.cancel()


async def test_receipts_drive_unread_counts_and_reach_the_other_devices(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice, user(port, "bob") as bob:
                room_id = (await alice.result("create_room", public=True))["room_id"]
                await bob.result("join", room_id=room_id)
                for i in range(3):
                    last = await say(alice, room_id, f"unread {i}")
                assert (await bob.result("rooms"))["rooms"][0]["unread_count"] == 3
                async with user(port, "bob", register=False) as bob_phone:
                    await bob_phone.result("sync")
                    await batches_until_caught_up(bob_phone)
                    await bob.result("receipt", room_id=room_id, event_id=last)
                    items = await items_until(bob_phone, lambda item: item["kind"] == "receipt")
                    receipt = items[-1]
                    assert (receipt["user_id"], receipt["event_id"]) == ("@bob:localhost", last)
                assert (await bob.result("rooms"))["rooms"][0]["unread_count"] == 0
                assert (
                    await bob.error("receipt", room_id=room_id, event_id="$" + "B" * 42 + "A")
                    == "not_found"
                )
            nursery.cancel_scope.cancel()


async def test_typing_is_pushed_and_stops_by_itself(
    tmp_path: Path, network_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice, user(port, "bob") as bob:
                room_id = (await alice.result("create_room", public=True))["room_id"]
                await bob.result("join", room_id=room_id)
                # Joining makes alice a contact: bob's device first learns she is online.
                assert (await bob.notice())["op"] == "presence_update"
                await alice.result("typing", room_id=room_id, typing=True, timeout_ms=5000)
                started = await bob.notice()
                assert started == {
                    "op": "typing_update",
                    "params": {"room_id": room_id, "user_ids": ["@alice:localhost"]},
                }
                stopped = await bob.notice()  # five seconds later, on the fake clock
                assert stopped["params"]["user_ids"] == []
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("target", ["one device", "every device"])
async def test_to_device_messages_wait_for_the_devices_ack(tmp_path: Path, target: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice, user(port, "bob") as bob:
                device = (await bob.result("devices"))["devices"][0]["device_id"]
                key = device if target == "one device" else "*"
                messages = {"@bob:localhost": {key: {"room_key": "k1"}}}
                await alice.result("send_to_device", type="key", txn_id="keys", messages=messages)
                await alice.result("send_to_device", type="key", txn_id="keys", messages=messages)
                await bob.result("sync")
                (batch,) = await batches_until_caught_up(bob)
                (item,) = batch["items"]
                assert (item["kind"], item["type"], item["content"]) == (
                    "to_device",
                    "key",
                    {"room_key": "k1"},
                )
                assert item["sender"] == "@alice:localhost"
            async with user(port, "bob", register=False, device=device) as bob:
                await bob.result("sync", since=0)
                (batch,) = await batches_until_caught_up(bob)
                assert len(batch["items"]) == 1  # not acknowledged: still there
                await bob.result("ack", position=batch["position"])
                await bob.result("sync", since=0)
                (batch,) = await batches_until_caught_up(bob)
                assert batch["items"] == []
                await alice_sends_to_remote(port)
            nursery.cancel_scope.cancel()
    queued = sqlite3.connect(tmp_path / "kith-data" / "kith.db").execute(
        "SELECT destination, json FROM fed_to_device"
    )
    ((destination, text),) = queued.fetchall()
    assert destination == "other.example"  # waits for that server (federation.md §8)
    assert json.loads(text)["user_id"] == "@x:other.example"


async def alice_sends_to_remote(port: int) -> None:
    """A message for a user of another server is accepted and queued for that server."""
    async with user(port, "carol") as carol:
        await carol.result(
            "send_to_device", type="k", txn_id="r", messages={"@x:other.example": {"*": {}}}
        )
