"""Black-box checks of the links the node opens itself (spec/federation.md §2.2 as the
initiator, §3 transactions, §7 invites): a fake peer listens at the address the node's
``[peers]`` gives its server name (``tests.conformance.fake_peer_server``) and records
everything the node sends it.

Needs ``--registration-token`` (a user of the node invites the fake peer's users) and,
against a node given by ``--node-url``, ``--peer-listen`` and ``--peer-name`` (the node's
operator maps that name to that address in its ``[peers]``).

The fake peer lives for the whole session and the node keeps its link to it from test to
test; a test that must see a new link opened drops the fake peer's links first. Each test
reads only the records made after it started (``mark``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
import trio

from protocol import compute_event_id, derive_key_id
from protocol.events import verify_countersignature, verify_event
from protocol.federation.keys import ServerKeys, parse_key_object
from protocol.federation.link import LinkRoles, check_nonce, check_proof
from protocol.wire import SUBPROTOCOL
from tests.conformance.client_session import Session, fresh_name
from tests.conformance.fake_peer import TIMEOUT, now_ms, room_creator
from tests.conformance.fake_peer_server import BAD_HELLO, FakePeerServer, Record

RETRY_TIMEOUT = 10
"""§3.3: the first retry comes 1 s times [0.5, 1.5] after the failure; generously bounded."""
FIRST_RETRY_MIN_S = 0.5
_txn_ids = itertools.count(1)


def _txn_with(event_id: str) -> Callable[[Record], bool]:
    return lambda record: record.op == "txn" and event_id in record.event_ids


def _delivered(event_id: str) -> Callable[[Record], bool]:
    """A ``txn`` carrying the event that the fake peer acknowledged (§3.2)."""
    return lambda r: _txn_with(event_id)(r) and r.answer is not None and "result" in r.answer


def _check_txn_frame(record: Record) -> None:
    """§3.1: the shape of the ``txn`` request."""
    assert isinstance(record.frame.get("id"), int), record.frame
    params = record.params
    assert {"txn_id", "pdus", "edus"} <= params.keys() <= {"txn_id", "pdus", "edus", "keys"}
    assert isinstance(params["txn_id"], str), params
    assert 1 <= len(params["txn_id"]) <= 64, params
    for member, most in (("pdus", 100), ("edus", 100), ("keys", 16)):
        items = params.get(member, [])
        assert isinstance(items, list), params
        assert len(items) <= most, member
    assert all(isinstance(pdu, dict) for pdu in params["pdus"])


async def _invite(creator: Session, room_id: str, invitee: str) -> str:
    invited = await creator.result("invite", room_id=room_id, user_id=invitee)
    event_id: str = invited["event_id"]
    return event_id


def _node_keys(hello: Record, server_name: str) -> ServerKeys:
    keys = parse_key_object(hello.params["keys"])
    assert keys.server_name == server_name
    return keys


async def test_inviting_a_peers_user_dials_the_peer_which_co_signs_then_receives_the_invite(
    node_url: str, server_name: str, registration_token: str, fake_peer_server: FakePeerServer
) -> None:
    """§2.2 as the initiator: a hello naming the peer, a fresh nonce, the node's valid key
    object, then a proof that verifies; §7: ``sign_invite`` before the invite is stored,
    then the co-signed invite in a ``txn`` (§3.1)."""
    server = fake_peer_server
    with trio.fail_after(TIMEOUT):
        mark = server.mark()
        await server.drop_links()  # so that the node opens a link for this invite
        invitee = server.user(fresh_name("someone"))
        async with room_creator(node_url, registration_token, public=False) as (creator, room_id):
            invite_id = await _invite(creator, room_id, invitee)
            txn = await server.wait_for(_delivered(invite_id), since=mark)
    sign = next(r for r in server.records(mark) if r.op == "sign_invite")
    opened, hello, prove, *_ = [r for r in server.records() if r.link == sign.link]
    assert opened.kind == "open", opened
    assert opened.frame["path"] == "/federation"
    assert SUBPROTOCOL in opened.frame["subprotocols"]
    # The initiator sends nothing but the handshake until the link is authenticated.
    assert (hello.op, prove.op) == ("link_hello", "link_prove")

    params = hello.params
    assert params.keys() == {"server_name", "responder", "nonce", "keys"}
    assert (params["server_name"], params["responder"]) == (server_name, server.name)
    assert check_nonce(params["nonce"]) == params["nonce"]
    assert len(params["nonce"]) == 43
    nonces = [r.params.get("nonce") for r in server.records() if r.op == "link_hello"]
    assert nonces.count(params["nonce"]) == 1, "a nonce is chosen for one link only"
    keys = _node_keys(hello, server_name)
    assert hello.answer is not None
    assert "result" in hello.answer, hello.answer
    assert prove.answer == {"id": prove.frame["id"], "result": {}}, prove.answer
    assert prove.params.keys() == {"proof"}
    roles = LinkRoles(server_name, server.name, params["nonce"], hello.answer["result"]["nonce"])
    check_proof(prove.params["proof"], roles, server_name, keys.link_key, now_ms())

    invite = sign.params["event"]
    assert compute_event_id(invite) == invite_id
    assert (invite["type"], invite["room_id"], invite["sender"], invite["state_key"]) == (
        "member",
        room_id,
        creator.user_id,
        invitee,
    )
    assert invite["content"]["membership"] == "invite"
    verify_event(invite, {server_name: dict(keys.verify_keys)})
    assert sign.answer is not None
    assert "result" in sign.answer, sign.answer

    _check_txn_frame(txn)
    assert txn.index > sign.index
    delivered = txn.params["pdus"][txn.event_ids.index(invite_id)]
    verify_event(delivered, {server_name: dict(keys.verify_keys)})
    own_key = {derive_key_id(server.key.verify_key): server.key.verify_key}
    verify_countersignature(delivered, server.name, own_key)  # the stored invite is co-signed


async def test_a_transaction_answered_with_an_error_is_sent_again_in_a_new_transaction(
    node_url: str, server_name: str, registration_token: str, fake_peer_server: FakePeerServer
) -> None:
    """§3.2: an ``internal_error`` answer acknowledges nothing: the same events come again,
    in a new ``txn``, after the first wait of §3.3."""
    server = fake_peer_server
    with trio.fail_after(RETRY_TIMEOUT):
        mark = server.mark()
        server.configure(failing_txns=1)
        try:
            invitee = server.user(fresh_name("someone"))
            async with room_creator(node_url, registration_token, public=False) as (
                creator,
                room_id,
            ):
                invite_id = await _invite(creator, room_id, invitee)
                await server.wait_for(_delivered(invite_id), since=mark)
        finally:
            server.configure(failing_txns=0)
    txns = [r for r in server.records(mark) if r.op == "txn" and r.event_ids]
    failed = next(r for r in txns if r.answer is not None and "error" in r.answer)
    again = next(r for r in txns if r.index > failed.index)
    assert failed.answer is not None
    assert failed.answer["error"]["code"] == "internal_error"
    assert again.answer is not None
    assert "result" in again.answer
    for txn in (failed, again):
        _check_txn_frame(txn)
    # The same events, first in the queue, in the same order; a request of its own.
    assert again.event_ids[: len(failed.event_ids)] == failed.event_ids
    assert (again.link, again.frame["id"]) != (failed.link, failed.frame["id"])
    assert again.at - failed.at >= FIRST_RETRY_MIN_S, "sent again before the §3.3 wait"


@pytest.mark.parametrize("spoiled", BAD_HELLO)
async def test_a_responder_answer_failing_the_initiators_checks_makes_the_node_close_the_link(
    node_url: str,
    server_name: str,
    registration_token: str,
    fake_peer_server: FakePeerServer,
    spoiled: str,
) -> None:
    """§2.2: the initiator checks the responder's name, key object, nonce and proof and,
    when one fails, closes the link (1008) without sending anything more; with no
    co-signature there is no invite (§7)."""
    server = fake_peer_server
    with trio.fail_after(TIMEOUT):
        server.configure(bad_hello=spoiled)
        mark = server.mark()  # every hello from here on gets the spoilt answer
        try:
            await server.drop_links()
            async with room_creator(node_url, registration_token, public=False) as (
                creator,
                room_id,
            ):
                invitee = server.user(fresh_name("someone"))
                answer = await creator.request("invite", room_id=room_id, user_id=invitee)
                assert "error" in answer, answer
                hello = await server.wait_for(lambda r: r.op == "link_hello", since=mark)
                closed = await server.wait_for(
                    lambda r: r.kind == "closed" and r.link == hello.link, since=mark
                )
        finally:
            server.configure(bad_hello=None)
        on_link = [r for r in server.records() if r.link == hello.link]
        assert [r.kind for r in on_link] == ["open", "request", "closed"], on_link
        assert closed.frame["code"] == 1008, closed.frame
        # The node dials again, and the next link works.
        async with room_creator(node_url, registration_token, public=False) as (creator, room_id):
            invite_id = await _invite(creator, room_id, server.user(fresh_name("someone")))
            await server.wait_for(_delivered(invite_id), since=mark)


async def _join(server: FakePeerServer, link_id: int, room_id: str, user: str) -> str:
    """Run by the fake peer: fetch the room over the node's link (§5) and join it (§6)."""
    link = server.link(link_id)
    room = await link.history(room_id)
    _, outcome = await link.join(room, user)
    return outcome


