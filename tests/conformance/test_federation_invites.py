"""Black-box checks of spec/federation.md §7-§8 — invites across nodes, to-device messages
and EDUs — against a running node, by a fake peer (``tests.conformance.fake_peer``).

What each test needs of the node under test is said in ``test_federation_events``. Every
test ends by checking that the node still opens and serves a new link.
"""

from __future__ import annotations

from typing import Any

import trio

from protocol import compute_event_id
from protocol.events import verify_countersignature
from tests.conformance.client_session import fresh_name, session
from tests.conformance.fake_peer import (
    NO_EVENT,
    NO_ROOM,
    TIMEOUT,
    FakePeer,
    assert_serving,
    authenticated,
    fake_server_name,
    other_key,
    room_creator,
)

# --- §7 invites across nodes ------------------------------------------------------------------


def _invite(peer: FakePeer, invitee: str) -> tuple[dict[str, Any], str]:
    return peer.event(
        room_id=NO_ROOM,
        event_type="member",
        state_key=invitee,
        content={"membership": "invite"},
        prev_events=[NO_EVENT],
    )


async def test_sign_invite_of_an_unknown_user_is_not_found(node_url: str, server_name: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with authenticated(node_url, server_name) as peer:
            nobody = f"@{fresh_name('nobody')}:{server_name}"
            invite, _ = _invite(peer, nobody)
            assert await peer.error("sign_invite", event=invite) == "not_found"
        await assert_serving(node_url, server_name)


async def test_sign_invite_of_a_user_of_another_server_is_not_found(
    node_url: str, server_name: str
) -> None:
    """§7: the invitee must be one of the node's own active users (``not_found``)."""
    with trio.fail_after(TIMEOUT):
        async with authenticated(node_url, server_name) as peer:
            invite, _ = _invite(peer, f"@someone:{fake_server_name()}")
            assert await peer.error("sign_invite", event=invite) == "not_found"
        await assert_serving(node_url, server_name)


async def test_sign_invite_of_a_forged_event_gets_the_signature_checks_code(
    node_url: str, server_name: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with authenticated(node_url, server_name) as peer:
            invite, _ = peer.event(
                room_id=NO_ROOM,
                event_type="member",
                state_key=f"@someone:{server_name}",
                content={"membership": "invite"},
                key=other_key(),
            )
            assert await peer.error("sign_invite", event=invite) == "unknown_key"
        await assert_serving(node_url, server_name)


async def test_sign_invite_of_a_user_of_the_node_is_co_signed(
    node_url: str, server_name: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as invitee, authenticated(node_url, server_name) as peer:
            user_id = await invitee.register(registration_token, "invitee")
            invite, invite_id = _invite(peer, user_id)
            signed = (await peer.result("sign_invite", event=invite))["event"]
            assert compute_event_id(signed) == invite_id
            assert {k: v for k, v in signed.items() if k != "signatures"} == {
                k: v for k, v in invite.items() if k != "signatures"
            }
            assert signed["signatures"][peer.name] == invite["signatures"][peer.name]
            assert peer.node_keys is not None
            verify_countersignature(signed, server_name, peer.node_keys.verify_keys)
        await assert_serving(node_url, server_name)


async def test_an_invite_from_a_peers_room_is_co_signed_fetched_and_can_be_joined(
    node_url: str, server_name: str, registration_token: str
) -> None:
    """§7 from the invitee's side, then §6 step 3: the node co-signs the invite, fetches the
    room's history from the peer when the invite arrives, shows the invite to its user,
    and sends the user's join back to the peer."""
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as invitee, authenticated(node_url, server_name) as peer:
            user_id = await invitee.register(registration_token, "invitee")
            room = peer.create_room()
            invite, invite_id = peer.event_in(
                room, event_type="member", state_key=user_id, content={"membership": "invite"}
            )
            signed = (await peer.result("sign_invite", event=invite))["event"]
            assert compute_event_id(signed) == invite_id
            assert await peer.txn(signed) == [{"event_id": invite_id, "outcome": "accepted"}]
            fetched = [
                r
                for r in peer.requests
                if r["op"] in ("backfill", "get_missing") and r["params"]["room_id"] == room.room_id
            ]
            assert fetched, "the node did not fetch the room's history from the peer"
            room.add(signed, invite_id)
            memberships = [
                r["membership"]
                for r in (await invitee.result("rooms"))["rooms"]
                if r["room_id"] == room.room_id
            ]
            assert memberships == ["invite"]
            joined = (await invitee.result("join", room_id=room.room_id))["event_id"]
            while joined not in peer.pdus:
                await peer.next_request()
            join = peer.pdus[joined]
            assert (join["sender"], join["state_key"], join["content"]["membership"]) == (
                user_id,
                user_id,
                "join",
            )
            assert join["prev_events"] == [invite_id]
            assert peer.node_keys is not None
            verify_countersignature(join, server_name, peer.node_keys.verify_keys)
        await assert_serving(node_url, server_name)


# --- §8 to-device messages ------------------------------------------------------------------


async def test_to_device_messages_for_unknown_users_are_answered_and_dropped(
    node_url: str, server_name: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with authenticated(node_url, server_name) as peer:
            message = {
                "message_id": "m1",
                "sender": peer.user(),
                "sender_device": "FAKEDEVICE",
                "type": "org.example.ping",
                "user_id": f"@{fresh_name('nobody')}:{server_name}",
                "device_id": "*",
                "content": {},
            }
            assert await peer.result("to_device", messages=[message]) == {}
            assert await peer.result("ping") == {}
        await assert_serving(node_url, server_name)


async def test_to_device_messages_reach_the_device_only_from_the_peers_own_users(
    node_url: str, server_name: str, registration_token: str
) -> None:
    """§8: a message is stored for the target's devices (``*``: all of them); its sender
    must be a user of the link's peer, or it is dropped."""
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as target, authenticated(node_url, server_name) as peer:
            user_id = await target.register(registration_token, "target")

            def message(message_id: str, sender: str) -> dict[str, Any]:
                return {
                    "message_id": message_id,
                    "sender": sender,
                    "sender_device": "FAKEDEVICE",
                    "type": "org.example.key",
                    "user_id": user_id,
                    "device_id": "*",
                    "content": {"n": message_id},
                }

            impostor = message("m1", f"@someone:{fake_server_name()}")
            genuine = message("m2", peer.user())
            assert await peer.result("to_device", messages=[impostor, genuine]) == {}
            await target.result("sync")
            items = await target.items_until(lambda item: item["kind"] == "to_device")
            delivered = [i for i in items if i["kind"] == "to_device"]
            assert [(i["sender"], i["content"]) for i in delivered] == [(peer.user(), {"n": "m2"})]
        await assert_serving(node_url, server_name)


async def test_receipts_count_only_for_the_peers_own_users(
    node_url: str, server_name: str, registration_token: str
) -> None:
    """§8: an EDU naming a user of another server as its actor is skipped; the others are
    applied (a receipt reaches the room's joined users, client.md §5)."""
    with trio.fail_after(TIMEOUT):
        async with (
            room_creator(node_url, registration_token, public=True) as (creator, room_id),
            authenticated(node_url, server_name) as peer,
        ):
            room = await peer.history(room_id)
            assert (await peer.join(room))[1] == "accepted"
            message, message_id = peer.event_in(room)
            assert (await peer.txn(message))[0]["outcome"] == "accepted"

            def receipt(user_id: str) -> dict[str, Any]:
                content = {"room_id": room_id, "user_id": user_id, "event_id": message_id}
                return {"type": "receipt", "content": content}

            # Two transactions, processed in order (§3.2): the forged receipt comes first.
            for txn_id, edu in (
                ("r1", receipt(creator.user_id or "")),
                ("r2", receipt(peer.user())),
            ):
                assert await peer.result("txn", txn_id=txn_id, pdus=[], edus=[edu]) == {"pdus": []}
            await creator.result("sync")
            items = await creator.items_until(lambda item: item["kind"] == "receipt")
            receipts = [(i["user_id"], i["event_id"]) for i in items if i["kind"] == "receipt"]
            assert receipts == [(peer.user(), message_id)]
        await assert_serving(node_url, server_name)
