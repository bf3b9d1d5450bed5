"""Rooms over the client socket (spec/client.md §3): a real node, real SQLite, real sockets."""

from __future__ import annotations

from pathlib import Path

import trio

from protocol import MAX_SAFE_INTEGER
from tests.node.chat_client import say, user
from tests.node.session_client import node_config, start_node

TIMEOUT = 10


async def test_a_created_room_is_listed_with_its_settings(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice:
                created = await alice.result(
                    "create_room", name="Family", topic="dinner", public=True, encryption="megolm"
                )
                room_id = created["room_id"]
                assert room_id.startswith("!")
                (summary,) = (await alice.result("rooms"))["rooms"]
                assert summary == {
                    "room_id": room_id,
                    "name": "Family",
                    "topic": "dinner",
                    "direct": False,
                    "encrypted": True,
                    "encryption": {"algorithm": "megolm"},
                    "membership": "join",
                    "member_count": 1,
                    "unread_count": 0,
                }
                members = (await alice.result("members", room_id=room_id))["members"]
                assert members == [
                    {"user_id": "@alice:localhost", "membership": "join", "display_name": None,
                     "level": MAX_SAFE_INTEGER, "creator": True}
                ]  # fmt: skip
            nursery.cancel_scope.cancel()


async def test_invite_join_kick_ban_unban(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice, user(port, "bob") as bob:
                room_id = (await alice.result("create_room", name="club"))["room_id"]
                assert await bob.error("join", room_id=room_id) == "not_invited"
                await alice.result("invite", room_id=room_id, user_id="@bob:localhost")
                assert (await bob.result("rooms"))["rooms"][0]["membership"] == "invite"
                await bob.result("join", room_id=room_id)
                assert (await alice.result("rooms"))["rooms"][0]["member_count"] == 2
                assert await bob.error("kick", room_id=room_id, user_id="@alice:localhost") in (
                    "insufficient_power",
                    "target_not_lower",
                )
                await alice.result("kick", room_id=room_id, user_id="@bob:localhost", reason="bye")
                assert (await bob.result("rooms"))["rooms"] == []
                assert (
                    await bob.error("send", room_id=room_id, txn_id="x", content={"body": "hi"})
                    == "not_joined"
                )
                await alice.result("ban", room_id=room_id, user_id="@bob:localhost")
                assert (
                    await alice.error("invite", room_id=room_id, user_id="@bob:localhost")
                    == "target_banned"
                )
                await alice.result("unban", room_id=room_id, user_id="@bob:localhost")
                await alice.result("invite", room_id=room_id, user_id="@bob:localhost")
                await bob.result("join", room_id=room_id)
                await say(bob, room_id, "back again")
            nursery.cancel_scope.cancel()


async def test_names_topics_join_rules_and_levels(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice, user(port, "bob") as bob:
                room_id = (await alice.result("create_room"))["room_id"]
                await alice.result("set_join_rule", room_id=room_id, join_rule="public")
                assert (
                    await alice.error("set_join_rule", room_id=room_id, join_rule="knock")
                    == "bad_params"
                )
                await bob.result("join", room_id=room_id)
                assert (
                    await bob.error("set_name", room_id=room_id, name="mine")
                    == "insufficient_power"
                )
                await alice.result("set_level", room_id=room_id, user_id="@bob:localhost", level=50)
                await bob.result("set_name", room_id=room_id, name="ours")
                await bob.result("set_topic", room_id=room_id, topic="everything")
                assert (
                    await bob.error(
                        "set_level", room_id=room_id, user_id="@bob:localhost", level=60
                    )
                    == "level_above_own"
                )
                await alice.result("set_thresholds", room_id=room_id, thresholds={"kick": 100})
                assert (
                    await bob.error("set_thresholds", room_id=room_id, thresholds={"x": 1})
                    == "bad_content"
                )
                summary = (await bob.result("rooms"))["rooms"][0]
                assert (summary["name"], summary["topic"]) == ("ours", "everything")
                levels = {
                    m["user_id"]: m["level"]
                    for m in (await bob.result("members", room_id=room_id))["members"]
                }
                assert levels["@bob:localhost"] == 50
            nursery.cancel_scope.cancel()


async def test_direct_rooms_hold_two(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice, user(port, "bob") as bob, user(port, "carol"):
                assert await alice.error("create_room", direct=True) == "bad_params"
                room_id = (
                    await alice.result("create_room", direct=True, invite=["@bob:localhost"])
                )["room_id"]
                await bob.result("join", room_id=room_id)
                assert (
                    await alice.error("invite", room_id=room_id, user_id="@carol:localhost")
                    == "room_full"
                )
                assert (
                    await alice.error("set_join_rule", room_id=room_id, join_rule="public")
                    == "direct_room"
                )
                assert (await bob.result("rooms"))["rooms"][0]["direct"] is True
            nursery.cancel_scope.cancel()


async def test_unknown_rooms_and_remote_users_are_not_found(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice:
                room_id = (await alice.result("create_room"))["room_id"]
                missing = "!" + "A" * 43
                assert await alice.error("join", room_id=missing) == "not_found"
                assert await alice.error("members", room_id=missing) == "not_found"
                assert (
                    await alice.error("invite", room_id=room_id, user_id="@bob:elsewhere.example")
                    == "not_found"
                )
                assert (
                    await alice.error("create_room", invite=["@bob:elsewhere.example"])
                    == "not_found"
                )
            nursery.cancel_scope.cancel()


async def test_rooms_survive_a_restart(tmp_path: Path) -> None:
    config = node_config(tmp_path)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, config)
            async with user(port, "alice") as alice:
                room_id = (await alice.result("create_room", name="kept"))["room_id"]
                await say(alice, room_id, "still here")
            nursery.cancel_scope.cancel()
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, config)
            async with user(port, "alice", register=False) as alice:
                (summary,) = (await alice.result("rooms"))["rooms"]
                assert summary["name"] == "kept"
                page = await alice.result("history", room_id=room_id, limit=1)
                assert page["events"][0]["content"]["body"] == "still here"
                await say(alice, room_id, "after the restart")
            nursery.cancel_scope.cancel()
