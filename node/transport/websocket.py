"""The node's WebSocket server: ``/client`` and ``/federation`` over one port (spec/wire.md).

Written for the node's two hot paths. Writing: a stream item published to a room is framed
once (``node.transport.frames``) and the same bytes go to every member's socket, each
connection's outbox writing everything waiting with one system call. Reading: many devices
each sending a small request now and then, so a received frame costs one header parse and
one XOR (``node.transport.frame_reader``). The HTTP handshake is h11's
(``node.transport.handshake``).

Handshake (spec/wire.md §1): the path picks the endpoint, and with it who the peer is — a
user's device on ``/client``, another node on ``/federation``; any other path is refused
with HTTP 404. A client that offers subprotocols must offer ``kith.v1`` (else HTTP 400); one
that offers none is accepted without a subprotocol. A request that is not a WebSocket
upgrade (RFC 6455 §4.2.1) is refused with 400 (426 for a version other than 13). Frames the
client sent right behind its request are read as the first frames of the connection. With
``max_connections``, a connection accepted while the node already serves that many is told
``too_many_connections`` (error frame, null ``id``) and closed with 1008 (spec/client.md
§7). With an ``ssl.SSLContext`` the same endpoints are served over TLS only (``wss://``).

Each connection then has one reader loop, which decodes every text message as a frame and
answers it in order (spec/wire.md §3-§4):

* a request → the dispatcher's result or error frame, with the request's ``id``;
* an undecodable message → the error frame ``decode_frame`` asks for; when the message could
  not be parsed at all (not JSON, not UTF-8, too large), the connection is then closed with
  its close code (1007, 1009);
* a result nobody asked for → ``bad_frame`` with its ``id``;
* an error frame → nothing, ever: answering errors with errors lets two nodes ping-pong;
* a binary message → ``bad_frame``, then close 1003 (frames are text);
* a ping → a pong, queued behind what the outbox holds;
* a frame no client may send (RFC 6455 §5) → close 1002 (1007, 1009) without an answer, and
  a message over ``MAX_MESSAGE_BYTES`` is refused from its header, before it is read.

Requests are handled one after another, so answers leave in the order requests came in and
a peer that floods the socket is slowed down by its own unanswered requests.

Closing (RFC 6455 §5.5.1, §7): the node sends one close frame, after everything queued
before it, then waits up to ``CLOSE_TIMEOUT`` for the peer's close and drops TCP. A peer's
close is answered with a close echoing its code (unless the node had sent its own), then
TCP is dropped.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import trio

from node.dispatch import Dispatcher
from node.log import get_log
from node.session import Peer, Session
from node.transport.frame_reader import (
    BinaryMessage,
    Close,
    Event,
    FrameReader,
    Ping,
    ProtocolViolation,
    TextMessage,
)
from node.transport.frames import close_frame, pong_frame, text_frame
from node.transport.handshake import HandshakeError, ServerHandshake
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
"""Largest message the server reads; a longer one is refused from its first frame's header
with close 1009 (spec/wire.md §4).

It is above the frame limits of spec/wire.md §1 on purpose: a message just over its
endpoint's limit reaches ``decode_frame`` and is answered ``too_large`` before the close.
"""
HANDSHAKE_TIMEOUT: Final = 10.0
"""Seconds a new TCP connection (TLS included) gets to complete its WebSocket handshake."""
CLOSE_TIMEOUT: Final = 10.0
"""Seconds the node waits, when closing, for queued frames to leave and the peer's close."""
_RECEIVE_BYTES: Final = 65536
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


async def _receive(stream: trio.abc.Stream) -> bytes:
    """The next bytes from the peer; :class:`_PeerLeftError` once it is gone."""
    try:
        data = await stream.receive_some(_RECEIVE_BYTES)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise _PeerLeftError from exc
    if not data:
        raise _PeerLeftError
    return bytes(data)


def _raw_reader(stream: trio.abc.Stream) -> Callable[[], Awaitable[bytes]] | None:
    """A read straight from the stream's socket, or None if there is none (TLS).

    It waits for the socket to be readable first and then reads once: after a message
    the socket is almost always empty, so this skips the read that would find nothing,
    and the stream's layers, on every request — the cost of a heartbeat is mostly this
    loop. The socket is non-blocking (trio made it so).
    """
    if not isinstance(stream, trio.SocketStream):
        return None
    sock = stream.socket
    fd = sock.fileno()

    async def read() -> bytes:
        while True:
            try:
                await trio.lowlevel.wait_readable(sock)
                data = os.read(fd, _RECEIVE_BYTES)
            except BlockingIOError:
                continue
            except (OSError, trio.ClosedResourceError) as exc:
                raise _PeerLeftError from exc
            if not data:
                raise _PeerLeftError
            return data

    return read


