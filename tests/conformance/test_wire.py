"""Black-box checks of spec/wire.md against a running node (``--node-url``).

Speaks only JSON over WebSockets with the suite's own client: no import from node/ or
client/. Frame cases come from spec/vectors/frames.json, so a node is checked against the
same known answers as the decoding algorithm.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from tests.conformance.vectors import cases
from tests.conformance.wsclient import Closed, HandshakeRejectedError, Text, WebSocket, connect

SUBPROTOCOL = "kith.v1"
TIMEOUT_S = 10
CLIENT_FRAME_LIMIT = 1024 * 1024


async def _frame(ws: WebSocket) -> dict[str, Any]:
    message = await ws.receive()
    assert isinstance(message, Text), f"expected a text frame, got {message!r}"
    frame: dict[str, Any] = json.loads(message.data)
    return frame


async def _ping(ws: WebSocket, request_id: str | int) -> None:
    await ws.send_text(json.dumps({"id": request_id, "op": "ping", "params": {}}))
    assert await _frame(ws) == {"id": request_id, "result": {}}


@pytest.mark.parametrize("path", ["/client", "/federation"])
async def test_ping_is_answered_on_both_endpoints(node_url: str, path: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with await connect(node_url + path, subprotocols=(SUBPROTOCOL,)) as ws:
            assert ws.subprotocol == SUBPROTOCOL
            await _ping(ws, "first")
            await _ping(ws, 2**53 - 1)


# Client-sendable cases: what the node must answer when a client sends them on /client.
_CLIENT_CASES = [
    c for c in cases("frames", "decode") if (c["endpoint"], c["sender"]) == ("client", "client")
]


@pytest.mark.parametrize("case", _CLIENT_CASES, ids=[c["name"] for c in _CLIENT_CASES])
async def test_node_answers_frame_vectors_as_specified(node_url: str, case: dict[str, Any]) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with await connect(node_url + "/client", subprotocols=(SUBPROTOCOL,)) as ws:
            await ws.send_text(case["input"])
            answer = await _frame(ws)
            if "frame" in case:
                assert answer == {"id": case["frame"]["id"], "result": {}}
                return
            expected = case["error"]
            assert answer["id"] == expected["request_id"]
            assert answer["error"]["code"] == expected["code"]
            assert isinstance(answer["error"]["message"], str)
            if expected["close_code"] is not None:
                closed = await ws.receive()
                assert isinstance(closed, Closed)
                assert closed.code == expected["close_code"]
                return
            await _ping(ws, "still-usable")


async def test_error_frames_are_never_answered(node_url: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with await connect(node_url + "/client") as ws:
            await ws.send_text(json.dumps({"id": 5, "error": {"code": "x", "message": "y"}}))
            await _ping(ws, "next")  # the very next frame is the ping's result


async def test_unsolicited_results_are_refused_with_their_id(node_url: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with await connect(node_url + "/client") as ws:
            await ws.send_text(json.dumps({"id": "r9", "result": {}}))
            answer = await _frame(ws)
            assert (answer["id"], answer["error"]["code"]) == ("r9", "bad_frame")


async def test_binary_messages_are_refused_and_close_with_1003(node_url: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with await connect(node_url + "/client") as ws:
            await ws.send_bytes(b'{"id": 1, "op": "ping"}')
            answer = await _frame(ws)
            assert (answer["id"], answer["error"]["code"]) == (None, "bad_frame")
            closed = await ws.receive()
            assert isinstance(closed, Closed)
            assert closed.code == 1003


async def test_frames_over_the_limit_are_too_large_and_close_with_1009(node_url: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with await connect(node_url + "/client") as ws:
            padding = " " * CLIENT_FRAME_LIMIT
            await ws.send_text('{"id": 1, "op": "ping"}' + padding)
            answer = await _frame(ws)
            assert answer["error"]["code"] == "too_large"
            closed = await ws.receive()
            assert isinstance(closed, Closed)
            assert closed.code == 1009


async def test_a_frame_at_the_limit_is_accepted(node_url: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with await connect(node_url + "/client") as ws:
            frame = '{"id": 1, "op": "ping"}'
            await ws.send_text(frame + " " * (CLIENT_FRAME_LIMIT - len(frame)))
            assert await _frame(ws) == {"id": 1, "result": {}}


async def test_unknown_paths_are_refused_with_404(node_url: str) -> None:
    with trio.fail_after(TIMEOUT_S), pytest.raises(HandshakeRejectedError) as caught:
        await connect(node_url + "/nowhere")
    assert caught.value.status == 404


async def test_foreign_subprotocols_are_refused_with_400(node_url: str) -> None:
    with trio.fail_after(TIMEOUT_S), pytest.raises(HandshakeRejectedError) as caught:
        await connect(node_url + "/client", subprotocols=("chat.v2",))
    assert caught.value.status == 400


async def test_no_subprotocol_offered_is_accepted_without_one(node_url: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with await connect(node_url + "/client") as ws:
            assert ws.subprotocol is None
            await _ping(ws, 1)


async def test_requests_are_answered_in_order_on_one_connection(node_url: str) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with await connect(node_url + "/client") as ws:
            for number in range(50):
                await ws.send_text(json.dumps({"id": number, "op": "ping"}))
            answers = [await _frame(ws) for _ in range(50)]
            assert sorted(a["id"] for a in answers) == list(range(50))
