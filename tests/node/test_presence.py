"""Presence (spec/client.md §6) on a fake clock: online, heartbeats, offline after the
timeout or the last disconnect, told to contacts and to no one else."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from tests.node.chat_client import batches_until_caught_up, user
from tests.node.session_client import Client, node_config, start_node

TIMEOUT = 600  # fake seconds: the clock jumps over the presence timeout


async def _presence(connection: Client) -> dict[str, object]:
    while True:
        notice = await connection.notice()
        if notice["op"] == "presence_update":
            params: dict[str, object] = notice["params"]
            return params


async def test_contacts_see_online_heartbeats_and_offline_after_silence(
    tmp_path: Path, network_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "alice") as alice, user(port, "stranger") as stranger:
                room_id = (await alice.result("create_room", public=True))["room_id"]
                async with user(port, "bob") as bob:
                    await bob.result("join", room_id=room_id)
                    await bob.result("sync")
                    await batches_until_caught_up(bob)
                    online = await _presence(bob)  # pushed after the catch-up
                    assert (online["user_id"], online["presence"]) == ("@alice:localhost", "online")
                    for _ in range(10):  # 50 s of heartbeats every 5 s: no change, no push
                        await trio.sleep(5)
                        await alice.result("heartbeat")
                    assert [n for n in bob.notices if n["op"] == "presence_update"] == []
                    await alice.result("set_presence", status_msg="at dinner")
                    status = await _presence(bob)
                    assert status["status_msg"] == "at dinner"
                    start = trio.current_time()
                    silent = await _presence(bob)  # alice stops heartbeating
                    assert silent["presence"] == "offline"
                    assert 29 <= trio.current_time() - start <= 31
                    await alice.result("heartbeat")
                    assert (await _presence(bob))["presence"] == "online"
                    got = await bob.result(
                        "get_presence", user_ids=["@alice:localhost", "@stranger:localhost"]
                    )
                    assert [p["user_id"] for p in got["presence"]] == ["@alice:localhost"]
                assert [n for n in stranger.notices if n["op"] == "presence_update"] == []
            nursery.cancel_scope.cancel()


async def test_the_last_device_leaving_makes_the_user_offline(
    tmp_path: Path, network_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, node_config(tmp_path))
            async with user(port, "bob") as bob:
                async with user(port, "alice") as alice:
                    room_id = (await alice.result("create_room", public=True))["room_id"]
                    await bob.result("join", room_id=room_id)
                    joined = await _presence(bob)  # alice became a contact: she is online
                    assert (joined["user_id"], joined["presence"]) == ("@alice:localhost", "online")
                    async with user(port, "alice", register=False):
                        pass  # a second device comes and goes: alice stays online
                    assert [n for n in bob.notices if n["op"] == "presence_update"] == []
                offline = await _presence(bob)
                assert (offline["user_id"], offline["presence"]) == ("@alice:localhost", "offline")
            nursery.cancel_scope.cancel()
