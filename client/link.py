"""One WebSocket to the node: requests matched to their answers by id, pushes handed on.

A :class:`Link` is a single connection; the session (``client.session``) makes a new one
after each disconnect. It speaks spec/wire.md from the client's side:

* it opens ``ws://`` or ``wss://`` at the URL's path (``/client`` when the URL has none),
  offering the subprotocol ``kith.v1`` (§1.2);
* every frame it sends is encoded by ``protocol.encode_frame`` — UTF-8 without ``\\u``
  escapes, as spec/client.md §4 "Encoding" requires — through one send lock;
* one reader task decodes every message with ``decode_frame(endpoint=CLIENT, sender=NODE)``
  (§3) and dispatches it: a result or error resolves the waiting request with that id, a
  notice goes to the ``on_notice`` callback in arrival order, a ``ping`` from the node is
  answered, and anything that fails decoding is answered as §4 says (closing the socket
  when the failure is fatal);
* when the socket closes, every unanswered request fails with :class:`LinkLostError`.

The link owns its TCP stream and always closes it: trio-websocket leaves the socket open
when the server is the side that closes the WebSocket.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

from client.errors import ClientError, ConnectError
from protocol import (
    SUBPROTOCOL,
    Endpoint,
    ErrorResponse,
    FrameError,
    JsonObject,
    Notice,
    Request,
    Response,
    Role,
    decode_frame,
    encode_frame,
)
from protocol.wire import MAX_FRAME_BYTES, CloseCode, RequestId

__all__ = ["Link", "LinkLostError", "NodeAddress", "open_link"]

log = logging.getLogger(__name__)

CLIENT_PATH = "/client"
"""The node's endpoint for devices (spec/wire.md §1.1)."""
_MAX_MESSAGE_CHARS = MAX_FRAME_BYTES[Endpoint.CLIENT]
"""trio-websocket counts characters, the protocol UTF-8 bytes: a message of more characters
is certainly over the 1 MiB frame limit (§1.4); ``decode_frame`` checks the bytes."""


class LinkLostError(Exception):
    """The connection closed before the request was answered (internal to the library)."""


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """Where a node's client endpoint is, parsed from a ``ws://`` or ``wss://`` URL."""

    url: str
    host: str
    port: int
    path: str
    tls: bool

    @classmethod
    def parse(cls, url: str) -> NodeAddress:
        """Read ``ws[s]://host[:port][/path]``; raises ``ValueError`` for anything else."""
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"a node URL starts with ws:// or wss://, not {url!r}")
        if not parts.hostname:
            raise ValueError(f"no host in the node URL {url!r}")
        tls = parts.scheme == "wss"
        try:
            port = parts.port or (443 if tls else 80)
        except ValueError:
            raise ValueError(f"bad port in the node URL {url!r}") from None
        path = parts.path if parts.path not in ("", "/") else CLIENT_PATH
        return cls(url, parts.hostname, port, path, tls)

    @property
    def endpoint(self) -> tuple[bool, str, int, str]:
        """What identifies the endpoint: two URLs with the same one name the same node."""
        return (self.tls, self.host.lower(), self.port, self.path)

    @property
    def host_header(self) -> str:
        """The ``Host`` header: the host, and the port unless it is the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls else 80
        return host if self.port == default else f"{host}:{self.port}"


class _Waiter:
    """One unanswered request: set once, with a result, an error or the link's loss."""

    __slots__ = ("answer", "done")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.answer: Response | ErrorResponse | None = None


NoticeHandler = Callable[[Notice], Awaitable[None]]


