"""Black-box checks of spec/federation.md against a running node, by a fake peer
(``tests.conformance.fake_peer``) that opens links to the node's ``/federation`` endpoint.

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

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import nacl.signing
import pytest
import trio

from protocol import compute_event_id, redact_event
from protocol.events import verify_countersignature
from protocol.federation.keys import OldKey, build_key_object
from protocol.federation.link import LinkRoles, encode_nonce
from tests.conformance.client_session import Session, fresh_name, session
from tests.conformance.fake_peer import (
    NO_EVENT,
    NO_ROOM,
    FakePeer,
    LinkClosedError,
    RoomHistory,
    fake_server_name,
    now_ms,
    open_fake_peer,
)

TIMEOUT = 10


def _other_key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(os.urandom(32))


async def _assert_serving(node_url: str, server_name: str) -> None:
    """The node still opens, authenticates and serves a new link."""
    async with open_fake_peer(node_url, server_name) as peer:
        await peer.authenticate()
        assert await peer.result("ping") == {}


@asynccontextmanager
async def _authenticated(node_url: str, server_name: str) -> AsyncIterator[FakePeer]:
    async with open_fake_peer(node_url, server_name) as peer:
        await peer.authenticate()
        yield peer


@asynccontextmanager
async def _room_creator(
    node_url: str, token: str, *, public: bool
) -> AsyncIterator[tuple[Session, str]]:
    """A user of the node and a room they created (public or invite-only)."""
    async with session(node_url) as creator:
        await creator.register(token, "fed")
        room_id = (await creator.result("create_room", name="federation", public=public))["room_id"]
        yield creator, room_id


def _parents_first(room: RoomHistory, order: list[str]) -> bool:
    seen: set[str] = set()
    for event_id in order:
        if any(parent not in seen for parent in room.events[event_id]["prev_events"]):
            return False
        seen.add(event_id)
    return True


# --- §2.2 opening a link ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "params"),
    [
        ("txn", {"txn_id": "t", "pdus": [], "edus": []}),
        (
            "get_missing",
            {"room_id": NO_ROOM, "earliest": [], "latest": [NO_EVENT], "limit": 1},
        ),
        ("backfill", {"room_id": NO_ROOM, "limit": 1}),
        ("sign_invite", {"event": {}}),
        ("to_device", {"messages": []}),
    ],
)
async def test_requests_before_the_handshake_are_not_authenticated(
    node_url: str, server_name: str, op: str, params: dict[str, Any]
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_peer(node_url, server_name) as peer:
            assert await peer.error(op, **params) == "not_authenticated"
            hello = await peer.hello()  # the refusal left the link open
            assert "result" in hello, hello
            assert await peer.error(op, **params) == "not_authenticated"  # half a handshake
        await _assert_serving(node_url, server_name)


async def test_a_proof_before_the_hello_does_not_authenticate(
    node_url: str, server_name: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_peer(node_url, server_name) as peer:
            guessed = LinkRoles(peer.name, server_name, peer.nonce, encode_nonce(os.urandom(32)))
            assert "error" in await peer.request("link_prove", proof=peer.proof(roles=guessed))
            # The node may close the link for it (a refused proof does, §2.2); if it does
            # not, the link is still not authenticated.
            with contextlib.suppress(LinkClosedError):
                assert await peer.error("txn", txn_id="t", pdus=[], edus=[]) == "not_authenticated"
        await _assert_serving(node_url, server_name)


async def test_a_valid_handshake_authenticates_the_link_and_ping_works(
    node_url: str, server_name: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_peer(node_url, server_name) as peer:
            hello = await peer.hello()
            assert "result" in hello, hello
            # The node proves its own name for this link: its nonce, its key object, its
            # proof as responder (checked as an initiator must, §2.2).
            peer.check_hello_result(hello["result"])
            assert peer.node_nonce != peer.nonce
            assert await peer.result("link_prove", proof=peer.proof()) == {}
            assert await peer.result("ping") == {}
            assert await peer.result("txn", txn_id="empty", pdus=[], edus=[]) == {"pdus": []}
        await _assert_serving(node_url, server_name)


async def test_hello_naming_another_responder_is_not_found(node_url: str, server_name: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_peer(node_url, server_name) as peer:
            answer = await peer.hello(responder=fake_server_name())
            assert answer["error"]["code"] == "not_found"
        await _assert_serving(node_url, server_name)


async def test_hello_claiming_the_nodes_own_name_is_forbidden(
    node_url: str, server_name: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_peer(node_url, server_name, name=server_name) as peer:
            assert (await peer.hello())["error"]["code"] == "forbidden"
        await _assert_serving(node_url, server_name)


def _unsigned(obj: dict[str, Any]) -> dict[str, Any]:
    return {**obj, "signatures": {}}


def _retimed(obj: dict[str, Any]) -> dict[str, Any]:
    return {**obj, "ts": obj["ts"] + 1}


def _extra(obj: dict[str, Any]) -> dict[str, Any]:
    return {**obj, "valid_until_ts": obj["ts"]}


@pytest.mark.parametrize(
    ("change", "code"),
    [(_unsigned, "missing_signature"), (_retimed, "bad_signature"), (_extra, "bad_key")],
    ids=["unsigned", "changed_after_signing", "extra_member"],
)
async def test_hello_with_a_broken_key_object_gets_the_code_of_its_first_failing_check(
    node_url: str,
    server_name: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    code: str,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_peer(node_url, server_name) as peer:
            answer = await peer.hello(keys=change(peer.key_object()))
            assert answer["error"]["code"] == code
        await _assert_serving(node_url, server_name)


async def test_a_second_hello_on_a_link_is_forbidden(node_url: str, server_name: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with _authenticated(node_url, server_name) as peer:
            assert (await peer.hello())["error"]["code"] == "forbidden"
            assert await peer.result("ping") == {}
        await _assert_serving(node_url, server_name)


async def test_a_new_key_must_be_signed_by_the_pinned_one(node_url: str, server_name: str) -> None:
    """§1.2: a newer key object replaces the pinned one only if a pinned key signed it."""
    with trio.fail_after(TIMEOUT):
        first_ts = now_ms()
        async with open_fake_peer(node_url, server_name) as first:
            assert "result" in await first.hello(keys=first.key_object(ts=first_ts))
            assert await first.result("link_prove", proof=first.proof()) == {}
        async with open_fake_peer(node_url, server_name, name=first.name) as usurper:
            keys = usurper.key_object(ts=first_ts + 1000)
            assert (await usurper.hello(keys=keys))["error"]["code"] == "unknown_key"
        async with open_fake_peer(node_url, server_name, name=first.name) as rotated:
            keys = build_key_object(
                rotated.name, first_ts + 2000, [rotated.key], [], co_signers=[first.key]
            )
            assert "result" in await rotated.hello(keys=keys)
            assert await rotated.result("link_prove", proof=rotated.proof()) == {}
            assert await rotated.result("ping") == {}
        await _assert_serving(node_url, server_name)


async def test_an_older_key_object_changes_nothing(node_url: str, server_name: str) -> None:
    """§1.2: an object no newer than the pinned one is ignored; the pinned keys still hold."""
    with trio.fail_after(TIMEOUT):
        pinned_ts = now_ms()
        async with open_fake_peer(node_url, server_name) as first:
            assert "result" in await first.hello(keys=first.key_object(ts=pinned_ts))
            assert await first.result("link_prove", proof=first.proof()) == {}
        async with open_fake_peer(node_url, server_name, name=first.name) as older:
            assert "result" in await older.hello(keys=older.key_object(ts=pinned_ts - 1000))
            assert await older.error("link_prove", proof=older.proof()) == "unknown_key"
            assert await older.close_code() == 1008
        async with open_fake_peer(node_url, server_name, name=first.name) as replayed:
            replayed.key = first.key
            assert "result" in await replayed.hello(keys=first.key_object(ts=pinned_ts))
            assert await replayed.result("link_prove", proof=replayed.proof()) == {}
        await _assert_serving(node_url, server_name)


_KEY_OBJECT_CODES = {
    "bad_key",
    "bad_identifier",
    "bad_base64",
    "missing_signature",
    "bad_signature",
}


async def test_hello_with_the_key_object_of_another_server_is_refused(
    node_url: str, server_name: str
) -> None:
    """§2.2: ``keys`` must be a valid key object *for* ``server_name``; §1.1 names no code
    for one of another server, so any of its codes will do."""
    with trio.fail_after(TIMEOUT):
        async with open_fake_peer(node_url, server_name) as peer:
            someone_else = FakePeer(peer.ws, server_name)
            answer = await peer.hello(keys=someone_else.key_object())
            assert answer.get("error", {}).get("code") in _KEY_OBJECT_CODES, answer
        await _assert_serving(node_url, server_name)


def _forged(peer: FakePeer) -> dict[str, Any]:
    return peer.proof(key=_other_key())


def _other_nonce(peer: FakePeer) -> dict[str, Any]:
    roles = LinkRoles(peer.name, peer.node_name, peer.nonce, encode_nonce(os.urandom(32)))
    return peer.proof(roles=roles)


def _stale(peer: FakePeer) -> dict[str, Any]:
    return peer.proof(ts=now_ms() - 600_000)


def _early(peer: FakePeer) -> dict[str, Any]:
    return peer.proof(ts=now_ms() + 600_000)


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (_forged, "unknown_key"),
        (_other_nonce, "bad_signature"),
        (_stale, "clock_skew"),
        (_early, "clock_skew"),
    ],
    ids=["another_key", "another_nonce", "stale", "from_the_future"],
)
async def test_a_bad_proof_is_refused_and_the_link_closed_1008(
    node_url: str, server_name: str, make: Callable[[FakePeer], dict[str, Any]], code: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_peer(node_url, server_name) as peer:
            assert "result" in await peer.hello()
            assert await peer.error("link_prove", proof=make(peer)) == code
            assert await peer.close_code() == 1008
        await _assert_serving(node_url, server_name)


HANDSHAKE_LIMIT_S = 10


@pytest.mark.slow
async def test_a_link_not_authenticated_in_time_is_closed_1008(
    node_url: str, server_name: str
) -> None:
    """§2.2: a responder closes a link not authenticated within 10 seconds. Slow: it waits
    out the limit (``kith conformance`` runs it; the default test run does not)."""
    with trio.fail_after(HANDSHAKE_LIMIT_S + TIMEOUT):
        async with open_fake_peer(node_url, server_name) as peer:
            assert "result" in await peer.hello()
            opened = trio.current_time()
            assert await peer.close_code() == 1008
            assert trio.current_time() - opened <= HANDSHAKE_LIMIT_S + 1
        await _assert_serving(node_url, server_name)


# --- §3.1, §4 steps 1-2: events refused whatever the room -----------------------------------


def _not_an_event(peer: FakePeer) -> dict[str, Any]:
    return {"type": "message"}


def _extra_field(peer: FakePeer) -> dict[str, Any]:
    return {**peer.event(room_id=NO_ROOM)[0], "extra": 1}


def _bad_sender(peer: FakePeer) -> dict[str, Any]:
    return {**peer.event(room_id=NO_ROOM)[0], "sender": "mallory"}


def _oversized(peer: FakePeer) -> dict[str, Any]:
    event = peer.event(room_id=NO_ROOM, event_type="org.example.blob", content={})[0]
    return {**event, "content": {"blob": "x" * 600_000}}


def _unknown_key(peer: FakePeer) -> dict[str, Any]:
    return peer.event(room_id=NO_ROOM, key=_other_key())[0]


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
        async with _authenticated(node_url, server_name) as peer:
            pdu = make(peer)
            [outcome] = await peer.txn(pdu)
            assert (outcome["outcome"], outcome.get("reason")) == ("refused", reason)
            if reason in _WELL_FORMED:
                assert outcome["event_id"] == compute_event_id(pdu)
            assert await peer.result("ping") == {}  # a refused event leaves the link open
        await _assert_serving(node_url, server_name)


async def test_a_txn_over_its_limits_is_too_large(node_url: str, server_name: str) -> None:
    """§3.1: at most 100 pdus and 100 edus, a ``txn_id`` of at most 64 characters."""
    with trio.fail_after(TIMEOUT):
        async with _authenticated(node_url, server_name) as peer:
            pdu = peer.event(room_id=NO_ROOM)[0]
            edu = {"type": "typing", "content": {}}
            assert await peer.error("txn", txn_id="t", pdus=[pdu] * 101, edus=[]) == "too_large"
            assert await peer.error("txn", txn_id="t", pdus=[], edus=[edu] * 101) == "too_large"
            assert await peer.error("txn", txn_id="t" * 65, pdus=[], edus=[]) == "too_large"
            assert await peer.result("ping") == {}
        await _assert_serving(node_url, server_name)


async def test_relayed_events_are_verified_with_the_key_objects_the_txn_carries(
    node_url: str, server_name: str
) -> None:
    """§3.1: ``keys`` carries the key objects of the other servers whose events are relayed."""
    with trio.fail_after(TIMEOUT):
        async with _authenticated(node_url, server_name) as peer:
            third = FakePeer(peer.ws, server_name)  # only to sign as a third server
            relayed, relayed_id = third.event()
            [unknown] = await peer.txn(relayed)
            assert (unknown["outcome"], unknown.get("reason")) == ("refused", "unknown_key")
            [verified] = await peer.txn(relayed, keys=[third.key_object()])
            # Its signature now verifies: what refuses it is the room (§4 step 4).
            assert verified == {"event_id": relayed_id, "outcome": "refused", "reason": "not_found"}
        await _assert_serving(node_url, server_name)


async def test_an_old_key_verifies_only_events_made_before_it_was_retired(
    node_url: str, server_name: str
) -> None:
    """§1.3: an old key verifies events made before its ``expired_ts``, no later ones."""
    with trio.fail_after(TIMEOUT):
        async with open_fake_peer(node_url, server_name) as peer:
            retired = _other_key()
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
        await _assert_serving(node_url, server_name)


async def test_a_link_proof_by_an_old_key_is_unknown_key(node_url: str, server_name: str) -> None:
    """§1.3: a link proof is checked against the current keys only."""
    with trio.fail_after(TIMEOUT):
        async with open_fake_peer(node_url, server_name) as peer:
            retired = _other_key()
            keys = build_key_object(
                peer.name, now_ms(), [peer.key], [OldKey(retired.verify_key, now_ms() - 1000)]
            )
            assert "result" in await peer.hello(keys=keys)
            assert await peer.error("link_prove", proof=peer.proof(key=retired)) == "unknown_key"
            assert await peer.close_code() == 1008
        await _assert_serving(node_url, server_name)


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
        await _assert_serving(node_url, server_name)


# --- §4 steps 3-4: events of a room the node holds (needs --registration-token) -------------


async def test_a_peer_joins_a_public_room_and_messages_flow_both_ways(
    node_url: str, server_name: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            _room_creator(node_url, registration_token, public=True) as (creator, room_id),
            _authenticated(node_url, server_name) as peer,
        ):
            room = await peer.history(room_id)
            create_id = "$" + room_id[1:]
            # §5: from the create event on, every event after its parents.
            assert next(iter(room.events)) == create_id
            assert _parents_first(room, list(room.events))
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
        await _assert_serving(node_url, server_name)


async def test_an_event_the_rooms_rules_refuse_is_rejected_with_their_reason(
    node_url: str, server_name: str, registration_token: str
) -> None:
    """§3.1: ``rejected`` carries the reason code of rooms.md §7; the event is stored."""
    with trio.fail_after(TIMEOUT):
        async with (
            _room_creator(node_url, registration_token, public=True) as (_, room_id),
            _authenticated(node_url, server_name) as peer,
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
        await _assert_serving(node_url, server_name)


async def test_an_event_with_a_wrong_content_hash_is_kept_redacted(
    node_url: str, server_name: str, registration_token: str
) -> None:
    """§4 step 3, events.md §7 step 9: the redacted form is kept under the same id."""
    with trio.fail_after(TIMEOUT):
        async with (
            _room_creator(node_url, registration_token, public=True) as (_, room_id),
            _authenticated(node_url, server_name) as peer,
        ):
            room = await peer.history(room_id)
            assert (await peer.join(room))[1] == "accepted"
            # An extension type, whose redacted content (``{}``) is still valid content
            # (rooms.md §3): the verdict then depends on the redaction alone.
            signed, event_id = peer.event_in(
                room, event_type="org.example.note", content={"text": "original"}
            )
            tampered = {**signed, "content": {"text": "altered"}}
            assert await peer.txn(tampered) == [{"event_id": event_id, "outcome": "accepted"}]
            kept = (await peer.history(room_id)).events[event_id]
            kept.pop("unsigned", None)  # data added in transit (events.md §2) may come along
            assert kept == redact_event(tampered)
        await _assert_serving(node_url, server_name)


async def test_a_replayed_event_is_a_duplicate(
    node_url: str, server_name: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            _room_creator(node_url, registration_token, public=True) as (_, room_id),
            _authenticated(node_url, server_name) as peer,
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
        await _assert_serving(node_url, server_name)


async def test_an_event_whose_parents_cannot_be_fetched_is_held(
    node_url: str, server_name: str, registration_token: str
) -> None:
    """§4 step 4, §5: the node asks the sender for the missing parents; the fake peer has
    none to give, so the event is held."""
    with trio.fail_after(TIMEOUT):
        async with (
            _room_creator(node_url, registration_token, public=True) as (_, room_id),
            _authenticated(node_url, server_name) as peer,
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
        await _assert_serving(node_url, server_name)


# --- §5 fetching events ---------------------------------------------------------------------


async def test_fetching_from_a_room_the_node_does_not_hold_is_not_found(
    node_url: str, server_name: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with _authenticated(node_url, server_name) as peer:
            missing = {"earliest": [], "latest": [NO_EVENT], "limit": 10}
            assert await peer.error("get_missing", room_id=NO_ROOM, **missing) == "not_found"
            assert await peer.error("backfill", room_id=NO_ROOM, limit=10) == "not_found"
            # §5's ranges are the op's params schema (wire.md §5.2 step 3.3).
            for limit in (0, 1001):
                assert await peer.error("backfill", room_id=NO_ROOM, limit=limit) == "bad_params"
            for limit in (0, 101):
                missing["limit"] = limit
                assert await peer.error("get_missing", room_id=NO_ROOM, **missing) == "bad_params"
        await _assert_serving(node_url, server_name)


async def test_fetches_are_forbidden_to_a_server_with_no_user_in_a_private_room(
    node_url: str, server_name: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            _room_creator(node_url, registration_token, public=False) as (_, room_id),
            _authenticated(node_url, server_name) as peer,
        ):
            create_id = "$" + room_id[1:]
            missing = {"earliest": [], "latest": [create_id], "limit": 10}
            assert await peer.error("get_missing", room_id=room_id, **missing) == "forbidden"
            assert await peer.error("backfill", room_id=room_id, limit=10) == "forbidden"
        await _assert_serving(node_url, server_name)


async def test_a_public_room_can_be_backfilled_by_anyone_but_get_missing_needs_a_user(
    node_url: str, server_name: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            _room_creator(node_url, registration_token, public=True) as (_, room_id),
            _authenticated(node_url, server_name) as peer,
        ):
            whole = await peer.history(room_id)
            paged = await peer.history(room_id, limit=1)  # one event a page, tokens followed
            assert set(paged.events) == set(whole.events)
            assert _parents_first(paged, list(paged.events))
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
        await _assert_serving(node_url, server_name)


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
        async with _authenticated(node_url, server_name) as peer:
            nobody = f"@{fresh_name('nobody')}:{server_name}"
            invite, _ = _invite(peer, nobody)
            assert await peer.error("sign_invite", event=invite) == "not_found"
        await _assert_serving(node_url, server_name)


async def test_sign_invite_of_a_user_of_another_server_is_not_found(
    node_url: str, server_name: str
) -> None:
    """§7: the invitee must be one of the node's own active users (``not_found``)."""
    with trio.fail_after(TIMEOUT):
        async with _authenticated(node_url, server_name) as peer:
            invite, _ = _invite(peer, f"@someone:{fake_server_name()}")
            assert await peer.error("sign_invite", event=invite) == "not_found"
        await _assert_serving(node_url, server_name)


