"""The client's side of the wire (spec/wire.md §1-§4), against a scripted fake node: the URL,
the subprotocol, UTF-8 frames, and what the client answers to whatever the node sends."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from client.errors import ClientError, ConnectError
from client.link import NodeAddress, open_link
from protocol import SUBPROTOCOL, Notice
from tests.client.helpers import TIMEOUT

Script = Callable[[WebSocketConnection], Awaitable[None]]


class FakeNode:
    """A WebSocket server that plays a script against the client and records what it got."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.offered: list[str] = []
        self.path = ""
        self.received: list[str | bytes] = []
        self.close_code: int | None = None
        self.scripted = trio.Event()
        """Set once the script has played."""
        self.done = trio.Event()
        """Set once the connection is closed."""

    async def handle(self, request: WebSocketRequest) -> None:
        self.offered = list(request.proposed_subprotocols)
        self.path = request.path
        ws = await request.accept(subprotocol=SUBPROTOCOL)
        try:
            await self.script(ws)
            self.scripted.set()
            while True:
                self.received.append(await ws.get_message())
        except ConnectionClosed as closed:
            self.close_code = closed.reason.code if closed.reason else None
        finally:
            self.done.set()

    async def next_message(self, ws: WebSocketConnection) -> dict[str, object]:
        message = await ws.get_message()
        self.received.append(message)
        value = json.loads(message)
        assert isinstance(value, dict)
        return value


async def _serve(nursery: trio.Nursery, node: FakeNode) -> NodeAddress:
    server = await nursery.start(serve_websocket, node.handle, "127.0.0.1", 0, None)
    return NodeAddress.parse(f"ws://127.0.0.1:{server.port}")


async def _ignore(notice: Notice) -> None:
    pass


def test_node_urls_default_to_the_client_endpoint() -> None:
    plain = NodeAddress.parse("ws://example.org")
    assert (plain.host, plain.port, plain.path, plain.tls) == ("example.org", 80, "/client", False)
    assert plain.host_header == "example.org"
    secure = NodeAddress.parse("wss://[::1]:8448/client")
    assert (secure.port, secure.tls, secure.host_header) == (8448, True, "[::1]:8448")
    assert NodeAddress.parse("wss://example.org/").port == 443
    for bad in ("http://example.org", "ws://", "ws://host:port"):
        with pytest.raises(ValueError, match="URL"):
            NodeAddress.parse(bad)


async def test_requests_offer_kith_v1_and_go_out_as_unescaped_utf8(nursery: trio.Nursery) -> None:
    async def script(ws: WebSocketConnection) -> None:
        request = await node.next_message(ws)
        await ws.send_message(json.dumps({"id": request["id"], "result": {"ok": True}}))
        request = await node.next_message(ws)
        error = {"code": "not_joined", "message": "join first"}
        await ws.send_message(json.dumps({"id": request["id"], "error": error}))

    node = FakeNode(script)
    address = await _serve(nursery, node)
    with trio.fail_after(TIMEOUT):
        async with open_link(address, _ignore) as link:
            assert await link.request("send", {"content": {"body": "héllo 🌍"}}) == {"ok": True}
            with pytest.raises(ClientError) as refused:
                await link.request("join", {})
            assert (refused.value.code, refused.value.message) == ("not_joined", "join first")
    assert node.offered == [SUBPROTOCOL]
    assert node.path == "/client"
    assert "héllo 🌍" in str(node.received[0])  # not \u escapes (spec/client.md §4)


async def test_a_ping_from_the_node_is_answered_and_notices_are_handed_on(
    nursery: trio.Nursery,
) -> None:
    notices: list[Notice] = []

    async def keep(notice: Notice) -> None:
        notices.append(notice)

    async def script(ws: WebSocketConnection) -> None:
        typing = {"op": "typing_update", "params": {"room_id": "!" + "A" * 43, "user_ids": []}}
        await ws.send_message(json.dumps(typing))
        await ws.send_message('{"id":"n1","op":"ping","params":{}}')
        assert await node.next_message(ws) == {"id": "n1", "result": {}}

    node = FakeNode(script)
    address = await _serve(nursery, node)
    with trio.fail_after(TIMEOUT):
        async with open_link(address, keep):
            await node.scripted.wait()
    assert [n.op for n in notices] == ["typing_update"]


async def test_frames_that_fail_decoding_are_answered_as_wire_md_section_4_says(
    nursery: trio.Nursery,
) -> None:
    async def script(ws: WebSocketConnection) -> None:
        await ws.send_message('{"id": 77, "result": {}}')  # nobody asked
        answer = await node.next_message(ws)
        assert answer["id"] == 77
        assert answer["error"]["code"] == "bad_frame"  # type: ignore[index]
        await ws.send_message('{"id": 78, "error": {"code": "x", "message": ""}}')  # no answer
        await ws.send_message('{"op": "teleport"}')
        assert (await node.next_message(ws))["error"]["code"] == "unknown_op"  # type: ignore[index]
        await ws.send_message("{not json")
        answer = await node.next_message(ws)
        assert answer == {"id": None, "error": answer["error"]}
        assert answer["error"]["code"] == "bad_json"  # type: ignore[index]

    node = FakeNode(script)
    address = await _serve(nursery, node)
    with trio.fail_after(TIMEOUT):
        async with open_link(address, _ignore) as link:
            await link.closed.wait()  # bad JSON is fatal: the client closes
            await node.done.wait()
    assert node.close_code == 1007
    assert len(node.received) == 3  # the error frame for 78 was never answered


async def test_a_binary_message_closes_the_connection(nursery: trio.Nursery) -> None:
    async def script(ws: WebSocketConnection) -> None:
        await ws.send_message(b"\x00\x01")
        answer = await node.next_message(ws)
        assert answer["error"] == {"code": "bad_frame", "message": "binary frames are not used"}

    node = FakeNode(script)
    address = await _serve(nursery, node)
    with trio.fail_after(TIMEOUT):
        async with open_link(address, _ignore) as link:
            await link.closed.wait()
            await node.done.wait()
    assert node.close_code == 1003


async def test_a_server_that_hangs_up_during_the_handshake_fails_at_once(
    nursery: trio.Nursery,
) -> None:
    async def hang_up(stream: trio.SocketStream) -> None:
        await stream.aclose()

    listeners = await nursery.start(trio.serve_tcp, hang_up, 0)
    port = listeners[0].socket.getsockname()[1]
    address = NodeAddress.parse(f"ws://127.0.0.1:{port}")
    with trio.fail_after(TIMEOUT), pytest.raises(ConnectError, match="closed the connection"):
        async with open_link(address, _ignore, connect_timeout=3600):
            pass