class Link:
    """A connected WebSocket speaking Kith frames (see the module docstring)."""

    def __init__(
        self, ws: WebSocketConnection, stream: trio.abc.Stream, on_notice: NoticeHandler
    ) -> None:
        self._ws = ws
        self._stream = stream
        self._on_notice = on_notice
        self._ids = itertools.count(1)
        self._waiting: dict[RequestId, _Waiter] = {}
        self._send_lock = trio.Lock()
        self.closed = trio.Event()
        """Set once the socket is closed; every later request raises :class:`LinkLostError`."""

    async def request(self, op: str, params: JsonObject) -> JsonObject:
        """Send one request and wait for its answer (spec/wire.md §4 "Answering requests").

        Raises :class:`ClientError` for an error frame and :class:`LinkLostError` if the socket
        closes first. If the caller is cancelled, the answer is dropped when it comes.
        """
        if self.closed.is_set():
            raise LinkLostError(op)
        request_id = next(self._ids)
        frame = encode_frame(Request(request_id, op, params))
        # The waiter stays registered until the answer comes, even if this caller gives up:
        # a late answer then still matches a request, and is not taken for an unsolicited
        # result (which spec/wire.md §4 rule 4 would have us answer with bad_frame).
        waiter = self._waiting[request_id] = _Waiter()
        await self._send(frame)
        await waiter.done.wait()
        answer = waiter.answer
        if isinstance(answer, Response):
            return answer.result
        if isinstance(answer, ErrorResponse):
            raise ClientError(answer.code, answer.message, op=op)
        raise LinkLostError(op)

    async def _send(self, frame: bytes) -> None:
        async with self._send_lock:
            try:
                await self._ws.send_message(frame.decode())
            except ConnectionClosed:
                self._lost()
                raise LinkLostError("send") from None

    def _lost(self) -> None:
        """The socket is gone: wake every waiting request with no answer."""
        self.closed.set()
        waiting, self._waiting = self._waiting, {}
        for waiter in waiting.values():
            waiter.done.set()

    async def read_frames(self) -> None:
        """The link's reader task: dispatch every message until the socket closes."""
        try:
            while True:
                message = await self._ws.get_message()
                close_code = await self._dispatch(message)
                if close_code is not None:
                    await self._ws.aclose(close_code)
                    return
        except ConnectionClosed as closed:
            log.debug("connection closed: %s", closed.reason)
        finally:
            self._lost()

    async def _dispatch(self, message: str | bytes) -> int | None:
        """Handle one message; the close code when the socket must close (wire.md §4)."""
        if isinstance(message, bytes):
            await self._answer_error(ErrorResponse(None, "bad_frame", "binary frames are not used"))
            return CloseCode.UNSUPPORTED_DATA
        try:
            frame = decode_frame(message, endpoint=Endpoint.CLIENT, sender=Role.NODE)
        except FrameError as exc:
            log.warning("bad frame from the node: %s", exc)
            await self._answer_error(exc.to_response())
            return exc.close_code
        if isinstance(frame, Response | ErrorResponse):
            waiter = self._waiting.pop(frame.id, None) if frame.id is not None else None
            if waiter is not None:
                waiter.answer = frame
                waiter.done.set()
            elif isinstance(frame, Response):
                # §4 rule 4: an unsolicited result is answered bad_frame; errors never are.
                await self._answer_error(
                    ErrorResponse(frame.id, "bad_frame", "no request is waiting for this id")
                )
            else:
                log.info("error frame for no request: %s %s", frame.code, frame.message)
        elif isinstance(frame, Request):
            # The only request op a node may send on /client is ping (spec/wire.md §5.3).
            await self._send_quietly(encode_frame(Response(frame.id, {})))
        else:
            await self._on_notice(frame)
        return None

    async def _answer_error(self, error: ErrorResponse) -> None:
        await self._send_quietly(encode_frame(error))

    async def _send_quietly(self, frame: bytes) -> None:
        with contextlib.suppress(LinkLostError):
            await self._send(frame)

    async def aclose(self, timeout: float) -> None:
        """Close the WebSocket (close frame, then wait up to ``timeout`` for the node's)."""
        with trio.move_on_after(timeout):
            await self._ws.aclose()
        self._lost()

    async def abort(self) -> None:
        """Drop the connection at once, without a close handshake (the node is not answering).

        The reader then sees the socket closed and the link ends like any lost connection.
        """
        self._lost()
        await trio.aclose_forcefully(self._stream)


async def _open_stream(
    address: NodeAddress, ssl_context: ssl.SSLContext | None
) -> trio.SocketStream | trio.SSLStream[trio.SocketStream]:
    stream = await trio.open_tcp_stream(address.host, address.port)
    if not address.tls:
        return stream
    context = ssl_context if ssl_context is not None else ssl.create_default_context()
    tls = trio.SSLStream(stream, context, server_hostname=address.host, https_compatible=True)
    try:
        # Handshake here, where a bad certificate is a clear ConnectError, rather than
        # inside trio-websocket's reader task on its first write.
        await tls.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(tls)
        raise
    return tls


