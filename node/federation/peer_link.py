"""One link to another node: its handshake, and requests and answers in both directions
(spec/federation.md §2, spec/wire.md §2-§4).

Both ends of a link may send requests at any time, so a link multiplexes: a reader task
decodes every frame; an answer wakes the request waiting for it; a request is handed to the
node's handler. Transactions are handled one at a time, in order (§3.2), by one task; every
other request (fetches, invites, pings) runs in a task of its own, so a transaction whose
handling fetches missing events from the same peer never waits for itself.

Before the handshake completes (§2.2), a responder answers only ``ping``, ``link_hello``
and ``link_prove``. The handshake itself is :meth:`PeerLink.initiate` for the node that
dialed and the two ``link_*`` requests for the one that accepted.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import trio

from node.federation.channel import Channel
from node.log import get_log
from protocol import (
    Endpoint,
    ErrorCode,
    ErrorResponse,
    FrameError,
    JsonObject,
    Notice,
    RemoteProtocolError,
    Request,
    Response,
    Role,
    decode_frame,
    encode_frame,
    error_response,
)
from protocol.federation.keys import ServerKeys
from protocol.federation.link import (
    NONCE_BYTES,
    LinkRoles,
    check_nonce,
    check_proof,
    encode_nonce,
    make_proof,
)
from protocol.wire import CloseCode

__all__ = ["LinkClosedError", "LinkIdentity", "PeerLink", "RequestHandler"]

log = get_log(__name__)

HANDSHAKE_TIMEOUT: Final = 10.0
"""§2.2: a link not authenticated by then is closed."""
_HANDSHAKE_OPS: Final = frozenset({"ping", "link_hello", "link_prove"})
_MAX_CONCURRENT_REQUESTS: Final = 16


class LinkClosedError(Exception):
    """The link closed before the request was answered."""


class RequestHandler(Protocol):
    """The node's answers to a peer's requests once the link is authenticated."""

    async def __call__(self, link: PeerLink, op: str, params: JsonObject) -> JsonObject: ...


@dataclass(frozen=True, slots=True)
class LinkIdentity:
    """What a link needs of its node: its name, keys, clock and peers' pinned keys."""

    server_name: str
    key_object: Callable[[], JsonObject]
    """This node's key object (§1.1), fresh for each handshake."""
    signing_key: Callable[[], Any]
    """The current ``nacl.signing.SigningKey``."""
    learn_keys: Callable[[object], Awaitable[ServerKeys]]
    """Check and pin a peer's key object (§1.2); raises ``RemoteProtocolError``."""
    clock_ms: Callable[[], int]


