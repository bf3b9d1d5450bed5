"""One WebSocket as a channel of text frames, whichever end opened it (spec/wire.md §1).

A link (``peer_link``) needs three things of its socket: the next text message, a way to
send one, and a way to close. The node's own server gives them for links peers open
(``node.transport.websocket``); :func:`dial` gives them for links this node opens, over
trio-websocket. Pings, pongs and the close handshake stay down here.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol, cast
from urllib.parse import urlsplit

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

from protocol import SUBPROTOCOL, Endpoint
from protocol.wire import MAX_FRAME_BYTES

__all__ = ["Channel", "DialError", "PeerAddress", "dial"]

FEDERATION_PATH = "/federation"
DEFAULT_FEDERATION_PORT = 7447


class Channel(Protocol):
    """Text frames in and out of one WebSocket."""

    remote: str

    async def receive(self) -> bytes | str | None:
        """The next text message; None once the socket is closed (by either end)."""

    async def send(self, frame: bytes) -> None:
        """Send one frame (canonical JSON bytes); raises ``trio.BrokenResourceError``
        when the socket is gone."""

    async def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code``; never raises."""


class DialError(Exception):
    """A peer could not be reached or refused the WebSocket handshake."""


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """Where a peer's federation endpoint is (federation.md §2.1)."""

    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, text: str, *, default_tls: bool) -> PeerAddress:
        """``ws://host:port``, ``wss://host:port`` or ``host[:port]``."""
        tls = default_tls
        if "://" in text:
            parts = urlsplit(text)
            if parts.scheme not in ("ws", "wss") or not parts.hostname:
                raise ValueError(f"{text!r} is not a ws:// or wss:// address")
            tls = parts.scheme == "wss"
            host, port = parts.hostname, parts.port or DEFAULT_FEDERATION_PORT
        else:
            parts = urlsplit("//" + text)
            if not parts.hostname:
                raise ValueError(f"{text!r} is not host[:port]")
            host, port = parts.hostname, parts.port or DEFAULT_FEDERATION_PORT
        return cls(host, port, tls)

    @property
    def url(self) -> str:
        """The address as a URL, for logs."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'wss' if self.tls else 'ws'}://{host}:{self.port}{FEDERATION_PATH}"


CLOSE_WAIT_S = 0.25
"""How long closing a dialed link waits for the peer's close frame: a live peer answers at
once, and the reader that would read the answer of a node that is stopping is gone."""


class _ClientChannel:
    """A link this node opened: trio-websocket's connection as a :class:`Channel`."""

    def __init__(self, ws: WebSocketConnection, remote: str) -> None:
        self._ws = ws
        self.remote = remote

    async def receive(self) -> bytes | str | None:
        try:
            return await self._ws.get_message()
        except ConnectionClosed:
            return None

    async def send(self, frame: bytes) -> None:
        try:
            # A str is sent as a text message, which every frame is (wire.md §1.3).
            await self._ws.send_message(frame.decode())
        except ConnectionClosed as exc:
            raise trio.BrokenResourceError("the link is closed") from exc

    async def close(self, code: int, reason: str) -> None:
        with trio.move_on_after(CLOSE_WAIT_S):
            await self._ws.aclose(code, reason)


async def _open_stream(
    address: PeerAddress, server_name: str, ssl_context: ssl.SSLContext | None
) -> trio.abc.Stream:
    stream = await trio.open_tcp_stream(address.host, address.port)
    if not address.tls:
        return stream
    # federation.md §2.1: the certificate must be valid for the peer's server name.
    hostname = urlsplit("//" + server_name).hostname or server_name
    context = ssl_context or ssl.create_default_context()
    tls = trio.SSLStream(stream, context, server_hostname=hostname)
    try:
        await tls.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(tls)
        raise
    return tls


@asynccontextmanager
async def dial(
    address: PeerAddress,
    server_name: str,
    *,
    timeout: float,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Channel]:
    """Open a WebSocket to a peer's ``/federation``; close it when the block ends.

    ``ssl_context`` (default: the system's trust store) checks a ``wss://`` peer's
    certificate, which must be valid for ``server_name`` whatever the address.

    Raises :class:`DialError` when the TCP connection, TLS or the WebSocket handshake fails
    or takes longer than ``timeout``.
    """
    try:
        with trio.fail_after(timeout):
            stream = await _open_stream(address, server_name, ssl_context)
    except (OSError, trio.BrokenResourceError, trio.TooSlowError) as exc:
        raise DialError(f"cannot reach {address.url}: {exc!r}") from exc
    try:
        async with trio.open_nursery() as nursery:
            ws: WebSocketConnection | None = None
            with trio.move_on_after(timeout):
                ws = await wrap_client_stream(
                    nursery,
                    cast(trio.SocketStream, stream),
                    f"{address.host}:{address.port}",
                    FEDERATION_PATH,
                    subprotocols=[SUBPROTOCOL],
                    max_message_size=MAX_FRAME_BYTES[Endpoint.FEDERATION],
                )
            if ws is None:
                raise DialError(f"{address.url} did not complete the WebSocket handshake")
            try:
                yield _ClientChannel(ws, address.url)
            finally:
                # The peer's close reply is read by the connection's reader, which a node
                # that stops has cancelled already: wait for it only briefly.
                with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_WAIT_S):
                    await ws.aclose()
                nursery.cancel_scope.cancel()  # the stream is closed below, once
    except* DialError as group:
        raise group.exceptions[0] from None
    except* (ConnectionClosed, HandshakeError, trio.BrokenResourceError, OSError) as group:
        raise DialError(f"{address.url}: {group.exceptions[0]!r}") from None
    finally:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)
