"""Every client op of spec/client.md through the library, against a real node: the typed
result when it succeeds, and the stable error code when the node refuses it."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from pathlib import Path

import pytest
import trio

import client
from client import ClientError
from tests.client.helpers import PASSWORD, TIMEOUT, NodeRunner, signed_up
from tests.node.session_client import node_config, start_node

BOB = "@bob:localhost"
ALICE = "@alice:localhost"


async def _refused(code: str, call: Awaitable[object]) -> None:
    """``await call`` must fail with ``code``."""
    with pytest.raises(ClientError) as refused:
        await call
    assert refused.value.code == code, refused.value


async def test_accounts_register_login_authenticate_and_their_refusals(node: NodeRunner) -> None:
    with trio.fail_after(TIMEOUT):
        async with client.connect(node.url) as session:
            await _refused("not_authenticated", session.rooms())
            login = await session.register("alice", PASSWORD, device_name="laptop")
            assert login.user_id == ALICE
            assert session.user_id == ALICE
            assert session.device_id == login.device_id
            assert session.store.access_token is not None
            await _refused("user_exists", session.register("alice", PASSWORD))
            await _refused("bad_identifier", session.register("Not Valid", PASSWORD))
            await _refused("bad_params", session.register("carol", "short"))  # checked here
            token = session.store.access_token

        async with client.connect(node.url) as other:
            await _refused("bad_credentials", other.login("alice", "wrong password"))
            await _refused("bad_credentials", other.authenticate("A" * 43))
            again = await other.authenticate(token)
            assert again == login
            phone = await other.login("alice", PASSWORD, device_name="phone")
            assert phone.device_id != login.device_id
            same = await other.login("alice", PASSWORD, device_id=login.device_id)
            assert same.device_id == login.device_id
            assert other.store.access_token != token  # login replaced the device's token


async def test_registration_closed_is_refused(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            config = node_config(tmp_path, registration_mode="closed")
            port = await start_node(nursery, config)
            async with client.connect(f"ws://127.0.0.1:{port}") as session:
                await _refused("registration_closed", session.register("alice", PASSWORD))
            nursery.cancel_scope.cancel()


async def test_devices_can_be_listed_renamed_revoked_and_logged_out(node: NodeRunner) -> None:
    with trio.fail_after(TIMEOUT):
        async with signed_up(node.url, "alice") as laptop, client.connect(node.url) as phone:
            await phone.login("alice", PASSWORD)
            devices = await laptop.devices()
            assert {d.device_id for d in devices} == {laptop.device_id, phone.device_id}
            (current,) = [d for d in devices if d.current]
            assert current.device_id == laptop.device_id
            assert current.created_ts > 0

            phone_id = phone.device_id
            assert phone_id is not None
            await laptop.rename_device(phone_id, "my phone")
            names = {d.device_id: d.display_name for d in await laptop.devices()}
            assert names[phone_id] == "my phone"
            await _refused("not_found", laptop.rename_device("NOSUCHDEV1", "x"))

            await laptop.revoke_device(phone_id)
            assert [d.device_id for d in await laptop.devices()] == [laptop.device_id]
            await _refused("not_found", laptop.revoke_device(phone_id))

            await laptop.logout()
            assert not laptop.logged_in
            assert laptop.store.access_token is None
            await _refused("not_authenticated", laptop.devices())


async def test_room_ops_succeed_and_follow_the_rooms_rules(node: NodeRunner) -> None:
    with trio.fail_after(TIMEOUT):
        async with signed_up(node.url, "alice") as alice, signed_up(node.url, "bob") as bob:
            room_id = await alice.create_room(name="plans", topic="what next")
            (summary,) = await alice.rooms()
            assert summary == client.RoomSummary(
                room_id, "plans", "what next", False, False, "join", 1, 0
            )
            await _refused("not_invited", bob.join(room_id))
            await _refused("not_found", alice.invite(room_id, "@carol:elsewhere.example"))
            assert (await alice.invite(room_id, BOB)).startswith("$")
            (invited,) = await bob.rooms()
            assert invited.membership == "invite"
            await bob.join(room_id)
            await _refused("already_joined", alice.invite(room_id, BOB))

            await _refused("insufficient_power", bob.set_name(room_id, "mine"))
            await _refused("insufficient_power", bob.set_topic(room_id, "mine too"))
            await alice.set_name(room_id, "plans 2")
            await alice.set_topic(room_id, "still")
            await _refused("bad_params", alice.set_join_rule(room_id, "secret"))
            await alice.set_join_rule(room_id, "public")
            await _refused("creator_immutable", alice.set_level(room_id, ALICE, 10))
            await alice.set_level(room_id, BOB, 55)
            await _refused("level_above_own", bob.set_thresholds(room_id, {"invite": 70}))
            await alice.set_thresholds(room_id, {"kick": 60, "ban": 60})

            members = {m.user_id: m for m in await alice.members(room_id)}
            assert members[ALICE].creator
            assert members[ALICE].level == 2**53 - 1
            assert members[BOB] == client.Member(BOB, "join", None, 55, False)
            (summary,) = await bob.rooms()
            assert (summary.name, summary.topic, summary.member_count) == ("plans 2", "still", 2)

            await _refused("insufficient_power", bob.kick(room_id, ALICE))
            await _refused("insufficient_power", bob.ban(room_id, ALICE))
            await alice.kick(room_id, BOB, reason="tidying up")
            await _refused("not_joined", bob.members(room_id))
            await bob.join(room_id)  # public now
            await _refused("not_banned", alice.unban(room_id, BOB))
            await alice.ban(room_id, BOB)
            await _refused("banned", bob.join(room_id))
            await alice.unban(room_id, BOB)
            await bob.join(room_id)
            await bob.leave(room_id)
            await _refused("not_member", bob.leave(room_id))
            await _refused("not_found", alice.join("!" + "A" * 43))


async def test_direct_rooms_need_one_invitee(node: NodeRunner) -> None:
    with trio.fail_after(TIMEOUT):
        async with signed_up(node.url, "alice") as alice, signed_up(node.url, "bob") as bob:
            await _refused("bad_params", alice.create_room(direct=True, invite=[BOB, ALICE]))
            room_id = await alice.create_room(direct=True, invite=[BOB])
            (summary,) = await bob.rooms()
            assert (summary.room_id, summary.direct, summary.membership) == (
                room_id,
                True,
                "invite",
            )


async def test_messages_send_redact_history_typing_receipts(node: NodeRunner) -> None:
    with trio.fail_after(TIMEOUT):
        async with signed_up(node.url, "alice") as alice, signed_up(node.url, "bob") as bob:
            room_id = await alice.create_room(public=True)
            await _refused("not_joined", bob.send(room_id, "let me in"))
            await bob.join(room_id)
            first = await bob.send(room_id, "one")
            same = await bob.send(room_id, "one, again", txn_id="t-1")
            assert await bob.send(room_id, "ignored: same txn", txn_id="t-1") == same
            await _refused("bad_params", alice.send(room_id, {"name": "x"}, type="name"))
            custom = await alice.send(room_id, {"any": "thing"}, type="org.example.ping")

            page = await alice.history(room_id, limit=3)
            assert [e.event_id for e in page.events] == [first, same, custom]
            assert page.events[0].body == "one"
            assert page.events[2].type == "org.example.ping"
            assert page.before == first
            older = await alice.history(room_id, before=page.before, limit=100)
            assert older.before is None
            assert older.events[0].type == "create"
            await _refused("bad_params", alice.history(room_id, limit=0))  # checked here

            await _refused("insufficient_power", bob.redact(room_id, custom))
            redaction = await alice.redact(room_id, first, reason="oops", txn_id="r-1")
            assert await alice.redact(room_id, first, txn_id="r-1") == redaction
            await _refused("not_found", alice.redact(room_id, "$" + "A" * 43))
            (redacted,) = [e for e in (await alice.history(room_id)).events if e.event_id == first]
            assert redacted.redacted_by == redaction
            assert redacted.body is None

            (summary,) = await alice.rooms()
            assert summary.unread_count == 2  # bob's two messages
            await alice.receipt(room_id, same)
            (summary,) = await alice.rooms()
            assert summary.unread_count == 0
            await _refused("not_found", alice.receipt(room_id, "$" + "A" * 43))

            await bob.typing(room_id, True, timeout_ms=5000)
            await bob.typing(room_id, False)
            await bob.leave(room_id)
            await _refused("not_joined", bob.typing(room_id))
            await _refused("not_joined", bob.history(room_id))


async def test_to_device_messages_reach_the_device(node: NodeRunner) -> None:
    with trio.fail_after(TIMEOUT):
        async with signed_up(node.url, "alice") as alice, signed_up(node.url, "bob") as bob:
            assert bob.device_id is not None
            await alice.send_to_device("org.example.key", {BOB: {bob.device_id: {"k": 1}}})
            await alice.send_to_device("org.example.key", {BOB: {"*": {"k": 2}}}, txn_id="x")
            await alice.send_to_device("org.example.key", {BOB: {"*": {"k": 3}}}, txn_id="x")
            await _refused("not_found", alice.send_to_device("t.x", {"@nobody:localhost": {}}))
            got = []
            async for update in bob.sync():
                if isinstance(update, client.ToDevice):
                    got.append((update.sender, update.sender_device, update.type, update.content))
                if isinstance(update, client.CaughtUp):
                    break
            assert got == [
                (ALICE, alice.device_id, "org.example.key", {"k": 1}),
                (ALICE, alice.device_id, "org.example.key", {"k": 2}),
            ]


async def test_presence_ops_answer_for_contacts_only(node: NodeRunner) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            signed_up(node.url, "alice") as alice,
            signed_up(node.url, "bob") as bob,
            signed_up(node.url, "carol") as carol,
        ):
            await alice.ping()
            await alice.heartbeat()
            room_id = await alice.create_room(public=True)
            await bob.join(room_id)
            await bob.set_presence("at lunch")
            (info,) = await alice.get_presence([BOB, "@carol:localhost"])  # carol: no contact
            assert (info.user_id, info.online, info.status_msg) == (BOB, True, "at lunch")
            assert info.last_active_ts is not None
            assert await carol.get_presence([ALICE]) == []
            await _refused("bad_params", alice.get_presence(["not a user id"]))


async def test_a_store_of_another_node_starts_over(node: NodeRunner, tmp_path: Path) -> None:
    path = tmp_path / "alice.json"
    stale = client.Store(path, url="ws://elsewhere.example:7447", user_id="@alice:elsewhere")
    stale.remember_login(stale.url or "", "@alice:elsewhere", "OLDDEVICE1", "old token")
    stale.cursor = 99
    with trio.fail_after(TIMEOUT):
        async with client.connect(node.url, store=stale) as session:
            assert not session.logged_in  # that token belongs to another node
            kept = json.loads(stale.dumps())
            assert (kept["url"], kept["user_id"], kept["cursor"]) == (node.url, None, None)
            await session.register("alice", PASSWORD)
        assert client.Store.load(path).user_id == ALICE