class _Connection:
    """One accepted WebSocket: the stream, its frame reader and the closing handshake."""

    def __init__(self, stream: trio.abc.Stream, reader: FrameReader) -> None:
        self.stream = stream
        self.reader = reader
        self.write_lock = trio.Lock()
        self.outbox: Outbox | None = None
        self.close_sent = False
        self.close_received = False
        self.at_frame_boundary = True
        """False while, or after, a write stopped inside a frame: no close frame may follow."""
        self.outbox_done = False
        """Set once the outbox's writers are done: a late flush must not write any more."""
        self.dropped = False
        self._raw_write = raw_writer(stream)
        self._raw_read = _raw_reader(stream)

    def write_now(self) -> Callable[[bytes], int] | None:
        """The outbox's non-blocking write (None over TLS), guarded for a closing socket.

        It writes nothing once the outbox is done or TCP dropped: a flush that comes later
        must not slip frames in after the close frame, nor reach a new connection that was
        given the same file descriptor.
        """
        raw_write = self._raw_write
        if raw_write is None:
            return None

        def write(data: bytes) -> int:
            if self.outbox_done or self.dropped:
                return 0
            written = raw_write(data)
            self.at_frame_boundary = written == len(data)
            return written

        return write

    async def write(self, data: bytes) -> None:
        """Write all of ``data``, waiting for the socket."""
        async with self.write_lock:
            if self.dropped:
                raise _PeerLeftError
            self.at_frame_boundary = False
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise _PeerLeftError from exc
            self.at_frame_boundary = True

    async def next_event(self) -> Event:
        """The next event from the peer, reading the stream as needed.

        Raises :class:`ProtocolViolation` for a frame no client may send.
        """
        reader = self.reader
        while (event := reader.next_event()) is None:
            if self.dropped:  # the descriptor may belong to another connection by now
                raise _PeerLeftError
            raw_read = self._raw_read
            data = await raw_read() if raw_read is not None else await _receive(self.stream)
            reader.receive_data(data)
        if type(event) is Close:
            self.close_received = True
        return event

    async def send_close(self, code: int | None, reason: str = "") -> None:
        """Send the close frame, once per connection (RFC 6455 §5.5.1)."""
        if self.close_sent or not self.at_frame_boundary:
            return
        self.close_sent = True
        await self.write(close_frame(code, reason))

    async def close(self, code: int, reason: str) -> None:
        """Close from our side: send our close frame, wait a little for the peer's, drop TCP.

        After a frame no client may send, the rest of the stream cannot be read as frames:
        the node then half-closes and discards what still comes until the peer closes, so
        that its close frame, arriving late, does not make the drop a reset that destroys
        ours (RFC 6455 §7.1.7 fails the connection; the TCP close stays orderly).
        """
        with trio.move_on_after(CLOSE_TIMEOUT):
            try:
                await self.send_close(code, reason)
                # RFC 6455 §7.1.1: the server closes TCP once the closing handshake is done.
                while self.close_sent and not self.close_received:
                    await self.next_event()
            except _PeerLeftError:
                pass
            except ProtocolViolation:
                await self._discard_until_peer_closes()
        await self.drop()

    async def _discard_until_peer_closes(self) -> None:
        if not isinstance(self.stream, trio.SocketStream):
            return  # TLS has no half-close: just drop
        try:
            await self.stream.send_eof()
            while True:
                await _receive(self.stream)
        except (_PeerLeftError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def answer_close(self, peer_close: Close) -> None:
        """Answer the peer's close with its code (unless ours went first), then drop TCP."""
        with trio.move_on_after(CLOSE_TIMEOUT), contextlib.suppress(_PeerLeftError):
            await self.send_close(peer_close.code)
        await self.drop()

    async def drop(self) -> None:
        """Close the TCP (or TLS) stream without further ado."""
        self.dropped = True
        await trio.aclose_forcefully(self.stream)


class WebSocketEndpoints:
    """Accepts handshakes for the two endpoints and runs the reader and pump per connection."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        max_connections: int | None = None,
        on_federation: Callable[[_FederationChannel], Awaitable[None]] | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self._on_federation = on_federation
        """Serves a link another node opened (``node.federation``); None: no federation."""
        self._connection_ids = itertools.count(1)
        self._max_connections = max_connections
        self.open_connections = 0
        """Accepted connections being served now (the count ``max_connections`` limits)."""

    async def handle_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one TCP (or TLS) connection from its handshake to its end."""
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                accepted = await self._handshake(stream)
        except (trio.TooSlowError, _PeerLeftError, trio.BrokenResourceError):
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
            if peer.endpoint is Endpoint.FEDERATION and self._on_federation is not None:
                await self._serve_federation(connection, peer)
            else:
                await self.serve_connection(connection, peer)
        finally:
            self.open_connections -= 1

    async def _serve_federation(self, connection: _Connection, peer: Peer) -> None:
        """Hand a link to federation, which speaks both ways on it (spec/federation.md §2)."""
        assert self._on_federation is not None
        log.debug("link_accepted", conn=peer.connection_id, remote=peer.remote)
        channel = _FederationChannel(connection, peer.remote)
        try:
            await self._on_federation(channel)
        except Exception:
            log.exception("link_failed", conn=peer.connection_id)
            await channel.close(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            with trio.CancelScope(shield=True):
                await channel.close(CloseCode.GOING_AWAY, "link closed")

    async def _handshake(self, stream: trio.abc.Stream) -> tuple[_Connection, Peer] | None:
        """Read the opening request and answer it; the connection if it was accepted."""
        handshake = ServerHandshake()
        remote = _describe(stream)
        try:
            while (request := handshake.next_request()) is None:
                handshake.receive_data(await _receive(stream))
        except HandshakeError as refused:
            log.debug("handshake_rejected", status=refused.status, why=refused.message)
            body = refused.message.encode()
            await self._refuse(stream, handshake.reject(refused.status, body, refused.headers))
            return None
        endpoint = ENDPOINT_PATHS.get(request.path)
        if endpoint is None:
            log.debug("handshake_rejected", status=404, path=request.path[:200], remote=remote)
            await self._refuse(stream, handshake.reject(404, _NOT_FOUND))
            return None
        offered = request.subprotocols
        if offered and SUBPROTOCOL not in offered:
            log.debug("handshake_rejected", status=400, subprotocols=",".join(offered)[:200])
            body = f"subprotocol {SUBPROTOCOL} required".encode()
            await self._refuse(stream, handshake.reject(400, body))
            return None
        connection = _Connection(stream, FrameReader(MAX_MESSAGE_BYTES))
        await connection.write(handshake.accept(SUBPROTOCOL if offered else None))
        # Frames the client sent without waiting for our answer are its first frames.
        connection.reader.receive_data(handshake.trailing_data)
        return connection, Peer(next(self._connection_ids), endpoint, _ROLES[endpoint], remote)

    @staticmethod
    async def _refuse(stream: trio.abc.Stream, response: bytes) -> None:
        """Write the refusal, then read until the client closes (within the handshake's time).

        Closing with unread bytes in the socket would send a reset, which can destroy the
        response before the client reads it (RFC 9112 §9.6: a server closes gradually).
        """
        try:
            await stream.send_all(response)
            if isinstance(stream, trio.SocketStream):
                await stream.send_eof()
            while await stream.receive_some(_RECEIVE_BYTES):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

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
        outbox = Outbox(connection.write, connection.write_now())
        session.attach(outbox)
        connection.outbox = outbox
        closing: tuple[int, str] | None = None
        peer_close: Close | None = None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, outbox, nursery.cancel_scope)
                ending = await self._read_loop(connection, session)
                if ending is None:  # the peer left: nobody reads what is queued
                    nursery.cancel_scope.cancel()
                else:
                    if isinstance(ending, Close):
                        peer_close = ending
                    else:
                        closing = ending
                    # The pump writes what is queued, then stops; a peer that does not read
                    # it gets CLOSE_TIMEOUT, as for its close frame.
                    outbox.finish()
                    nursery.cancel_scope.deadline = trio.current_time() + CLOSE_TIMEOUT
            if outbox.overflowed:
                log.info("connection_too_slow", conn=peer.connection_id)
                closing = (CloseCode.POLICY_VIOLATION, "too slow: resume from your cursor")
        except Exception:
            log.exception("connection_failed", conn=peer.connection_id, endpoint=peer.endpoint)
            closing = (CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            connection.outbox_done = True
            session.end()
            with trio.CancelScope(shield=True):
                if closing is not None:
                    await connection.close(*closing)
                elif peer_close is not None:
                    await connection.answer_close(peer_close)
                else:
                    await connection.drop()
            log.debug(
                "connection_closed",
                conn=peer.connection_id,
                by="node" if closing is not None else "peer",
                code=closing[0] if closing is not None else None,
            )

    async def _read_loop(
        self, connection: _Connection, session: Session
    ) -> tuple[int, str] | Close | None:
        """Answer messages until one asks the node to close (code and reason), the peer
        closes (its close frame) or leaves (None)."""
        outbox = connection.outbox
        assert outbox is not None
        try:
            while True:
                event = await connection.next_event()
                if isinstance(event, TextMessage):
                    closing = await self._receive_text(session, event.data)
                    if closing is not None:
                        return closing
                elif isinstance(event, Ping):
                    # Through the outbox, so the pong never cuts into a frame being written.
                    outbox.put_nowait(pong_frame(event.payload))
                elif isinstance(event, BinaryMessage):
                    return await self._refuse_binary(session)
                elif isinstance(event, Close):
                    return event
                # A pong needs nothing: the node sends no pings, so it is unsolicited (§5.5.3).
        except ProtocolViolation as violation:
            log.debug(
                "frame_violation",
                conn=session.peer.connection_id,
                code=violation.close_code,
                why=violation.reason,
            )
            return violation.close_code, violation.reason
        except _PeerLeftError:
            return None

    @staticmethod
    async def _pump(outbox: Outbox, reader_scope: trio.CancelScope) -> None:
        """Write what the outbox's flush could not; stop the reader of a connection that
        fell behind (its outbox overflowed) or broke."""
        with contextlib.suppress(_PeerLeftError):  # the reader sees it too and ends
            await outbox.pump()
        if outbox.overflowed:
            reader_scope.cancel()

    async def _receive_text(self, session: Session, data: bytes) -> tuple[int, str] | None:
        """Answer one text message; the close code and reason if the connection must close."""
        peer = session.peer
        try:
            frame = decode_frame(data, endpoint=peer.endpoint, sender=peer.role)
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


class _FederationChannel:
    """An accepted ``/federation`` connection as a ``node.federation.channel.Channel``.

    One task reads (the link's reader); any task may send or close. Closing while the
    reader waits sends our close frame and gives the reader ``CLOSE_TIMEOUT`` to see the
    peer's, so the socket is only ever read by the reader.
    """

    def __init__(self, connection: _Connection, remote: str) -> None:
        self._connection = connection
        self.remote = remote
        self._read_scope: trio.CancelScope | None = None
        self._done = False

    async def receive(self) -> bytes | str | None:
        connection = self._connection
        self._read_scope = scope = trio.CancelScope()
        with scope:
            try:
                while not self._done:
                    event = await connection.next_event()
                    if isinstance(event, TextMessage):
                        return event.data
                    if isinstance(event, Ping):
                        await connection.write(pong_frame(event.payload))
                    elif isinstance(event, BinaryMessage):
                        await connection.send_close(CloseCode.UNSUPPORTED_DATA, _BINARY_REFUSED)
                    elif isinstance(event, Close):
                        await connection.answer_close(event)
                        break
            except ProtocolViolation as violation:
                await connection.send_close(violation.close_code, violation.reason)
            except _PeerLeftError:
                pass
        self._read_scope = None
        self._done = True
        await connection.drop()
        return None

    async def send(self, frame: bytes) -> None:
        try:
            await self._connection.write(text_frame(frame))
        except _PeerLeftError as exc:
            raise trio.BrokenResourceError("the link is gone") from exc

    async def close(self, code: int, reason: str) -> None:
        if self._done:
            return
        with trio.CancelScope(shield=True):
            if self._read_scope is not None:
                with contextlib.suppress(_PeerLeftError):
                    await self._connection.send_close(code, reason)
                self._read_scope.deadline = min(
                    self._read_scope.deadline, trio.current_time() + CLOSE_TIMEOUT
                )
            else:
                self._done = True
                await self._connection.close(code, reason)


async def serve_websocket_endpoints(
    dispatcher: Dispatcher,
    listeners: list[trio.SocketListener],
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_connections: int | None = None,
    on_federation: Callable[[Any], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[BoundAddress] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve both endpoints on ``listeners`` (from :func:`open_listeners`) until cancelled.

    Started with ``await nursery.start(...)``, it returns the bound address of the first
    listener once connections are accepted. It owns the listeners and closes them on exit.
    With ``ssl_context`` every connection starts with a TLS handshake (``wss://``); the
    WebSocket handshake timeout covers it.
    """
    endpoints = WebSocketEndpoints(
        dispatcher, max_connections=max_connections, on_federation=on_federation
    )
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
