"""The node's WebSocket server: ``/client`` and ``/federation`` over one port (spec/wire.md).

Handshake (spec/wire.md §1.1-§1.2): the path picks the endpoint, and with it who the peer is — a
user's device on ``/client``, another node on ``/federation``; any other path is refused
with HTTP 404. A client that offers subprotocols must offer ``kith.v1`` (else HTTP 400);
one that offers none is accepted without a subprotocol.

Each connection then has one reader loop, which decodes every text message as a frame and
answers it in order (spec/wire.md §3-§4):

* a request → the dispatcher's result or error frame, with the request's ``id``;
* an undecodable message → the error frame ``decode_frame`` asks for; when the message
  could not be parsed at all, the socket is then closed with its close code (1007, 1009);
* a result nobody asked for → ``bad_frame`` with its ``id``;
* an error frame → nothing, ever: answering errors with errors lets two nodes ping-pong;
* a binary message → ``bad_frame``, then close 1003 (frames are text).

Requests are handled one after another, so answers leave in the order requests came in and
a peer that floods the socket is slowed down by its own unanswered requests.

With an ``ssl.SSLContext`` the same endpoints are served over TLS (``wss://``) only. With
``max_connections``, a connection accepted while the node already serves that many (both
endpoints together) is told ``too_many_connections`` in an error frame with a null ``id``
and closed with 1008 (spec/client.md §7).
"""

from __future__ import annotations

import contextlib
import itertools
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import trio
import trio_websocket
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    WebSocketServer,
)

from node.dispatch import Dispatcher
from node.log import get_log
from node.session import Peer, Session
from protocol import (
    SUBPROTOCOL,
    ErrorCode,
    ErrorResponse,
    FrameError,
    Notice,
    Request,
    Response,
    Role,
    decode_frame,
    encode_frame,
)
from protocol.wire import ENDPOINT_PATHS, MAX_FRAME_BYTES, CloseCode, Endpoint

__all__ = [
    "CLOSE_TIMEOUT",
    "HANDSHAKE_TIMEOUT",
    "MAX_MESSAGE_CHARS",
    "BoundAddress",
    "ListenError",
    "WebSocketEndpoints",
    "open_listeners",
    "serve_websocket_endpoints",
]

log = get_log(__name__)

MAX_MESSAGE_CHARS: Final = 2 * max(MAX_FRAME_BYTES.values())
"""trio-websocket's own message cap, above the frame limits of spec/wire.md §1.4 (see §4).

It must not be the limit itself: a message just over the limit has to reach
``decode_frame`` to be answered ``too_large`` before the 1009 close. The library counts
characters (one value for the whole server), the protocol counts UTF-8 bytes per endpoint,
so the cap is twice the larger endpoint's limit and ``decode_frame`` enforces the real one.
"""
HANDSHAKE_TIMEOUT: Final = 10.0
"""Seconds a new TCP connection gets to complete its WebSocket handshake."""
CLOSE_TIMEOUT: Final = 10.0
"""Seconds the node waits for the peer to answer its close frame before dropping TCP."""
_MAX_CLOSE_REASON_BYTES: Final = 123  # RFC 6455 §5.5: control frame payload ≤ 125 bytes
_BINARY_REFUSED: Final = "binary frames are not used"
_ROLES: Final = {Endpoint.CLIENT: Role.CLIENT, Endpoint.FEDERATION: Role.NODE}


class ListenError(Exception):
    """The node could not bind its listening socket (port taken, unknown host, ...)."""


