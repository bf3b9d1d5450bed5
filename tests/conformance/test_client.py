"""Black-box checks of spec/client.md against a running node (``--node-url`` and
``--registration-token``, or a node the suite starts). Only JSON over WebSockets."""

from __future__ import annotations

import itertools
from typing import Any

import trio

from tests.conformance.client_session import PASSWORD, Session, session

TIMEOUT = 10
_txn = itertools.count(1)


def txn() -> str:
    """A fresh transaction id."""
    return f"c{next(_txn)}"


async def _say(who: Session, room_id: str, body: str) -> str:
    result = await who.result("send", room_id=room_id, txn_id=txn(), content={"body": body})
    event_id: str = result["event_id"]
    return event_id


def _bodies(items: list[dict[str, Any]]) -> list[str]:
    return [
        i["event"]["content"]["body"]
        for i in items
        if i["kind"] == "event" and i["event"]["type"] == "message"
    ]


# --- §1 sessions, §2 accounts and devices ------------------------------------------------------


async def test_requests_need_a_bound_connection(node_url: str, registration_token: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as client:
            assert await client.error("rooms") == "not_authenticated"
            assert (await client.result("ping")) == {}
            assert await client.error("register", username="x", password="short") == "bad_params"
            assert (
                await client.error(
                    "register", username="nope", password=PASSWORD, registration_token="wrong"
                )
                == "registration_closed"
            )
            user_id = await client.register(registration_token)
            assert user_id.startswith("@")
            assert (await client.result("rooms")) == {"rooms": []}


async def test_tokens_authenticate_other_connections_until_logout(
    node_url: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as first:
            await first.register(registration_token)
            async with session(node_url) as second:
                bound = await second.result("authenticate", access_token=first.token)
                assert bound == {"user_id": first.user_id, "device_id": first.device_id}
                assert (
                    await second.error("authenticate", access_token="x" * 43) == "bad_credentials"
                )
                await first.result("logout")
                notice = await second.notice()
                assert notice["op"] == "signed_out"
                assert await second.error("rooms") == "not_authenticated"
            async with session(node_url) as third:
                assert (
                    await third.error("authenticate", access_token=first.token) == "bad_credentials"
                )


async def test_devices_can_be_listed_renamed_and_revoked(
    node_url: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as laptop:
            user_id = await laptop.register(registration_token)
            username = user_id[1:].partition(":")[0]
            async with session(node_url) as phone:
                login = await phone.result(
                    "login", username=username, password=PASSWORD, device_name="phone"
                )
                assert login["device_id"] != laptop.device_id
                assert (
                    await phone.error("login", username=username, password="wrong password")
                    == "bad_credentials"
                )
                listed = (await laptop.result("devices"))["devices"]
                assert {d["device_id"] for d in listed} == {laptop.device_id, login["device_id"]}
                assert [d["current"] for d in listed if d["device_id"] == laptop.device_id] == [
                    True
                ]
                await laptop.result(
                    "rename_device", device_id=login["device_id"], display_name="old phone"
                )
                names = {
                    d["device_id"]: d["display_name"]
                    for d in (await laptop.result("devices"))["devices"]
                }
                assert names[login["device_id"]] == "old phone"
                await laptop.result("revoke_device", device_id=login["device_id"])
                assert (await phone.notice())["op"] == "signed_out"
                assert (
                    await laptop.error("revoke_device", device_id=login["device_id"]) == "not_found"
                )


# --- §3 rooms, §4 messages ------------------------------------------------------------------


async def test_rooms_members_and_the_rules_error_codes(
    node_url: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as alice, session(node_url) as bob:
            await alice.register(registration_token, "alice")
            bob_id = await bob.register(registration_token, "bob")
            room_id = (await alice.result("create_room", name="conformance"))["room_id"]
            assert await bob.error("join", room_id=room_id) == "not_invited"
            await alice.result("invite", room_id=room_id, user_id=bob_id)
            await bob.result("join", room_id=room_id)
            summary = next(
                r for r in (await bob.result("rooms"))["rooms"] if r["room_id"] == room_id
            )
            assert (summary["name"], summary["membership"], summary["member_count"]) == (
                "conformance",
                "join",
                2,
            )
            members = {
                m["user_id"]: m for m in (await bob.result("members", room_id=room_id))["members"]
            }
            assert members[alice.user_id or ""]["creator"] is True
            assert await bob.error("kick", room_id=room_id, user_id=alice.user_id) in (
                "insufficient_power",
                "target_not_lower",
            )
            await alice.result("kick", room_id=room_id, user_id=bob_id)
            assert (
                await bob.error("send", room_id=room_id, txn_id=txn(), content={"body": "x"})
                == "not_joined"
            )
            assert await alice.error("join", room_id="!" + "A" * 43) == "not_found"


async def test_sends_are_idempotent_and_history_pages_back(
    node_url: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as alice:
            await alice.register(registration_token)
            room_id = (await alice.result("create_room"))["room_id"]
            first = await alice.result(
                "send", room_id=room_id, txn_id="same", content={"body": "once"}
            )
            assert (
                await alice.result("send", room_id=room_id, txn_id="same", content={"body": "once"})
                == first
            )
            for i in range(5):
                await _say(alice, room_id, f"m{i}")
            page = await alice.result("history", room_id=room_id, limit=3)
            assert [e["content"]["body"] for e in page["events"]] == ["m2", "m3", "m4"]
            older = await alice.result("history", room_id=room_id, before=page["before"], limit=3)
            assert [e["content"].get("body") for e in older["events"]][-3:] == ["once", "m0", "m1"]
            redaction = await alice.result(
                "redact", room_id=room_id, event_id=first["event_id"], txn_id=txn()
            )
            latest = await alice.result("history", room_id=room_id, limit=10)
            redacted = next(e for e in latest["events"] if e["event_id"] == first["event_id"])
            assert redacted["content"] == {}
            assert redacted["unsigned"]["redacted_by"] == redaction["event_id"]


async def test_the_stream_catches_up_then_streams_live_and_acks_hold(
    node_url: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as alice:
            await alice.register(registration_token)
            room_id = (await alice.result("create_room"))["room_id"]
            await _say(alice, room_id, "before sync")
            head = (await alice.result("sync"))["position"]
            items = [item for batch in await alice.batches() for item in batch["items"]]
            assert _bodies(items) == ["before sync"]
            assert all(item["position"] <= head for item in items)
            await _say(alice, room_id, "live")
            live = await alice.items_until(lambda item: _bodies([item]) == ["live"])
            assert live[-1]["position"] > head
            await alice.result("ack", position=live[-1]["position"])
            await alice.result("sync", since=0)
            again = [item for batch in await alice.batches() for item in batch["items"]]
            assert _bodies(again) == []


async def test_receipts_and_to_device_messages_ride_the_stream(
    node_url: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as alice, session(node_url) as bob:
            await alice.register(registration_token, "alice")
            bob_id = await bob.register(registration_token, "bob")
            room_id = (await alice.result("create_room", public=True))["room_id"]
            await bob.result("join", room_id=room_id)
            last = await _say(alice, room_id, "read me")
            assert next(r for r in (await bob.result("rooms"))["rooms"])["unread_count"] == 1
            await bob.result("receipt", room_id=room_id, event_id=last)
            assert next(r for r in (await bob.result("rooms"))["rooms"])["unread_count"] == 0
            messages = {bob_id: {bob.device_id: {"secret": "k"}}}
            await alice.result("send_to_device", type="room_key", txn_id=txn(), messages=messages)
            await bob.result("sync")
            items = [item for batch in await bob.batches() for item in batch["items"]]
            kinds = [item["kind"] for item in items]
            assert "receipt" in kinds
            to_device = [item for item in items if item["kind"] == "to_device"]
            assert [(t["sender"], t["type"], t["content"]) for t in to_device] == [
                (alice.user_id, "room_key", {"secret": "k"})
            ]


async def test_typing_notices_reach_the_room(node_url: str, registration_token: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as alice, session(node_url) as bob:
            await alice.register(registration_token, "alice")
            await bob.register(registration_token, "bob")
            room_id = (await alice.result("create_room", public=True))["room_id"]
            await bob.result("join", room_id=room_id)
            await alice.result("typing", room_id=room_id, typing=True)
            notice = await bob.notice()
            while notice["op"] != "typing_update":
                notice = await bob.notice()
            assert notice["params"] == {"room_id": room_id, "user_ids": [alice.user_id]}


async def test_a_flood_of_requests_is_rate_limited_and_harmless(
    node_url: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as client:
            await client.register(registration_token)
            codes = []
            for _ in range(300):
                answer = await client.request("ping")
                codes.append("ok" if "result" in answer else answer["error"]["code"])
            assert set(codes) <= {"ok", "rate_limited"}
            assert "rate_limited" in codes