async def test_sign_invite_of_a_forged_event_gets_the_signature_checks_code(
    node_url: str, server_name: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with _authenticated(node_url, server_name) as peer:
            invite, _ = peer.event(
                room_id=NO_ROOM,
                event_type="member",
                state_key=f"@someone:{server_name}",
                content={"membership": "invite"},
                key=_other_key(),
            )
            assert await peer.error("sign_invite", event=invite) == "unknown_key"
        await _assert_serving(node_url, server_name)


async def test_sign_invite_of_a_user_of_the_node_is_co_signed(
    node_url: str, server_name: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as invitee, _authenticated(node_url, server_name) as peer:
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
        await _assert_serving(node_url, server_name)


async def test_an_invite_from_a_peers_room_is_co_signed_fetched_and_can_be_joined(
    node_url: str, server_name: str, registration_token: str
) -> None:
    """§7 from the invitee's side, then §6 step 3: the node co-signs the invite, fetches the
    room's history from the peer when the invite arrives, shows the invite to its user,
    and sends the user's join back to the peer."""
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as invitee, _authenticated(node_url, server_name) as peer:
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
        await _assert_serving(node_url, server_name)


# --- §8 to-device messages ------------------------------------------------------------------


async def test_to_device_messages_for_unknown_users_are_answered_and_dropped(
    node_url: str, server_name: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with _authenticated(node_url, server_name) as peer:
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
        await _assert_serving(node_url, server_name)


async def test_to_device_messages_reach_the_device_only_from_the_peers_own_users(
    node_url: str, server_name: str, registration_token: str
) -> None:
    """§8: a message is stored for the target's devices (``*``: all of them); its sender
    must be a user of the link's peer, or it is dropped."""
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as target, _authenticated(node_url, server_name) as peer:
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
        await _assert_serving(node_url, server_name)


async def test_receipts_count_only_for_the_peers_own_users(
    node_url: str, server_name: str, registration_token: str
) -> None:
    """§8: an EDU naming a user of another server as its actor is skipped; the others are
    applied (a receipt reaches the room's joined users, client.md §5)."""
    with trio.fail_after(TIMEOUT):
        async with (
            _room_creator(node_url, registration_token, public=True) as (creator, room_id),
            _authenticated(node_url, server_name) as peer,
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
        await _assert_serving(node_url, server_name)