@asynccontextmanager
async def open_link(
    address: NodeAddress,
    on_notice: NoticeHandler,
    *,
    ssl_context: ssl.SSLContext | None = None,
    connect_timeout: float = 10.0,
    close_timeout: float = 2.0,
) -> AsyncIterator[Link]:
    """Connect to the node and run the link's reader while the block runs.

    Raises :class:`ConnectError` when the TCP connection, the TLS handshake or the
    WebSocket handshake fails or takes longer than ``connect_timeout``. On the way out the
    WebSocket is closed (waiting at most ``close_timeout``) and the TCP stream with it.
    """
    try:
        with trio.fail_after(connect_timeout):
            stream = await _open_stream(address, ssl_context)
    except (OSError, trio.BrokenResourceError, trio.TooSlowError) as exc:
        raise ConnectError(f"cannot reach {address.url}: {_why(exc)}") from exc
    try:
        async with trio.open_nursery() as nursery:
            link = await _handshake(nursery, stream, address, on_notice, connect_timeout)
            nursery.start_soon(link.read_frames)
            try:
                yield link
            finally:
                with trio.CancelScope(shield=True):
                    await link.aclose(close_timeout)
                    # Closing the stream ends trio-websocket's reader, and ours, by itself.
                    # Cancelling them instead could interrupt the reader between reading the
                    # node's close frame and marking the close handshake done, and leave a
                    # concurrent aclose() waiting for its whole timeout.
                    await trio.aclose_forcefully(stream)
                nursery.cancel_scope.deadline = trio.current_time() + close_timeout
    except BaseExceptionGroup as group:
        # trio-websocket raises a refused handshake (HTTP 400, 404, …) in its reader task.
        failed, other = group.split((ConnectError, HandshakeError))
        if failed is None or other is not None:
            raise
        refused = [e for e in failed.exceptions if isinstance(e, HandshakeError)]
        if refused:  # the node's answer says more than the closed connection that followed
            raise ConnectError(f"{address.url} refused the WebSocket handshake") from refused[0]
        raise failed.exceptions[0] from None
    finally:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)


class _WatchedStream(trio.abc.Stream):
    """A stream that tells when the other end has closed it (``ended``).

    trio-websocket's client waits for the handshake's answer and nothing else: if the
    server closes the connection instead of answering (a node shutting down, a proxy with
    no backend), it would wait for the whole connect timeout. Watching the stream lets the
    handshake fail as soon as the connection is gone.
    """

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self.ended = trio.Event()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            data = await self._stream.receive_some(max_bytes)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.ended.set()
            raise
        if not data:
            self.ended.set()
        return data

    async def aclose(self) -> None:
        self.ended.set()
        await self._stream.aclose()


async def _handshake(
    nursery: trio.Nursery,
    stream: trio.abc.Stream,
    address: NodeAddress,
    on_notice: NoticeHandler,
    timeout: float,
) -> Link:
    watched = _WatchedStream(stream)
    opened: list[WebSocketConnection] = []

    async def open_websocket(race: trio.CancelScope) -> None:
        opened.append(
            await wrap_client_stream(
                nursery,
                # Any trio stream works; the annotation names only the usual two.
                cast(trio.SocketStream, watched),
                address.host_header,
                address.path,
                subprotocols=[SUBPROTOCOL],
                max_message_size=_MAX_MESSAGE_CHARS,
            )
        )
        race.cancel()

    async def watch(race: trio.CancelScope) -> None:
        await watched.ended.wait()
        race.cancel()

    with trio.move_on_after(timeout):
        async with trio.open_nursery() as race:
            race.start_soon(open_websocket, race.cancel_scope)
            race.start_soon(watch, race.cancel_scope)
    if not opened:
        why = "closed the connection" if watched.ended.is_set() else "did not answer"
        raise ConnectError(f"{address.url} {why} during the WebSocket handshake")
    ws = opened[0]
    if ws.subprotocol not in (SUBPROTOCOL, None):
        raise ConnectError(f"{address.url} speaks {ws.subprotocol!r}, not {SUBPROTOCOL}")
    return Link(ws, stream, on_notice)


def _why(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return "timed out"
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, trio.BrokenResourceError) and cause is not None:
        return str(cause) or type(cause).__name__
    return str(exc) or type(exc).__name__