@dataclass(frozen=True, slots=True)
class BoundAddress:
    """Where the server actually listens (the real port when 0 was asked for)."""

    host: str
    port: int
    tls: bool = False

    @property
    def url(self) -> str:
        """``ws://host:port``, or ``wss://`` with TLS (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'wss' if self.tls else 'ws'}://{host}:{self.port}"


def _describe(endpoint: trio_websocket.Endpoint | str) -> str:
    if isinstance(endpoint, trio_websocket.Endpoint):
        host = str(endpoint.address)
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{endpoint.port}"
    return endpoint


def _sender(ws: WebSocketConnection) -> Callable[[str], Awaitable[None]]:
    """How a session pushes: one text message; a closed connection swallows it."""

    async def send(text: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send_message(text)

    return send


def _close_reason(text: str) -> str:
    return text.encode()[:_MAX_CLOSE_REASON_BYTES].decode(errors="ignore")


class WebSocketEndpoints:
    """Accepts handshakes for the two endpoints and runs one reader loop per connection."""

    def __init__(self, dispatcher: Dispatcher, *, max_connections: int | None = None) -> None:
        self._dispatcher = dispatcher
        self._connection_ids = itertools.count(1)
        self._max_connections = max_connections
        self.open_connections = 0
        """Accepted connections being served now (the count ``max_connections`` limits)."""

    async def handle_handshake(self, request: WebSocketRequest) -> None:
        """Accept or refuse one opening handshake; serve the connection when accepted."""
        try:
            accepted = await self._accept(request)
        except ConnectionClosed:
            return  # the peer left in the middle of its handshake
        if accepted is None:
            return
        ws, peer = accepted
        if self._max_connections is not None and self.open_connections >= self._max_connections:
            await self._refuse_over_limit(ws, peer)
            return
        self.open_connections += 1
        try:
            await self.serve_connection(ws, peer)
        finally:
            self.open_connections -= 1

    async def _refuse_over_limit(self, ws: WebSocketConnection, peer: Peer) -> None:
        log.info(
            "too_many_connections",
            scope="node",
            limit=self._max_connections,
            conn=peer.connection_id,
            remote=peer.remote,
        )
        refusal = ErrorResponse(
            None,
            ErrorCode.TOO_MANY_CONNECTIONS.value,
            "this node serves as many connections as it allows",
        )
        with contextlib.suppress(ConnectionClosed):
            await ws.send_message(encode_frame(refusal).decode())
        await self._close(ws, CloseCode.POLICY_VIOLATION, "too many connections")

    async def _accept(self, request: WebSocketRequest) -> tuple[WebSocketConnection, Peer] | None:
        path = request.path.partition("?")[0]
        endpoint = ENDPOINT_PATHS.get(path)
        remote = _describe(request.remote)
        if endpoint is None:
            log.debug("handshake_rejected", status=404, path=path[:200], remote=remote)
            await request.reject(404, body=b"not found: a Kith node serves /client, /federation")
            return None
        offered = request.proposed_subprotocols
        if offered and SUBPROTOCOL not in offered:
            log.debug("handshake_rejected", status=400, subprotocols=",".join(offered)[:200])
            await request.reject(400, body=f"subprotocol {SUBPROTOCOL} required".encode())
            return None
        ws = await request.accept(subprotocol=SUBPROTOCOL if offered else None)
        return ws, Peer(next(self._connection_ids), endpoint, _ROLES[endpoint], remote)

    async def serve_connection(self, ws: WebSocketConnection, peer: Peer) -> None:
        """The reader loop of one accepted connection; returns once it is closed.

        A bug met while serving one connection closes that connection with 1011 and is
        logged; it never reaches the server, which would stop every other connection.
        """
        log.debug(
            "connection_opened",
            conn=peer.connection_id,
            endpoint=peer.endpoint,
            remote=peer.remote,
            subprotocol=ws.subprotocol,
        )
        session = Session(peer, send=_sender(ws))
        outbox = session.open_outbox()
        closing: tuple[int, str] | None = None
        peer_left = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, ws, session, outbox)
                closing = await self._read_loop(ws, session)
                peer_left = closing is None
                if peer_left:
                    nursery.cancel_scope.cancel()
                else:
                    session.close_outbox()  # the pump sends what is queued, then stops
            if closing is not None:
                await self._close(ws, *closing)
        except Exception:
            log.exception("connection_failed", conn=peer.connection_id, endpoint=peer.endpoint)
            closing = (CloseCode.INTERNAL_ERROR, "internal error")
            await self._close(ws, *closing)
        finally:
            session.end()
            reason = ws.closed
            log.debug(
                "connection_closed",
                conn=peer.connection_id,
                by="peer" if peer_left else "node",
                code=closing[0] if closing is not None else reason and reason.code,
            )

    async def _read_loop(self, ws: WebSocketConnection, session: Session) -> tuple[int, str] | None:
        """Answer messages until one asks to close (its code and reason) or the peer leaves."""
        try:
            while True:
                message = await ws.get_message()
                if isinstance(message, bytes):
                    return await self._refuse_binary(session)
                closing = await self._receive_text(session, message)
                if closing is not None:
                    return closing
        except ConnectionClosed:
            return None  # the peer closed, or the network broke: nothing left to answer

    async def _pump(
        self, ws: WebSocketConnection, session: Session, outbox: trio.MemoryReceiveChannel[str]
    ) -> None:
        """Send the connection's outbox in order; close a connection that fell behind."""
        async with outbox:
            try:
                async for text in outbox:
                    await ws.send_message(text)
            except ConnectionClosed:
                return  # the reader sees it too and ends the connection
        if session.too_slow:
            log.info("connection_too_slow", conn=session.peer.connection_id)
            await self._close(ws, CloseCode.POLICY_VIOLATION, "too slow: resume from your cursor")

    async def _receive_text(self, session: Session, text: str) -> tuple[int, str] | None:
        """Answer one text message; the close code and reason if the connection must close."""
        peer = session.peer
        try:
            frame = decode_frame(text, endpoint=peer.endpoint, sender=peer.role)
        except FrameError as exc:
            log.debug("frame_refused", conn=peer.connection_id, code=exc.code, fatal=exc.fatal)
            await session.queue(encode_frame(exc.to_response()))
            return None if exc.close_code is None else (exc.close_code, exc.message)
        if isinstance(frame, Request):
            await session.queue(await self._dispatcher.answer(session, frame))
            if session.close_code is not None:
                return session.close_code, "closed by the node"
        elif isinstance(frame, Response):
            # spec/wire.md §4 rule 4. This node sends no requests yet: every result is unsolicited.
            refusal = ErrorResponse(
                frame.id, ErrorCode.BAD_FRAME.value, "unsolicited result: no request has this id"
            )
            await session.queue(encode_frame(refusal))
        elif isinstance(frame, ErrorResponse):
            # spec/wire.md §4 rule 5: a valid error frame is never answered, whatever it says.
            log.debug("error_frame_received", conn=peer.connection_id, id=frame.id, code=frame.code)
        elif isinstance(frame, Notice):
            log.debug("notice_ignored", conn=peer.connection_id, op=frame.op)
        return None

    async def _refuse_binary(self, session: Session) -> tuple[int, str]:
        refusal = ErrorResponse(None, ErrorCode.BAD_FRAME.value, _BINARY_REFUSED)
        await session.queue(encode_frame(refusal))
        return CloseCode.UNSUPPORTED_DATA, _BINARY_REFUSED

    @staticmethod
    async def _close(ws: WebSocketConnection, code: int, reason: str) -> None:
        # aclose() waits for the peer's close frame; a peer that never sends one loses its
        # TCP connection after CLOSE_TIMEOUT (aclose closes the stream when cancelled).
        with trio.move_on_after(CLOSE_TIMEOUT):
            await ws.aclose(code, _close_reason(reason))


