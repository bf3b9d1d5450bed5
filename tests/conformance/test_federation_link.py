"""Black-box checks of spec/federation.md §1-§2 — keys and opening a link — against a running
node, by a fake peer (``tests.conformance.fake_peer``).

What each test needs of the node under test is said in ``test_federation_events``. Every
test ends by checking that the node still opens and serves a new link.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

import pytest
import trio

from protocol.federation.keys import build_key_object
from protocol.federation.link import LinkRoles, encode_nonce
from tests.conformance.fake_peer import (
    NO_EVENT,
    NO_ROOM,
    TIMEOUT,
    FakePeer,
    LinkClosedError,
    assert_serving,
    authenticated,
    fake_server_name,
    now_ms,
    open_fake_peer,
    other_key,
)

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
async def test_requests_before_the_handshake_are_notauthenticated(
    node_url: str, server_name: str, op: str, params: dict[str, Any]
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_peer(node_url, server_name) as peer:
            assert await peer.error(op, **params) == "not_authenticated"
            hello = await peer.hello()  # the refusal left the link open
            assert "result" in hello, hello
            assert await peer.error(op, **params) == "not_authenticated"  # half a handshake
        await assert_serving(node_url, server_name)


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
        await assert_serving(node_url, server_name)


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
        await assert_serving(node_url, server_name)


async def test_hello_naming_another_responder_is_not_found(node_url: str, server_name: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_peer(node_url, server_name) as peer:
            answer = await peer.hello(responder=fake_server_name())
            assert answer["error"]["code"] == "not_found"
        await assert_serving(node_url, server_name)


async def test_hello_claiming_the_nodes_own_name_is_forbidden(
    node_url: str, server_name: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_fake_peer(node_url, server_name, name=server_name) as peer:
            assert (await peer.hello())["error"]["code"] == "forbidden"
        await assert_serving(node_url, server_name)


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
        await assert_serving(node_url, server_name)


async def test_a_second_hello_on_a_link_is_forbidden(node_url: str, server_name: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with authenticated(node_url, server_name) as peer:
            assert (await peer.hello())["error"]["code"] == "forbidden"
            assert await peer.result("ping") == {}
        await assert_serving(node_url, server_name)


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
        await assert_serving(node_url, server_name)


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
        await assert_serving(node_url, server_name)


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
        await assert_serving(node_url, server_name)


def _forged(peer: FakePeer) -> dict[str, Any]:
    return peer.proof(key=other_key())


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
        await assert_serving(node_url, server_name)


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
        await assert_serving(node_url, server_name)
