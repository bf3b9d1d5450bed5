"""A tiny WebSocket client for the conformance suite, on wsproto and trio TCP streams.

The suite owns its client rather than borrowing the node's stack, so it can send what a
well-behaved library would refuse to (oversized or binary messages) and see exactly what the
node answers: each text message, the close code, or the HTTP status of a refused handshake.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

_RECEIVE_BYTES = 65536


class HandshakeRejectedError(Exception):
    """The node refused the WebSocket handshake with an HTTP status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"handshake rejected with HTTP {status}")
        self.status = status


@dataclass(frozen=True)
class Text:
    """A complete text message."""

    data: str


@dataclass(frozen=True)
class Binary:
    """A complete binary message."""

    data: bytes


@dataclass(frozen=True)
class Closed:
    """The node closed the connection with ``code``."""

    code: int
    reason: str


Received = Text | Binary | Closed


class WebSocket:
    """One client connection; use :func:`connect`."""

    def __init__(self, stream: trio.SocketStream, protocol: WSConnection, subprotocol: str | None):
        self._stream = stream
        self._ws = protocol
        self.subprotocol = subprotocol
        self._pending: list[Event] = []
        self._text: list[str] = []
        self._bytes: list[bytes] = []
        self.closed: Closed | None = None

    async def send_text(self, text: str) -> None:
        """Send one text message."""
        await self._stream.send_all(self._ws.send(TextMessage(data=text)))

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary message."""
        await self._stream.send_all(self._ws.send(BytesMessage(data=data)))

    async def receive(self) -> Received:
        """The next complete message, or :class:`Closed` once the node has closed."""
        if self.closed is not None:
            return self.closed
        while True:
            while self._pending:
                result = await self._handle(self._pending.pop(0))
                if result is not None:
                    return result
            data = await self._stream.receive_some(_RECEIVE_BYTES)
            if not data:
                self.closed = Closed(1006, "connection lost")
                return self.closed
            self._ws.receive_data(data)
            self._pending.extend(self._ws.events())

    async def _handle(self, event: Event) -> Received | None:
        if isinstance(event, TextMessage):
            self._text.append(event.data)
            if event.message_finished:
                text, self._text = "".join(self._text), []
                return Text(text)
        elif isinstance(event, BytesMessage):
            self._bytes.append(bytes(event.data))
            if event.message_finished:
                data, self._bytes = b"".join(self._bytes), []
                return Binary(data)
        elif isinstance(event, Ping):
            await self._stream.send_all(self._ws.send(event.response()))
        elif isinstance(event, CloseConnection):
            self.closed = Closed(event.code, event.reason or "")
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self._stream.send_all(self._ws.send(event.response()))
            return self.closed
        return None

    async def aclose(self) -> None:
        """Close politely if still open, then drop the TCP stream — even when cancelled."""
        try:
            if self.closed is None:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await self._stream.send_all(self._ws.send(CloseConnection(code=1000)))
        finally:
            await trio.aclose_forcefully(self._stream)

    async def __aenter__(self) -> WebSocket:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def connect(url: str, *, subprotocols: tuple[str, ...] = ()) -> WebSocket:
    """Open ``ws://host:port/path``; raise :class:`HandshakeRejectedError` on an HTTP refusal."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.hostname is None or parts.port is None:
        raise ValueError(f"the conformance client speaks ws://host:port/path, not {url!r}")
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    protocol = WSConnection(ConnectionType.CLIENT)
    request = Request(host=parts.netloc, target=parts.path or "/", subprotocols=list(subprotocols))
    await stream.send_all(protocol.send(request))
    try:
        while True:
            data = await stream.receive_some(_RECEIVE_BYTES)
            if not data:
                raise HandshakeRejectedError(0)
            protocol.receive_data(data)
            events = list(protocol.events())
            for index, event in enumerate(events):
                if isinstance(event, AcceptConnection):
                    socket = WebSocket(stream, protocol, event.subprotocol)
                    socket._pending.extend(events[index + 1 :])
                    return socket
                if isinstance(event, RejectConnection):
                    raise HandshakeRejectedError(event.status_code)
                if isinstance(event, RejectData):  # pragma: no cover - body after a reject
                    continue
    except BaseException:
        await stream.aclose()
        raise