async def test_a_peers_user_who_joined_gets_the_rooms_messages_over_the_nodes_link(
    node_url: str, server_name: str, registration_token: str, fake_peer_server: FakePeerServer
) -> None:
    """§3.3: once a user of the peer joined, the room's new events go to the peer in a
    ``txn``. The fake peer's user is invited, then joins over the link the node opened —
    one link per pair (§2.3), which both ends may use."""
    server = fake_peer_server
    with trio.fail_after(TIMEOUT):
        mark = server.mark()
        invitee = server.user(fresh_name("someone"))
        async with room_creator(node_url, registration_token, public=True) as (creator, room_id):
            invite_id = await _invite(creator, room_id, invitee)
            invited = await server.wait_for(_delivered(invite_id), since=mark)
            assert await server.call(_join, server, invited.link, room_id, invitee) == "accepted"
            body = "hello, fake peer"
            sent = await creator.result(
                "send", room_id=room_id, txn_id=f"dialed{next(_txn_ids)}", content={"body": body}
            )
            txn = await server.wait_for(_txn_with(sent["event_id"]), since=mark)
    _check_txn_frame(txn)
    message = txn.params["pdus"][txn.event_ids.index(sent["event_id"])]
    assert (message["type"], message["room_id"], message["sender"]) == (
        "message",
        room_id,
        creator.user_id,
    )
    assert message["content"]["body"] == body
    hellos = [r for r in server.records() if r.op == "link_hello" and r.link == txn.link]
    verify_event(message, {server_name: dict(_node_keys(hellos[0], server_name).verify_keys)})