class PeerLink:
    """One WebSocket to a peer node; see the module docstring."""

    _ids = itertools.count(1)

    def __init__(
        self, channel: Channel, identity: LinkIdentity, handler: RequestHandler, *, initiator: bool
    ) -> None:
        self.channel = channel
        self._identity = identity
        self._handler = handler
        self.initiator = initiator
        self.link_id = next(self._ids)
        self.peer: str | None = None
        """The peer's server name, once it proved it."""
        self.authenticated = trio.Event()
        self.closed = trio.Event()
        self.opened_at = trio.current_time()
        self._request_ids = itertools.count(1)
        self._waiting: dict[int, tuple[trio.Event, list[Response | ErrorResponse]]] = {}
        self._send_lock = trio.Lock()
        self._roles: LinkRoles | None = None
        self._initiator_keys: ServerKeys | None = None
        """The initiator's pinned keys, between ``link_hello`` and ``link_prove``."""
        self._close_after_answer: tuple[int, str] | None = None
        self._own_nonce = encode_nonce(os.urandom(NONCE_BYTES))
        self._txns_in, self._txns_out = trio.open_memory_channel[Request](64)
        self._concurrent = trio.CapacityLimiter(_MAX_CONCURRENT_REQUESTS)
        self.last_received = trio.current_time()

    def __repr__(self) -> str:
        side = "to" if self.initiator else "from"
        return f"<link {self.link_id} {side} {self.peer or self.channel.remote}>"

    # --- running --------------------------------------------------------------------------

    async def run(self) -> None:
        """Read frames until the link closes; then fail every waiting request."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._handle_txns)
                nursery.start_soon(self._expire_handshake)
                await self._read(nursery)
                nursery.cancel_scope.cancel()
        finally:
            self.closed.set()
            for event, _answer in self._waiting.values():
                event.set()
            with trio.CancelScope(shield=True):
                await self.channel.close(CloseCode.GOING_AWAY, "link closed")

    async def close(self, code: int, reason: str) -> None:
        """Close the link (the reader then ends :meth:`run`)."""
        log.info("link_closing", link=self.link_id, peer=self.peer, code=code, why=reason)
        await self.channel.close(code, reason)

    async def _expire_handshake(self) -> None:
        with trio.move_on_after(HANDSHAKE_TIMEOUT):
            await self.authenticated.wait()
            return
        await self.close(CloseCode.POLICY_VIOLATION, "not authenticated in time")

    async def _read(self, nursery: trio.Nursery) -> None:
        while (message := await self.channel.receive()) is not None:
            self.last_received = trio.current_time()
            try:
                frame = decode_frame(message, endpoint=Endpoint.FEDERATION, sender=Role.NODE)
            except FrameError as exc:
                log.info("link_frame_refused", link=self.link_id, code=exc.code, fatal=exc.fatal)
                await self._send_quietly(encode_frame(exc.to_response()))
                if exc.close_code is not None:
                    await self.close(exc.close_code, exc.message)
                    return
                continue
            if isinstance(frame, Request):
                await self._route_request(frame, nursery)
            elif isinstance(frame, (Response, ErrorResponse)):
                await self._route_answer(frame)
            elif isinstance(frame, Notice):  # pragma: no cover - no federation notices exist
                log.debug("notice_ignored", link=self.link_id, op=frame.op)

    async def _route_request(self, request: Request, nursery: trio.Nursery) -> None:
        if not self.authenticated.is_set() and request.op not in _HANDSHAKE_OPS:
            refusal = RemoteProtocolError(ErrorCode.NOT_AUTHENTICATED, "prove your name first")
            await self._send_quietly(encode_frame(error_response(request.id, refusal)))
        elif request.op == "txn":
            await self._txns_in.send(request)  # §3.2: one at a time, in order
        else:
            nursery.start_soon(self._answer_concurrently, request)

    async def _route_answer(self, answer: Response | ErrorResponse) -> None:
        waiting = self._waiting.pop(answer.id, None) if type(answer.id) is int else None
        if waiting is None:
            log.debug("answer_unsolicited", link=self.link_id, id=answer.id)
            if isinstance(answer, Response):  # wire.md §4 rule 4; an error is never answered
                refusal = ErrorResponse(
                    answer.id,
                    ErrorCode.BAD_FRAME.value,
                    "unsolicited result: no request has this id",
                )
                await self._send_quietly(encode_frame(refusal))
            return
        event, slot = waiting
        slot.append(answer)
        event.set()

    async def _handle_txns(self) -> None:
        async for request in self._txns_out:
            await self._answer(request)

    async def _answer_concurrently(self, request: Request) -> None:
        async with self._concurrent:
            await self._answer(request)

    async def _answer(self, request: Request) -> None:
        try:
            result = await self._dispatch(request)
            frame = encode_frame(Response(request.id, result))
        except RemoteProtocolError as exc:
            frame = encode_frame(error_response(request.id, exc))
        except Exception:
            log.exception("federation_request_failed", op=request.op, peer=self.peer)
            failure = RemoteProtocolError(ErrorCode.INTERNAL_ERROR, "the node failed to answer")
            frame = encode_frame(error_response(request.id, failure))
        await self._send_quietly(frame)
        if self._close_after_answer is not None:
            await self.close(*self._close_after_answer)

    async def _dispatch(self, request: Request) -> JsonObject:
        if request.op == "ping":
            return {}
        if request.op == "link_hello":
            return await self._answer_hello(request.params)
        if request.op == "link_prove":
            return await self._answer_prove(request.params)
        return await self._handler(self, request.op, request.params)

    # --- sending --------------------------------------------------------------------------

    async def request(self, op: str, params: JsonObject, *, timeout: float = 60.0) -> JsonObject:
        """Send a request and wait for its answer.

        Raises the answer's error as ``RemoteProtocolError`` (its code as sent, or
        ``internal_error`` for a code this node does not know), :class:`LinkClosedError`
        if the link closes first, and ``trio.TooSlowError`` after ``timeout``.
        """
        request_id = next(self._request_ids)
        event = trio.Event()
        slot: list[Response | ErrorResponse] = []
        self._waiting[request_id] = (event, slot)
        try:
            with trio.fail_after(timeout):
                await self._send(encode_frame(Request(request_id, op, params)))
                await event.wait()
        finally:
            self._waiting.pop(request_id, None)
        if not slot:
            raise LinkClosedError(f"{self!r} closed before answering {op}")
        answer = slot[0]
        if isinstance(answer, ErrorResponse):
            try:
                code = ErrorCode(answer.code)
            except ValueError:
                code = ErrorCode.INTERNAL_ERROR
            raise RemoteProtocolError(code, f"{op}: {answer.message}")
        return answer.result

    async def _send(self, frame: bytes) -> None:
        if self.closed.is_set():
            raise LinkClosedError(f"{self!r} is closed")
        async with self._send_lock:
            try:
                await self.channel.send(frame)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise LinkClosedError(f"{self!r} is closed") from exc

    async def _send_quietly(self, frame: bytes) -> None:
        with contextlib.suppress(LinkClosedError):
            await self._send(frame)

    # --- the handshake (§2.2) ---------------------------------------------------------------

    async def initiate(self, responder: str) -> None:
        """Prove names both ways as the initiator; raises ``RemoteProtocolError`` (a check of
        §2.2 failed, either end), :class:`LinkClosedError` or ``trio.TooSlowError``."""
        identity = self._identity
        with trio.fail_after(HANDSHAKE_TIMEOUT):
            hello = await self.request(
                "link_hello",
                {
                    "server_name": identity.server_name,
                    "responder": responder,
                    "nonce": self._own_nonce,
                    "keys": identity.key_object(),
                },
            )
            if hello.get("server_name") != responder:
                raise RemoteProtocolError(
                    ErrorCode.FORBIDDEN, f"reached {str(hello.get('server_name'))[:80]!r}"
                )
            keys = await identity.learn_keys(hello.get("keys"))
            nonce = check_nonce(hello.get("nonce"))
            roles = LinkRoles(identity.server_name, responder, self._own_nonce, nonce)
            check_proof(hello.get("proof"), roles, responder, keys.link_key, identity.clock_ms())
            self._roles = roles
            proof = make_proof(
                roles, identity.server_name, identity.clock_ms(), identity.signing_key()
            )
            await self.request("link_prove", {"proof": proof})
        self.peer = responder
        self.authenticated.set()
        log.info("link_authenticated", link=self.link_id, peer=responder, initiator=True)

    async def _answer_hello(self, params: JsonObject) -> JsonObject:
        identity = self._identity
        if self.initiator or self._roles is not None:
            raise RemoteProtocolError(ErrorCode.FORBIDDEN, "link_hello is sent once, by the dialer")
        initiator = params["server_name"]
        if params["responder"] != identity.server_name:
            raise RemoteProtocolError(
                ErrorCode.NOT_FOUND, f"this node is {identity.server_name}, not the one asked for"
            )
        if initiator == identity.server_name:
            raise RemoteProtocolError(ErrorCode.FORBIDDEN, "a link from this node's own name")
        keys = await identity.learn_keys(params["keys"])
        if keys.server_name != initiator:
            raise RemoteProtocolError(ErrorCode.BAD_KEY, "the key object is of another server")
        roles = LinkRoles(
            initiator,
            identity.server_name,
            check_nonce(params["nonce"]),
            self._own_nonce,
        )
        self._roles = roles
        self._initiator_keys = keys
        now = identity.clock_ms()
        return {
            "server_name": identity.server_name,
            "nonce": self._own_nonce,
            "keys": identity.key_object(),
            "proof": make_proof(roles, identity.server_name, now, identity.signing_key()),
        }

    async def _answer_prove(self, params: JsonObject) -> JsonObject:
        roles, keys = self._roles, self._initiator_keys
        if self.initiator or roles is None or keys is None or self.authenticated.is_set():
            raise RemoteProtocolError(ErrorCode.FORBIDDEN, "link_prove follows link_hello, once")
        try:
            check_proof(
                params["proof"], roles, roles.initiator, keys.link_key, self._identity.clock_ms()
            )
        except RemoteProtocolError:
            # §2.2: answer the error, then close — once the answer is out (see _answer).
            self._close_after_answer = (CloseCode.POLICY_VIOLATION, "link proof refused")
            raise
        self.peer = roles.initiator
        self.authenticated.set()
        log.info("link_authenticated", link=self.link_id, peer=self.peer, initiator=False)
        return {}
