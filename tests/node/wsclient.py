"""A tiny test client: connect to a node started in the test and swap JSON frames."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_client_stream
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request

from protocol import SUBPROTOCOL

TIMEOUT = 5.0
"""Bound on every network test: generous for a loaded machine, instant when all is well."""


@asynccontextmanager
async def connect(
    port: int, path: str = "/client", *, subprotocols: Sequence[str] = (SUBPROTOCOL,)
) -> AsyncIterator[WebSocketConnection]:
    """Open a WebSocket to the node, offering ``subprotocols`` (none if empty).

    The test owns the TCP stream and always closes it: trio-websocket's client leaves its
    socket open when the server is the side that closes the WebSocket.
    """
    async with trio.open_nursery() as nursery:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            ws = await wrap_client_stream(
                nursery, stream, f"127.0.0.1:{port}", path, subprotocols=list(subprotocols)
            )
            try:
                yield ws
            finally:
                with trio.move_on_after(TIMEOUT):
                    await ws.aclose()


async def receive(ws: WebSocketConnection) -> dict[str, Any]:
    """The next message, which must be a text frame holding a JSON object."""
    message = await ws.get_message()
    assert isinstance(message, str), f"expected a text message, got {message!r}"
    frame = json.loads(message)
    assert isinstance(frame, dict)
    return frame


async def send(ws: WebSocketConnection, frame: dict[str, Any]) -> None:
    """Send ``frame`` as JSON text, UTF-8 unescaped as a client should (spec/client.md §4)."""
    await ws.send_message(json.dumps(frame, ensure_ascii=False))


async def call(ws: WebSocketConnection, frame: dict[str, Any]) -> dict[str, Any]:
    """Send ``frame`` and return the next frame received."""
    await send(ws, frame)
    return await receive(ws)


async def close_code(ws: WebSocketConnection) -> int:
    """Wait for the node to close the WebSocket; the close code it sent."""
    try:
        message = await ws.get_message()
    except ConnectionClosed as closed:
        assert closed.reason is not None
        return closed.reason.code
    raise AssertionError(f"expected the node to close the socket, got {message!r}")


def ping(request_id: int | str) -> dict[str, Any]:
    """A ping request with ``request_id``."""
    return {"id": request_id, "op": "ping", "params": {}}


async def handshake_status(
    port: int, path: str, *, subprotocols: Sequence[str] = (SUBPROTOCOL,)
) -> int:
    """The HTTP status a node answers an opening handshake with (101 when accepted).

    Speaks the handshake with wsproto over a plain socket, which it always closes:
    trio-websocket's client leaves the socket of a rejected handshake open.
    """
    client = WSConnection(ConnectionType.CLIENT)
    request = Request(host=f"127.0.0.1:{port}", target=path, subprotocols=list(subprotocols))
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(client.send(request))
        while True:
            data = await stream.receive_some()
            client.receive_data(data or None)
            for event in client.events():
                if isinstance(event, RejectConnection):
                    return event.status_code
                if isinstance(event, AcceptConnection):
                    return 101
            assert data, "the node closed the connection without answering the handshake"
