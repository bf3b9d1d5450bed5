"""Black-box checks of spec/federation.md §3-§5 — transactions, the checks of §4, fetching
events — against a running node, by a fake peer (``tests.conformance.fake_peer``).

What each group needs of the node under test:

- the handshake (§2), the checks of §4 steps 1-2, rooms the node does not hold and
  ``sign_invite`` of an unknown user need only the node's server name (``--server-name``,
  or learnt from a user registered with ``--registration-token``);
- everything about a room the node holds needs ``--registration-token``: a user of the
  node creates the room through the client protocol (client.md), public when the fake peer
  must read or join it (§5: any server may ``backfill`` a public room), private when it must
  be refused.

Every test ends by checking that the node still opens and serves a new link.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

from protocol import compute_event_id, redact_event
from protocol.federation.keys import OldKey, build_key_object
from tests.conformance.fake_peer import (
    NO_EVENT,
    NO_ROOM,
    TIMEOUT,
    FakePeer,
    assert_serving,
    authenticated,
    fake_server_name,
    now_ms,
    open_fake_peer,
    other_key,
    parents_first,
    room_creator,
)

# --- §3.1, §4 steps 1-2: events refused whatever the room -----------------------------------


def _not_an_event(peer: FakePeer) -> dict[str, Any]:
    return {"type": "message"}


def _extra_field(peer: FakePeer) -> dict[str, Any]:
    return {**peer.event(room_id=NO_ROOM)[0], "extra": 1}


def _bad_sender(peer: FakePeer) -> dict[str, Any]:
    return {**peer.event(room_id=NO_ROOM)[0], "sender": "mallory"}


def _oversized(peer: FakePeer) -> dict[str, Any]:
    """Over the size limit even in redacted form: power levels keep ``events`` (events.md
    §4.2). (An event only its content makes too large is kept redacted, §7 step 2.)"""
    event = peer.event(room_id=NO_ROOM, event_type="power_levels", state_key="", content={})[0]
    levels = {f"org.example.t{n:06}": 50 for n in range(30_000)}
    return {**event, "content": {"events": levels}}


def _unknown_key(peer: FakePeer) -> dict[str, Any]:
    return peer.event(room_id=NO_ROOM, key=other_key())[0]


def _bad_signature(peer: FakePeer) -> dict[str, Any]:
    event, _ = peer.event(room_id=NO_ROOM)
    [(key_name, _)] = event["signatures"][peer.name].items()
    other, _ = peer.event(room_id=NO_ROOM, content={"body": "other", "msgtype": "text"})
    forged = next(iter(other["signatures"][peer.name].values()))
    return {**event, "signatures": {peer.name: {key_name: forged}}}


def _node_users_event(peer: FakePeer) -> dict[str, Any]:
    return peer.event(room_id=NO_ROOM, sender=f"@someone:{peer.node_name}")[0]


def _third_servers_event(peer: FakePeer) -> dict[str, Any]:
    return peer.event(room_id=NO_ROOM, sender=f"@someone:{fake_server_name()}")[0]


def _unknown_room(peer: FakePeer) -> dict[str, Any]:
    return peer.event(room_id=NO_ROOM)[0]


_WELL_FORMED = {"unknown_key", "bad_signature", "missing_signature", "not_found"}


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_not_an_event, "bad_event"),
        (_extra_field, "bad_event"),
        (_bad_sender, "bad_identifier"),
        (_oversized, "too_large"),
        (_unknown_key, "unknown_key"),
        (_bad_signature, "bad_signature"),
        (_node_users_event, "missing_signature"),
        (_third_servers_event, "missing_signature"),
        (_unknown_room, "not_found"),
    ],
    ids=[
        "not_an_event",
        "extra_field",
        "bad_sender",
        "oversized",
        "signed_by_an_unknown_key",
        "signature_does_not_verify",
        "speaks_for_a_user_of_the_node",
        "speaks_for_a_user_of_a_third_server",
        "room_the_node_does_not_hold",
    ],
)
async def test_an_event_failing_a_check_is_refused_with_its_reason(
    node_url: str, server_name: str, make: Callable[[FakePeer], dict[str, Any]], reason: str
) -> None:
    """§4: format, then the sender's server's signature, then the room — the first failing
    check gives the reason. The room is one the node does not hold, so a node that looked
    at the room before the signature would answer ``not_found`` instead."""
    with trio.fail_after(TIMEOUT):
        async with authenticated(node_url, server_name) as peer:
            pdu = make(peer)
            [outcome] = await peer.txn(pdu)
            assert (outcome["outcome"], outcome.get("reason")) == ("refused", reason)
            if reason in _WELL_FORMED:
                assert outcome["event_id"] == compute_event_id(pdu)
            assert await peer.result("ping") == {}  # a refused event leaves the link open
        await assert_serving(node_url, server_name)


async def test_a_txn_over_its_limits_is_too_large(node_url: str, server_name: str) -> None:
    """§3.1: at most 100 pdus and 100 edus, a ``txn_id`` of at most 64 characters."""
    with trio.fail_after(TIMEOUT):
        async with authenticated(node_url, server_name) as peer:
            pdu = peer.event(room_id=NO_ROOM)[0]
            edu = {"type": "typing", "content": {}}
            assert await peer.error("txn", txn_id="t", pdus=[pdu] * 101, edus=[]) == "too_large"
            assert await peer.error("txn", txn_id="t", pdus=[], edus=[edu] * 101) == "too_large"
            assert await peer.error("txn", txn_id="t" * 65, pdus=[], edus=[]) == "too_large"
            assert await peer.result("ping") == {}
        await assert_serving(node_url, server_name)


async def test_relayed_events_are_verified_with_the_key_objects_the_txn_carries(
    node_url: str, server_name: str
) -> None:
    """§3.1: ``keys`` carries the key objects of the other servers whose events are relayed."""
    with trio.fail_after(TIMEOUT):
        async with authenticated(node_url, server_name) as peer:
            third = FakePeer(peer.ws, server_name)  # only to sign as a third server
            relayed, relayed_id = third.event()
            [unknown] = await peer.txn(relayed)
            assert (unknown["outcome"], unknown.get("reason")) == ("refused", "unknown_key")
            [verified] = await peer.txn(relayed, keys=[third.key_object()])
            # Its signature now verifies: what refuses it is the room (§4 step 4).
            assert verified == {"event_id": relayed_id, "outcome": "refused", "reason": "not_found"}
        await assert_serving(node_url, server_name)


async def test_an_old_key_verifies_only_events_made_before_it_was_retired(
    node_url: str, server_name: str
) -> None:
    """§1.3: an old key verifies events made before its ``expired_ts``, no later ones."""
    with trio.fail_after(TIMEOUT):
        async with open_fake_peer(node_url, server_name) as peer:
            retired = other_key()
            retired_at = now_ms() - 60_000
            keys = build_key_object(
                peer.name, now_ms(), [peer.key], [OldKey(retired.verify_key, retired_at)]
            )
            assert "result" in await peer.hello(keys=keys)
            assert await peer.result("link_prove", proof=peer.proof()) == {}
            before, before_id = peer.event(key=retired, ts=retired_at - 60_000)
            after, _ = peer.event(key=retired, ts=retired_at + 1)
            outcomes = await peer.txn(before, after)
            assert [(o["outcome"], o.get("reason")) for o in outcomes] == [
                ("refused", "not_found"),  # verified; the room is unknown
                ("refused", "unknown_key"),
            ]
            assert outcomes[0]["event_id"] == before_id
        await assert_serving(node_url, server_name)


async def test_a_link_proof_by_an_old_key_is_unknown_key(node_url: str, server_name: str) -> None:
    """§1.3: a link proof is checked against the current keys only."""
    with trio.fail_after(TIMEOUT):
        async with open_fake_peer(node_url, server_name) as peer:
            retired = other_key()
            keys = build_key_object(
                peer.name, now_ms(), [peer.key], [OldKey(retired.verify_key, now_ms() - 1000)]
            )
            assert "result" in await peer.hello(keys=keys)
            assert await peer.error("link_prove", proof=peer.proof(key=retired)) == "unknown_key"
            assert await peer.close_code() == 1008
        await assert_serving(node_url, server_name)


async def test_client_ops_are_unknown_on_the_federation_endpoint(
    node_url: str, server_name: str
) -> None:
    """wire.md §3 step 5.3: an op not allowed on ``/federation`` is ``unknown_op``."""
    with trio.fail_after(TIMEOUT):
        async with open_fake_peer(node_url, server_name) as peer:
            assert await peer.error("rooms") == "unknown_op"
            await peer.authenticate()
            assert await peer.error("rooms") == "unknown_op"
            assert await peer.error("create_room") == "unknown_op"
            assert await peer.result("ping") == {}
        await assert_serving(node_url, server_name)


# --- §4 steps 3-4: events of a room the node holds (needs --registration-token) -------------


async def test_a_peer_joins_a_public_room_and_messages_flow_both_ways(
    node_url: str, server_name: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            room_creator(node_url, registration_token, public=True) as (creator, room_id),
            authenticated(node_url, server_name) as peer,
        ):
            room = await peer.history(room_id)
            create_id = "$" + room_id[1:]
            # §5: from the create event on, every event after its parents.
            assert next(iter(room.events)) == create_id
            assert parents_first(room, list(room.events))
            _, outcome = await peer.join(room)
            assert outcome == "accepted"
            message, message_id = peer.event_in(
                room, content={"body": "hello from a peer", "msgtype": "text"}
            )
            assert await peer.txn(message) == [{"event_id": message_id, "outcome": "accepted"}]
            await creator.result("sync")
            items = await creator.items_until(
                lambda item: item.get("event", {}).get("event_id") == message_id
            )
            seen = next(
                i["event"] for i in items if i.get("event", {}).get("event_id") == message_id
            )
            assert (seen["sender"], seen["content"]["body"]) == (peer.user(), "hello from a peer")
            # §3.3: the peer's server is now a destination of the room's events, sent over
            # the one link between the two servers (§2.3).
            sent = await creator.result(
                "send", room_id=room_id, txn_id="to-peer", content={"body": "hello, peer"}
            )
            while sent["event_id"] not in peer.pdus:
                await peer.next_request()
            assert peer.pdus[sent["event_id"]]["content"]["body"] == "hello, peer"
        await assert_serving(node_url, server_name)


async def test_an_event_the_rooms_rules_refuse_is_rejected_with_their_reason(
    node_url: str, server_name: str, registration_token: str
) -> None:
    """§3.1: ``rejected`` carries the reason code of rooms.md §7; the event is stored."""
    with trio.fail_after(TIMEOUT):
        async with (
            room_creator(node_url, registration_token, public=True) as (_, room_id),
            authenticated(node_url, server_name) as peer,
        ):
            room = await peer.history(room_id)
            early, early_id = peer.event_in(room)  # before its sender joined
            assert await peer.txn(early) == [
                {"event_id": early_id, "outcome": "rejected", "reason": "not_joined"}
            ]
            room.add(early, early_id)
            assert (await peer.join(room))[1] == "accepted"
            rename, rename_id = peer.event_in(
                room, event_type="name", state_key="", content={"name": "taken over"}
            )
            assert await peer.txn(rename) == [
                {"event_id": rename_id, "outcome": "rejected", "reason": "insufficient_power"}
            ]
            stored = await peer.history(room_id)
            assert {early_id, rename_id} <= set(stored.events)  # kept: others may build on it
        await assert_serving(node_url, server_name)


async def test_an_event_with_a_wrong_content_hash_is_kept_redacted(
    node_url: str, server_name: str, registration_token: str
) -> None:
    """§4 step 3, events.md §7 step 9: the redacted form is kept under the same id."""
    with trio.fail_after(TIMEOUT):
        async with (
            room_creator(node_url, registration_token, public=True) as (_, room_id),
            authenticated(node_url, server_name) as peer,
        ):
            room = await peer.history(room_id)
            assert (await peer.join(room))[1] == "accepted"
            # A message: its redacted content ({}) has no body, and the verdict reads only
            # the redacted form (rooms.md §5 step 3), so it is accepted all the same.
            signed, event_id = peer.event_in(room, content={"body": "original", "msgtype": "text"})
            tampered = {**signed, "content": {"body": "altered", "msgtype": "text"}}
            assert await peer.txn(tampered) == [{"event_id": event_id, "outcome": "accepted"}]
            kept = (await peer.history(room_id)).events[event_id]
            kept.pop("unsigned", None)  # data added in transit (events.md §2) may come along
            assert kept == redact_event(tampered)
        await assert_serving(node_url, server_name)


async def test_a_replayed_event_is_a_duplicate(
    node_url: str, server_name: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            room_creator(node_url, registration_token, public=True) as (_, room_id),
            authenticated(node_url, server_name) as peer,
        ):
            room = await peer.history(room_id)
            create_id = "$" + room_id[1:]
            join_id, outcome = await peer.join(room)
            assert outcome == "accepted"
            message, message_id = peer.event_in(room)
            assert (await peer.txn(message))[0]["outcome"] == "accepted"
            # The peer's own events and an event of the node itself, relayed back.
            replayed = [room.events[join_id], message, room.events[create_id]]
            outcomes = await peer.txn(*replayed)
            assert outcomes == [
                {"event_id": event_id, "outcome": "duplicate"}
                for event_id in (join_id, message_id, create_id)
            ]
        await assert_serving(node_url, server_name)


async def test_an_event_whose_parents_cannot_be_fetched_is_held(
    node_url: str, server_name: str, registration_token: str
) -> None:
    """§4 step 4, §5: the node asks the sender for the missing parents; the fake peer has
    none to give, so the event is held."""
    with trio.fail_after(TIMEOUT):
        async with (
            room_creator(node_url, registration_token, public=True) as (_, room_id),
            authenticated(node_url, server_name) as peer,
        ):
            room = await peer.history(room_id)
            assert (await peer.join(room))[1] == "accepted"
            orphan, orphan_id = peer.event(
                room_id=room_id, prev_events=[NO_EVENT], depth=room.next_depth() + 1
            )
            assert await peer.txn(orphan) == [{"event_id": orphan_id, "outcome": "held"}]
            asked = [r for r in peer.requests if r["op"] == "get_missing"]
            assert asked, "the node did not ask the sender for the missing parents"
            assert asked[0]["params"]["room_id"] == room_id
            assert NO_EVENT in asked[0]["params"]["latest"]
            assert await peer.result("ping") == {}
        await assert_serving(node_url, server_name)


# --- §5 fetching events ---------------------------------------------------------------------


async def test_fetching_from_a_room_the_node_does_not_hold_is_not_found(
    node_url: str, server_name: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with authenticated(node_url, server_name) as peer:
            missing = {"earliest": [], "latest": [NO_EVENT], "limit": 10}
            assert await peer.error("get_missing", room_id=NO_ROOM, **missing) == "not_found"
            assert await peer.error("backfill", room_id=NO_ROOM, limit=10) == "not_found"
            # §5's ranges are the op's params schema (wire.md §5.2 step 3.3).
            for limit in (0, 1001):
                assert await peer.error("backfill", room_id=NO_ROOM, limit=limit) == "bad_params"
            for limit in (0, 101):
                missing["limit"] = limit
                assert await peer.error("get_missing", room_id=NO_ROOM, **missing) == "bad_params"
        await assert_serving(node_url, server_name)


async def test_fetches_are_forbidden_to_a_server_with_no_user_in_a_private_room(
    node_url: str, server_name: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            room_creator(node_url, registration_token, public=False) as (_, room_id),
            authenticated(node_url, server_name) as peer,
        ):
            create_id = "$" + room_id[1:]
            missing = {"earliest": [], "latest": [create_id], "limit": 10}
            assert await peer.error("get_missing", room_id=room_id, **missing) == "forbidden"
            assert await peer.error("backfill", room_id=room_id, limit=10) == "forbidden"
        await assert_serving(node_url, server_name)


async def test_a_public_room_can_be_backfilled_by_anyone_but_get_missing_needs_a_user(
    node_url: str, server_name: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            room_creator(node_url, registration_token, public=True) as (_, room_id),
            authenticated(node_url, server_name) as peer,
        ):
            whole = await peer.history(room_id)
            paged = await peer.history(room_id, limit=1)  # one event a page, tokens followed
            assert set(paged.events) == set(whole.events)
            assert parents_first(paged, list(paged.events))
            tips = whole.extremities()
            missing = {"earliest": [], "latest": tips, "limit": 100}
            assert await peer.error("get_missing", room_id=room_id, **missing) == "forbidden"
            join_id, outcome = await peer.join(whole)
            assert outcome == "accepted"
            # Now the peer has a user in the room: get_missing walks back from `latest`.
            found = await peer.result(
                "get_missing", room_id=room_id, earliest=[], latest=[join_id], limit=100
            )
            assert {compute_event_id(e) for e in found["events"]} == set(whole.events)
            assert {k["server_name"] for k in found["keys"]} == {server_name, peer.name}
            create_id = "$" + room_id[1:]
            bounded = await peer.result(
                "get_missing", room_id=room_id, earliest=[create_id], latest=[join_id], limit=100
            )
            assert {compute_event_id(e) for e in bounded["events"]} == set(whole.events) - {
                create_id
            }
            first = await peer.result(
                "get_missing", room_id=room_id, earliest=[], latest=[join_id], limit=1
            )
            assert [compute_event_id(e) for e in first["events"]] == [join_id]
        await assert_serving(node_url, server_name)
