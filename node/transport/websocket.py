"""The node's WebSocket server: ``/client`` and ``/federation`` over one port (spec/wire.md).

Built directly on wsproto, because the node's hot path is writing: a stream item published
to a room is framed once (``node.transport.frames``) and the same bytes go to every member's
socket, and each connection's pump writes everything waiting in its outbox with one
``send_all``. Reading goes through wsproto event by event.

Handshake (spec/wire.md §1): the path picks the endpoint, and with it who the peer is — a
user's device on ``/client``, another node on ``/federation``; any other path is refused
with HTTP 404. A client that offers subprotocols must offer ``kith.v1`` (else HTTP 400); one
that offers none is accepted without a subprotocol. With ``max_connections``, a connection
accepted while the node already serves that many is told ``too_many_connections`` (error
frame, null ``id``) and closed with 1008 (spec/client.md §7). With an ``ssl.SSLContext``
the same endpoints are served over TLS only (``wss://``).

Each connection then has one reader loop, which decodes every text message as a frame and
answers it in order (spec/wire.md §3-§4):

* a request → the dispatcher's result or error frame, with the request's ``id``;
* an undecodable message → the error frame ``decode_frame`` asks for; when the message could
  not be parsed at all, the connection is then closed with its close code (1007, 1009);
* a result nobody asked for → ``bad_frame`` with its ``id``;
* an error frame → nothing, ever: answering errors with errors lets two nodes ping-pong;
* a binary message → ``bad_frame``, then close 1003 (frames are text).

Requests are handled one after another, so answers leave in the order requests came in and
a peer that floods the socket is slowed down by its own unanswered requests.
"""

from __future__ import annotations

import contextlib
import itertools
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    TextMessage,
)
from wsproto.events import (
    Request as Handshake,
)
from wsproto.utilities import LocalProtocolError as WebSocketProtocolError
from wsproto.utilities import RemoteProtocolError as WebSocketRemoteError

from node.dispatch import Dispatcher
from node.log import get_log
from node.session import Peer, Session
from node.transport.frames import text_frame
from node.transport.outbox import Outbox, raw_writer
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
    "MAX_MESSAGE_BYTES",
    "BoundAddress",
    "ListenError",
    "WebSocketEndpoints",
    "open_listeners",
    "serve_websocket_endpoints",
]

log = get_log(__name__)

MAX_MESSAGE_BYTES: Final = 2 * max(MAX_FRAME_BYTES.values())
"""Where the server stops reading a message and closes with 1009 (spec/wire.md §4).

It is above the frame limits of spec/wire.md §1 on purpose: a message just over its
endpoint's limit reaches ``decode_frame`` and is answered ``too_large`` before the close.
"""
HANDSHAKE_TIMEOUT: Final = 10.0
"""Seconds a new TCP connection (TLS included) gets to complete its WebSocket handshake."""
CLOSE_TIMEOUT: Final = 10.0
"""Seconds the node waits for the peer to answer its close frame before dropping TCP."""
_RECEIVE_BYTES: Final = 65536
_WRITE_BATCH_BYTES: Final = 256 * 1024
_MAX_CLOSE_REASON_BYTES: Final = 123  # RFC 6455 §5.5: control frame payload ≤ 125 bytes
_BINARY_REFUSED: Final = "binary frames are not used"
_ROLES: Final = {Endpoint.CLIENT: Role.CLIENT, Endpoint.FEDERATION: Role.NODE}
_NOT_FOUND: Final = b"not found: a Kith node serves /client and /federation"


class ListenError(Exception):
    """The node could not bind its listening socket (port taken, unknown host, ...)."""


class _PeerLeftError(Exception):
    """The peer closed, or the network broke: nothing left to answer."""


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


def _close_reason(text: str) -> str:
    return text.encode()[:_MAX_CLOSE_REASON_BYTES].decode(errors="ignore")


def _describe(stream: trio.abc.Stream) -> str:
    socket_stream = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    if not isinstance(socket_stream, trio.SocketStream):
        return "?"
    try:
        host, port = socket_stream.socket.getpeername()[:2]
    except OSError:
        return "?"
    host = f"[{host}]" if ":" in str(host) else str(host)
    return f"{host}:{port}"