async def open_listeners(host: str, port: int) -> list[trio.SocketListener]:
    """Bind the node's listening socket(s); raise :class:`ListenError` if that fails.

    Binding comes first and apart from serving, so a taken port is reported as a plain
    exception before any task starts.
    """
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    if port == 0 and len(listeners) > 1:
        # A name with several addresses (``localhost``: 127.0.0.1 and ::1) would get a
        # different free port on each; one node has one port, so keep the first address.
        for extra in listeners[1:]:
            await extra.aclose()
        listeners = listeners[:1]
    return listeners


def _bound_address(listener: trio.SocketListener, *, tls: bool) -> BoundAddress:
    name = listener.socket.getsockname()
    return BoundAddress(str(name[0]), int(name[1]), tls=tls)


async def serve_websocket_endpoints(
    dispatcher: Dispatcher,
    listeners: list[trio.SocketListener],
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_connections: int | None = None,
    task_status: trio.TaskStatus[BoundAddress] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve both endpoints on ``listeners`` (from :func:`open_listeners`) until cancelled.

    Started with ``await nursery.start(...)``, it returns the bound address of the first
    listener once connections are accepted. It owns the listeners and closes them on exit.
    With ``ssl_context`` every connection starts with a TLS handshake (``wss://``); the
    WebSocket handshake timeout covers it.
    """
    endpoints = WebSocketEndpoints(dispatcher, max_connections=max_connections)
    served: list[trio.SocketListener] | list[trio.SSLListener[trio.SocketStream]] = listeners
    if ssl_context is not None:
        served = [
            trio.SSLListener(listener, ssl_context, https_compatible=True) for listener in listeners
        ]
    server = WebSocketServer(
        endpoints.handle_handshake,
        served,
        max_message_size=MAX_MESSAGE_CHARS,
        connect_timeout=HANDSHAKE_TIMEOUT,
        disconnect_timeout=CLOSE_TIMEOUT,
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            task_status.started(_bound_address(listeners[0], tls=ssl_context is not None))
    finally:
        with trio.CancelScope(shield=True):
            for listener in listeners:
                await listener.aclose()