async def test_a_to_device_message_for_a_peers_user_reaches_the_peer(
    node_url: str, server_name: str, registration_token: str, fake_peer_server: FakePeerServer
) -> None:
    """§8.2: the node sends its user's message with ``to_device``, in the table's shape."""
    server = fake_peer_server
    with trio.fail_after(TIMEOUT):
        mark = server.mark()
        target = server.user(fresh_name("target"))
        async with room_creator(node_url, registration_token, public=False) as (sender, _):
            await sender.result(
                "send_to_device",
                type="org.example.key",
                txn_id=f"dialed{next(_txn_ids)}",
                messages={target: {"PEERDEVICE": {"secret": "k"}}},
            )
            record = await server.wait_for(
                lambda r: (
                    r.op == "to_device"
                    and any(m.get("user_id") == target for m in r.params.get("messages", []))
                ),
                since=mark,
            )
    assert record.answer == {"id": record.frame["id"], "result": {}}
    [message] = [m for m in record.params["messages"] if m["user_id"] == target]
    assert message.keys() == {
        "message_id",
        "sender",
        "sender_device",
        "type",
        "user_id",
        "device_id",
        "content",
    }
    assert (message["sender"], message["sender_device"]) == (sender.user_id, sender.device_id)
    assert (message["type"], message["device_id"], message["content"]) == (
        "org.example.key",
        "PEERDEVICE",
        {"secret": "k"},
    )
    assert isinstance(message["message_id"], str)
    assert 1 <= len(message["message_id"]) <= 64
