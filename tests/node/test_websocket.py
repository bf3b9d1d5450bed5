"""The node's WebSocket endpoints end to end: handshake, frames, errors and close codes."""

from __future__ import annotations

import functools
import json

import pytest
import trio
from trio_websocket import ConnectionClosed

from node.dispatch import Dispatcher
from node.session import Session
from node.transport.frame_reader import FrameReader
from node.transport.outbox import Outbox
from node.transport.websocket import (
    MAX_MESSAGE_BYTES,
    _Connection,
    open_listeners,
    serve_websocket_endpoints,
)
from protocol import SUBPROTOCOL, Frame, JsonObject, Role, decode_frame
from protocol.wire import MAX_FRAME_BYTES, CloseCode, Endpoint
from tests.node.wsclient import (
    TIMEOUT,
    call,
    close_code,
    connect,
    handshake_status,
    ping,
    receive,
    send,
)

PATHS = ["/client", "/federation"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("request_id", [0, 1, 2**53 - 1])
async def test_ping_answers_with_the_same_integer_id(
    node_port: int, path: str, request_id: int
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(node_port, path) as ws:
            assert ws.subprotocol == SUBPROTOCOL
            assert await call(ws, ping(request_id)) == {"id": request_id, "result": {}}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("request_id", ["a", "req-42", "ü" * 64])
async def test_ping_answers_with_the_same_string_id(
    node_port: int, path: str, request_id: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(node_port, path) as ws:
            assert await call(ws, ping(request_id)) == {"id": request_id, "result": {}}


@pytest.mark.parametrize("path", PATHS)
async def test_ping_works_without_a_subprotocol(node_port: int, path: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(node_port, path, subprotocols=()) as ws:
            assert ws.subprotocol is None
            assert await call(ws, ping(1)) == {"id": 1, "result": {}}


async def test_kith_subprotocol_is_chosen_among_several_offered(node_port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(node_port, subprotocols=("chat.v9", SUBPROTOCOL)) as ws:
            assert ws.subprotocol == SUBPROTOCOL
            assert await call(ws, ping(1)) == {"id": 1, "result": {}}


async def test_ping_missing_params_is_accepted(node_port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(node_port) as ws:
            assert await call(ws, {"id": 3, "op": "ping"}) == {"id": 3, "result": {}}


async def test_ping_on_a_path_with_a_query_string_reaches_the_endpoint(node_port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(node_port, "/client?device=abc") as ws:
            assert await call(ws, ping(1)) == {"id": 1, "result": {}}


@pytest.mark.parametrize("path", ["/", "/chat", "/client/", "/CLIENT", "/federation/x"])
async def test_unknown_path_is_rejected_with_404(node_port: int, path: str) -> None:
    with trio.fail_after(TIMEOUT):
        assert await handshake_status(node_port, path) == 404


@pytest.mark.parametrize("path", PATHS)
async def test_unwanted_subprotocol_is_rejected_with_400(node_port: int, path: str) -> None:
    with trio.fail_after(TIMEOUT):
        assert await handshake_status(node_port, path, subprotocols=("kith.v0", "chat")) == 400


@pytest.mark.parametrize("subprotocols", [(), (SUBPROTOCOL,), ("chat", SUBPROTOCOL)])
async def test_known_path_with_acceptable_subprotocols_is_accepted(
    node_port: int, subprotocols: tuple[str, ...]
) -> None:
    with trio.fail_after(TIMEOUT):
        assert await handshake_status(node_port, "/client", subprotocols=subprotocols) == 101


async def test_unknown_op_answers_unknown_op_and_the_connection_keeps_working(
    node_port: int,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(node_port) as ws:
            answer = await call(ws, {"id": "x1", "op": "levitate", "params": {}})
            assert answer["id"] == "x1"
            assert answer["error"]["code"] == "unknown_op"
            assert await call(ws, ping("x2")) == {"id": "x2", "result": {}}


async def test_bad_params_answers_bad_params_with_the_request_id(node_port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(node_port, "/federation") as ws:
            answer = await call(ws, {"id": 9, "op": "ping", "params": {"loud": True}})
            assert answer["id"] == 9
            assert answer["error"]["code"] == "bad_params"
            assert await call(ws, ping(10)) == {"id": 10, "result": {}}


async def test_request_op_without_id_answers_bad_frame_with_null_id(node_port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(node_port) as ws:
            answer = await call(ws, {"op": "ping", "params": {}})
            assert answer["id"] is None
            assert answer["error"]["code"] == "bad_frame"
            assert await call(ws, ping(1)) == {"id": 1, "result": {}}


async def test_json_that_is_not_an_object_answers_bad_frame_and_stays_open(
    node_port: int,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(node_port) as ws:
            await ws.send_message("[1, 2, 3]")
            answer = await receive(ws)
            assert answer["id"] is None
            assert answer["error"]["code"] == "bad_frame"
            assert await call(ws, ping(1)) == {"id": 1, "result": {}}


async def test_invalid_json_answers_bad_json_then_closes_with_1007(node_port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(node_port) as ws:
            await ws.send_message('{"id": 1, "op": "ping",')
            answer = await receive(ws)
            assert answer["id"] is None
            assert answer["error"]["code"] == "bad_json"
            assert await close_code(ws) == CloseCode.INVALID_PAYLOAD


def _ping_padded_to(size: int) -> str:
    """A valid ping frame of exactly ``size`` UTF-8 bytes (JSON whitespace as padding)."""
    frame = json.dumps(ping(1), separators=(",", ":"))
    return frame[:-1] + " " * (size - len(frame)) + "}"


@pytest.mark.parametrize("endpoint", list(Endpoint))
async def test_frame_of_exactly_the_limit_is_answered(node_port: int, endpoint: Endpoint) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(node_port, f"/{endpoint.value}") as ws:
            await ws.send_message(_ping_padded_to(MAX_FRAME_BYTES[endpoint]))
            assert await receive(ws) == {"id": 1, "result": {}}


@pytest.mark.parametrize("endpoint", list(Endpoint))
async def test_frame_over_the_limit_answers_too_large_then_closes_with_1009(
    node_port: int, endpoint: Endpoint
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(node_port, f"/{endpoint.value}") as ws:
            await ws.send_message(_ping_padded_to(MAX_FRAME_BYTES[endpoint] + 1))
            answer = await receive(ws)
            assert answer["id"] is None
            assert answer["error"]["code"] == "too_large"
            assert await close_code(ws) == CloseCode.MESSAGE_TOO_BIG


async def test_binary_message_answers_bad_frame_then_closes_with_1003(node_port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(node_port) as ws:
            await ws.send_message(json.dumps(ping(1)).encode())
            answer = await receive(ws)
            assert answer == {
                "id": None,
                "error": {"code": "bad_frame", "message": "binary frames are not used"},
            }
            assert await close_code(ws) == CloseCode.UNSUPPORTED_DATA


async def test_unsolicited_result_answers_bad_frame_with_its_id(node_port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(node_port, "/federation") as ws:
            answer = await call(ws, {"id": "r-7", "result": {"anything": 1}})
            assert answer["id"] == "r-7"
            assert answer["error"]["code"] == "bad_frame"
            assert await call(ws, ping(8)) == {"id": 8, "result": {}}


@pytest.mark.parametrize("request_id", [7, "e-7", None])
async def test_error_frame_gets_no_answer(node_port: int, request_id: int | str | None) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(node_port, "/federation") as ws:
            error = {"code": "internal_error", "message": "it broke"}
            await send(ws, {"id": request_id, "error": error})
            # Frames on one socket arrive in order: had the error frame been answered,
            # that answer would come before the ping's.
            assert await call(ws, ping(8)) == {"id": 8, "result": {}}


async def test_malformed_error_frame_is_answered_bad_frame_and_stays_open(node_port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(node_port) as ws:
            answer = await call(ws, {"id": 5, "error": {"code": "x"}})
            assert answer["error"]["code"] == "bad_frame"
            assert await call(ws, ping(6)) == {"id": 6, "result": {}}


async def test_twenty_concurrent_connections_all_get_their_pings_answered(
    node_port: int,
) -> None:
    answers: dict[int, dict[str, object]] = {}

    async def one_client(index: int) -> None:
        path = PATHS[index % 2]
        async with connect(node_port, path) as ws:
            answers[index] = await call(ws, ping(index))

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            for index in range(20):
                nursery.start_soon(one_client, index)
    assert answers == {index: {"id": index, "result": {}} for index in range(20)}


async def test_many_requests_on_one_connection_are_answered_in_order(node_port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(node_port) as ws:
            for index in range(50):
                await send(ws, ping(index))
            answers = [await receive(ws) for _ in range(50)]
    assert [answer["id"] for answer in answers] == list(range(50))


async def test_a_bug_while_serving_closes_only_that_connection_with_1011(
    node_port: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def decode_or_crash(data: str | bytes, *, endpoint: Endpoint, sender: Role) -> Frame:
        if data == b"crash":  # text messages reach the decoder as bytes
            raise RuntimeError("a bug in the node")
        return decode_frame(data, endpoint=endpoint, sender=sender)

    monkeypatch.setattr("node.transport.websocket.decode_frame", decode_or_crash)
    with trio.fail_after(TIMEOUT):
        async with connect(node_port) as bystander:
            async with connect(node_port) as victim:
                await victim.send_message("crash")
                assert await close_code(victim) == CloseCode.INTERNAL_ERROR
            assert await call(bystander, ping(1)) == {"id": 1, "result": {}}
        async with connect(node_port) as newcomer:
            assert await call(newcomer, ping(2)) == {"id": 2, "result": {}}
    assert [record.msg for record in caplog.records if record.levelname == "ERROR"] == [
        "connection_failed"
    ]


async def test_a_flush_after_the_node_began_closing_writes_nothing() -> None:
    # The outbox flusher may run after the connection finished: its bytes must neither
    # follow the close frame nor reach the next connection given the same descriptor.
    left, right = trio.socket.socketpair()
    with trio.fail_after(TIMEOUT):
        async with trio.SocketStream(right) as peer:
            connection = _Connection(trio.SocketStream(left), FrameReader(MAX_MESSAGE_BYTES))
            write_now = connection.write_now()
            assert write_now is not None
            assert write_now(b"first") == 5
            connection.outbox_done = True
            assert write_now(b"late") == 0
            await connection.drop()
            assert write_now(b"dropped") == 0
            received = b""
            while chunk := await peer.receive_some():
                received += chunk
    assert received == b"first"


async def test_a_connection_that_falls_behind_is_closed_with_1008_cleanly(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("node.transport.websocket.Outbox", functools.partial(Outbox, limit=65536))

    async def flood(session: Session, params: JsonObject) -> JsonObject:
        for _ in range(2000):  # far more than the socket and the outbox hold
            session.push_nowait(b'{"op":"x","params":{"pad":"' + b"y" * 1000 + b'"}}')
        return {}

    listeners = await open_listeners("127.0.0.1", 0)
    address = await nursery.start(serve_websocket_endpoints, Dispatcher({"ping": flood}), listeners)
    with trio.fail_after(TIMEOUT):
        async with connect(address.port, "/federation") as ws:
            await send(ws, ping(1))
            while True:  # read only once the node has given up on us
                try:
                    await ws.get_message()
                except ConnectionClosed as closed:
                    assert closed.reason is not None
                    assert closed.reason.code == CloseCode.POLICY_VIOLATION
                    break
    assert [record.msg for record in caplog.records if record.levelname == "ERROR"] == []
