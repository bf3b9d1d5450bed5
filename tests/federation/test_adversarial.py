"""A fake peer node against a real one: the link's handshake (spec/federation.md §2.2) and
the checks of §4, each refused with its reason while the node keeps serving."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
import trio
from trio_websocket import WebSocketConnection

from protocol import build_event, encode_base64, sign_event_with_id
from protocol.federation.keys import build_key_object
from protocol.federation.link import LinkRoles, make_proof
from protocol.signing import derive_key_id
from tests.node.chat_client import user
from tests.node.session_client import node_config, start_node
from tests.node.wsclient import close_code, connect, receive, send

TIMEOUT = 10
PEER = "evil.test"


def _now() -> int:
    return int(time.time() * 1000)


class FakePeer:
    """A test-side node: its own key, the handshake done by hand, raw frames."""

    def __init__(self, ws: WebSocketConnection, name: str = PEER) -> None:
        self.ws = ws
        self.name = name
        self.key = nacl.signing.SigningKey(os.urandom(32))
        self._ids = 0

    async def call(self, op: str, **params: Any) -> dict[str, Any]:
        self._ids += 1
        await send(self.ws, {"id": self._ids, "op": op, "params": params})
        while True:
            frame = await receive(self.ws)
            if frame.get("id") == self._ids:
                return frame
            if "op" in frame:  # the node's own requests: a ping is answered, the rest refused
                if frame["op"] == "ping":
                    await send(self.ws, {"id": frame["id"], "result": {}})
                else:
                    error = {"code": "not_found", "message": "this fake peer holds nothing"}
                    await send(self.ws, {"id": frame["id"], "error": error})

    def key_object(self) -> dict[str, Any]:
        return build_key_object(self.name, _now(), [self.key], [])

    async def hello(self, responder: str = "localhost") -> dict[str, Any]:
        self.nonce = encode_base64(os.urandom(32))
        return await self.call(
            "link_hello",
            server_name=self.name,
            responder=responder,
            nonce=self.nonce,
            keys=self.key_object(),
        )

    async def authenticate(self) -> None:
        hello = await self.hello()
        roles = LinkRoles(self.name, "localhost", self.nonce, hello["result"]["nonce"])
        proof = make_proof(roles, self.name, _now(), self.key)
        assert await self.call("link_prove", proof=proof) == {"id": self._ids, "result": {}}

    def event(self, sender: str, room_id: str, **fields: Any) -> tuple[dict[str, Any], str]:
        event = build_event(
            event_type=fields.get("type", "message"),
            sender=sender,
            room_id=room_id,
            content=fields.get("content", {"body": "hi", "msgtype": "text"}),
            prev_events=fields.get("prev_events", ["$" + "A" * 43]),
            auth_events=[],
            depth=fields.get("depth", 1),
            origin_server_ts=_now(),
        )
        key = fields.get("key", self.key)
        return sign_event_with_id(event, self.name, derive_key_id(key.verify_key), key)


@asynccontextmanager
async def fake_peer(port: int) -> AsyncIterator[FakePeer]:
    async with connect(port, "/federation") as ws:
        yield FakePeer(ws)


@pytest.fixture
async def port(nursery: trio.Nursery, tmp_path: Path) -> int:
    return await start_node(nursery, node_config(tmp_path))


async def test_requests_before_the_handshake_are_not_authenticated(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with fake_peer(port) as peer:
            answer = await peer.call("txn", txn_id="t", pdus=[], edus=[])
            assert answer["error"]["code"] == "not_authenticated"
            assert (await peer.call("ping"))["result"] == {}


async def test_hello_for_another_server_is_not_found(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with fake_peer(port) as peer:
            assert (await peer.hello("other.test"))["error"]["code"] == "not_found"


async def test_hello_in_the_nodes_own_name_is_forbidden(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with fake_peer(port) as peer:
            peer.name = "localhost"
            assert (await peer.hello())["error"]["code"] == "forbidden"


async def test_a_proof_signed_by_another_key_is_refused_and_the_link_closed(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with fake_peer(port) as peer:
            hello = await peer.hello()
            assert "result" in hello
            roles = LinkRoles(peer.name, "localhost", peer.nonce, hello["result"]["nonce"])
            forged = make_proof(roles, peer.name, _now(), nacl.signing.SigningKey(os.urandom(32)))
            assert (await peer.call("link_prove", proof=forged))["error"]["code"] == "unknown_key"
            assert await close_code(peer.ws) == 1008


async def test_a_proof_for_another_nonce_is_refused(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with fake_peer(port) as peer:
            await peer.hello()
            roles = LinkRoles(peer.name, "localhost", peer.nonce, encode_base64(os.urandom(32)))
            replayed = make_proof(roles, peer.name, _now(), peer.key)
            answer = await peer.call("link_prove", proof=replayed)
            assert answer["error"]["code"] == "bad_signature"


async def test_a_stale_proof_is_clock_skew(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with fake_peer(port) as peer:
            hello = await peer.hello()
            roles = LinkRoles(peer.name, "localhost", peer.nonce, hello["result"]["nonce"])
            stale = make_proof(roles, peer.name, _now() - 600_000, peer.key)
            assert (await peer.call("link_prove", proof=stale))["error"]["code"] == "clock_skew"


async def test_events_failing_the_checks_are_refused_each_with_its_reason(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with user(port, "alice") as alice, fake_peer(port) as peer:
            room_id = (await alice.result("create_room", name="r", public=True))["room_id"]
            await peer.authenticate()
            good, _ = peer.event("@mallory:evil.test", room_id)
            forged, _ = peer.event(
                "@mallory:evil.test", room_id, key=nacl.signing.SigningKey(os.urandom(32))
            )
            not_hosted, _ = peer.event("@alice:localhost", room_id)  # speaks for alice
            other_room, _ = peer.event("@mallory:evil.test", "!" + "B" * 42 + "A")
            tampered = {**good, "content": {"body": "changed", "msgtype": "text"}}
            answer = await peer.call(
                "txn",
                txn_id="t1",
                pdus=[{"type": "message"}, forged, not_hosted, other_room, tampered],
                edus=[],
            )
            outcomes = [(o["outcome"], o.get("reason")) for o in answer["result"]["pdus"]]
            assert outcomes[0] == ("refused", "bad_event")
            assert outcomes[1] == ("refused", "unknown_key")
            assert outcomes[2] == ("refused", "missing_signature")
            assert outcomes[3] == ("refused", "not_found")
            # A bad content hash keeps the redacted form, judged by the room's rules: the
            # parent is unknown and the peer has nothing to fetch it from, so it is held.
            assert outcomes[4][0] == "held"
            assert (await alice.result("ping")) == {}
            big = await peer.call("txn", txn_id="t2", pdus=[good] * 101, edus=[])
            assert big["error"]["code"] == "too_large"
