"""Every request gets exactly one answer with its id, whatever its handler does."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import trio

from node.dispatch import Dispatcher, Handler
from node.log import LogfmtFormatter
from node.session import Peer, Session
from node.transport.websocket import open_listeners, serve_websocket_endpoints
from protocol import (
    Endpoint,
    ErrorCode,
    JsonObject,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    Role,
)
from tests.node.logfmt import parse_logfmt
from tests.node.wsclient import TIMEOUT, call, connect, ping

PEER = Session(
    Peer(connection_id=1, endpoint=Endpoint.CLIENT, role=Role.CLIENT, remote="127.0.0.1:1")
)


def _answer(frame: bytes) -> dict[str, Any]:
    decoded = json.loads(frame)
    assert isinstance(decoded, dict)
    return decoded


def _failing(error: BaseException) -> Handler:
    async def handler(session: Session, params: JsonObject) -> JsonObject:
        raise error

    return handler


async def test_handler_result_is_answered_with_the_request_id() -> None:
    async def echo_endpoint(session: Session, params: JsonObject) -> JsonObject:
        return {"endpoint": session.peer.endpoint.value}

    dispatcher = Dispatcher({"ping": echo_endpoint})
    answer = await dispatcher.answer(PEER, Request("r1", "ping", {}))
    assert _answer(answer) == {"id": "r1", "result": {"endpoint": "client"}}


async def test_op_without_a_handler_answers_unknown_op() -> None:
    answer = _answer(await Dispatcher({}).answer(PEER, Request(5, "ping", {})))
    assert answer["id"] == 5
    assert answer["error"]["code"] == "unknown_op"
    assert "does not implement 'ping'" in answer["error"]["message"]


async def test_remote_protocol_error_answers_its_code_and_message() -> None:
    error = RemoteProtocolError(ErrorCode.BAD_IDENTIFIER, "no such room")
    answer = _answer(
        await Dispatcher({"ping": _failing(error)}).answer(PEER, Request(6, "ping", {}))
    )
    assert answer == {"id": 6, "error": {"code": "bad_identifier", "message": "no such room"}}


@pytest.mark.parametrize(
    "error",
    [RuntimeError("bug"), KeyError("missing"), LocalProtocolError(ErrorCode.BAD_JSON, "float")],
)
async def test_handler_failure_answers_internal_error_and_logs_the_traceback(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    dispatcher = Dispatcher({"ping": _failing(error)})
    with caplog.at_level(logging.ERROR, logger="node"):
        answer = _answer(await dispatcher.answer(PEER, Request(7, "ping", {})))
    assert answer["id"] == 7
    assert answer["error"]["code"] == "internal_error"
    (record,) = caplog.records
    fields = parse_logfmt(LogfmtFormatter().format(record))
    assert fields["event"] == "handler_failed"
    assert fields["level"] == "error"
    assert fields["op"] == "ping"
    assert fields["id"] == "7"
    assert type(error).__name__ in fields["traceback"]


async def test_result_outside_canonical_json_answers_internal_error() -> None:
    async def returns_a_float(session: Session, params: JsonObject) -> JsonObject:
        return {"ratio": 0.5}

    answer = _answer(
        await Dispatcher({"ping": returns_a_float}).answer(PEER, Request(8, "ping", {}))
    )
    assert answer["error"]["code"] == "internal_error"


async def test_cancellation_is_not_turned_into_an_answer() -> None:
    async def hangs(session: Session, params: JsonObject) -> JsonObject:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    with trio.CancelScope() as scope:
        scope.cancel()
        await Dispatcher({"ping": hangs}).answer(PEER, Request(9, "ping", {}))
    assert scope.cancelled_caught


def test_handler_for_an_op_the_protocol_lacks_is_a_wiring_error() -> None:
    with pytest.raises(ValueError, match="levitate"):
        Dispatcher({"levitate": _failing(RuntimeError())})


def test_dispatcher_lists_the_ops_it_implements() -> None:
    assert Dispatcher({"ping": _failing(RuntimeError())}).ops == {"ping"}


async def test_connection_keeps_serving_after_a_handler_crash(nursery: trio.Nursery) -> None:
    calls = 0

    async def crashes_once(session: Session, params: JsonObject) -> JsonObject:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("first call fails")
        return {}

    listeners = await open_listeners("127.0.0.1", 0)
    address = await nursery.start(
        serve_websocket_endpoints, Dispatcher({"ping": crashes_once}), listeners
    )
    with trio.fail_after(TIMEOUT):
        async with connect(address.port) as ws:
            failed = await call(ws, ping(1))
            assert failed["error"]["code"] == "internal_error"
            assert await call(ws, ping(2)) == {"id": 2, "result": {}}