class _Connection:
    """One accepted WebSocket: wsproto's state and the TCP (or TLS) stream under it."""

    def __init__(self, stream: trio.abc.Stream, ws: WSConnection, pending: list[Event]) -> None:
        self.stream = stream
        self.ws = ws
        self.pending = pending
        self.write_lock = trio.Lock()
        self.outbox: Outbox | None = None
        self.close_reply: bytes | None = None
        """The answer to the peer's close frame, written once the outbox is done."""

    async def write(self, data: bytes) -> None:
        async with self.write_lock:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise _PeerLeftError from exc

    async def events(self) -> Event:
        """The next wsproto event, reading from the stream as needed."""
        while not self.pending:
            try:
                data = await self.stream.receive_some(_RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise _PeerLeftError from exc
            if not data:
                raise _PeerLeftError
            self.ws.receive_data(bytes(data))
            self.pending.extend(self.ws.events())
        return self.pending.pop(0)

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame (if still open), wait a little for the peer's, drop TCP."""
        with trio.move_on_after(CLOSE_TIMEOUT):
            try:
                if self.ws.state is ConnectionState.OPEN:
                    frame = self.ws.send(CloseConnection(code=code, reason=_close_reason(reason)))
                    await self.write(frame)
                while self.ws.state is not ConnectionState.CLOSED:
                    event = await self.events()
                    if isinstance(event, CloseConnection):
                        break
            except (_PeerLeftError, WebSocketProtocolError, WebSocketRemoteError):
                pass
        await trio.aclose_forcefully(self.stream)


class WebSocketEndpoints:
    """Accepts handshakes for the two endpoints and runs the reader and pump per connection."""

    def __init__(self, dispatcher: Dispatcher, *, max_connections: int | None = None) -> None:
        self._dispatcher = dispatcher
        self._connection_ids = itertools.count(1)
        self._max_connections = max_connections
        self.open_connections = 0
        """Accepted connections being served now (the count ``max_connections`` limits)."""

    async def handle_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one TCP (or TLS) connection from its handshake to its end."""
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                accepted = await self._handshake(stream)
        except (trio.TooSlowError, _PeerLeftError, WebSocketRemoteError, trio.BrokenResourceError):
            accepted = None
        if accepted is None:
            await trio.aclose_forcefully(stream)
            return
        connection, peer = accepted
        if self._max_connections is not None and self.open_connections >= self._max_connections:
            await self._refuse_over_limit(connection, peer)
            return
        self.open_connections += 1
        try:
            await self.serve_connection(connection, peer)
        finally:
            self.open_connections -= 1

    async def _handshake(self, stream: trio.abc.Stream) -> tuple[_Connection, Peer] | None:
        ws = WSConnection(ConnectionType.SERVER)
        connection = _Connection(stream, ws, [])
        event = await connection.events()
        if not isinstance(event, Handshake):
            return None
        remote = _describe(stream)
        path = event.target.partition("?")[0]
        endpoint = ENDPOINT_PATHS.get(path)
        if endpoint is None:
            log.debug("handshake_rejected", status=404, path=path[:200], remote=remote)
            await self._reject(connection, 404, _NOT_FOUND)
            return None
        offered = event.subprotocols
        if offered and SUBPROTOCOL not in offered:
            log.debug("handshake_rejected", status=400, subprotocols=",".join(offered)[:200])
            await self._reject(connection, 400, f"subprotocol {SUBPROTOCOL} required".encode())
            return None
        await connection.write(
            ws.send(AcceptConnection(subprotocol=SUBPROTOCOL if offered else None))
        )
        return connection, Peer(next(self._connection_ids), endpoint, _ROLES[endpoint], remote)

    @staticmethod
    async def _reject(connection: _Connection, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        reply = connection.ws.send(
            RejectConnection(status_code=status, headers=headers, has_body=True)
        )
        reply += connection.ws.send(RejectData(data=body))
        await connection.write(reply)

    async def _refuse_over_limit(self, connection: _Connection, peer: Peer) -> None:
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
        with contextlib.suppress(_PeerLeftError):
            await connection.write(text_frame(encode_frame(refusal)))
        await connection.close(CloseCode.POLICY_VIOLATION, "too many connections")

    async def serve_connection(self, connection: _Connection, peer: Peer) -> None:
        """The reader loop and the pump of one accepted connection; returns once closed.

        A bug met while serving one connection closes that connection with 1011 and is
        logged; it never reaches the server, which would stop every other connection.
        """
        log.debug(
            "connection_opened", conn=peer.connection_id, endpoint=peer.endpoint, remote=peer.remote
        )
        session = Session(peer)
        outbox = Outbox(connection.write, raw_writer(connection.stream))
        session.attach(outbox)
        connection.outbox = outbox
        closing: tuple[int, str] | None = None
        peer_left = False
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, connection, session, outbox)
                closing = await self._read_loop(connection, session)
                peer_left = closing is None
                if peer_left:
                    nursery.cancel_scope.cancel()
                else:
                    outbox.finish()  # the pump writes what is queued, then stops
        except Exception:
            log.exception("connection_failed", conn=peer.connection_id, endpoint=peer.endpoint)
            closing = (CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            session.end()
            with trio.CancelScope(shield=True):
                if closing is not None:
                    await connection.close(*closing)
                elif connection.close_reply is not None:
                    with contextlib.suppress(_PeerLeftError):
                        await connection.write(connection.close_reply)
                    await trio.aclose_forcefully(connection.stream)
                else:
                    await trio.aclose_forcefully(connection.stream)
            log.debug(
                "connection_closed",
                conn=peer.connection_id,
                by="peer" if peer_left else "node",
                code=closing[0] if closing is not None else None,
            )

    async def _read_loop(self, connection: _Connection, session: Session) -> tuple[int, str] | None:
        """Answer messages until one asks to close (its code and reason) or the peer leaves."""
        parts: list[str] = []
        size = 0
        try:
            while True:
                event = await connection.events()
                if isinstance(event, TextMessage):
                    parts.append(event.data)
                    size += len(event.data)
                    if size > MAX_MESSAGE_BYTES:
                        return CloseCode.MESSAGE_TOO_BIG, "message too big"
                    if event.message_finished:
                        text, parts, size = "".join(parts), [], 0
                        closing = await self._receive_text(session, text)
                        if closing is not None:
                            return closing
                elif isinstance(event, BytesMessage):
                    return await self._refuse_binary(session)
                elif isinstance(event, Ping) and connection.outbox is not None:
                    # Through the outbox, so the pong never cuts into a frame being written.
                    connection.outbox.put_nowait(connection.ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    if connection.ws.state is ConnectionState.OPEN:
                        # wsproto reports a frame no peer may send (bad UTF-8, a bad opcode)
                        # as a close event of its own: we close with its code.
                        return int(event.code), event.reason or "invalid frame"
                    if connection.ws.state is ConnectionState.REMOTE_CLOSING:
                        connection.close_reply = connection.ws.send(event.response())
                    return None
        except _PeerLeftError:
            return None

    async def _pump(self, connection: _Connection, session: Session, outbox: Outbox) -> None:
        """Write what the outbox's flush could not; close a connection that fell behind."""
        try:
            await outbox.pump()
        except _PeerLeftError:
            return  # the reader sees it too and ends the connection
        if outbox.overflowed:
            log.info("connection_too_slow", conn=session.peer.connection_id)
            await connection.close(CloseCode.POLICY_VIOLATION, "too slow: resume from your cursor")

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
    served: Sequence[trio.abc.Listener[trio.abc.Stream]] = listeners
    if ssl_context is not None:
        served = [
            trio.SSLListener(listener, ssl_context, https_compatible=True) for listener in listeners
        ]
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, endpoints.handle_stream, served)
            task_status.started(_bound_address(listeners[0], tls=ssl_context is not None))
    finally:
        with trio.CancelScope(shield=True):
            for listener in listeners:
                await listener.aclose()
