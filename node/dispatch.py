"""From a decoded request to the one frame that answers it (spec/wire.md §3, §6).

The transport decodes frames; the :class:`Dispatcher` looks a request's op up in a table of
handlers and turns whatever happens into exactly one answer with the request's ``id``:

* a handler's result dict → a result frame;
* a :class:`protocol.RemoteProtocolError` → an error frame with its stable code;
* anything else (a bug, a ``LocalProtocolError``, a result that is not canonical JSON) →
  ``internal_error``, logged with its traceback, and the connection carries on.

Handlers are thin (parse, call a service, encode — see ``node.api``) and get the
connection's :class:`~node.session.Session`: which socket the request came in on, who is at
the other end, and which device the connection is bound to. On ``/client`` only the ops of
``REQUESTS_BEFORE_AUTH`` are answered before the connection is bound (spec/client.md §1),
and with a :class:`~node.ratelimit.RateLimit` every ``/client`` request first takes a token
from its connection's bucket: an empty bucket answers ``rate_limited`` and runs nothing (§7).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType

from node.log import get_log
from node.ratelimit import RateLimit
from node.session import Session
from protocol import (
    OPS,
    Endpoint,
    ErrorCode,
    JsonObject,
    RemoteProtocolError,
    Request,
    Response,
    encode_frame,
    error_response,
)
from protocol.client_api import REQUESTS_BEFORE_AUTH
from protocol.wire import ErrorResponse, OpKind, RequestId

__all__ = ["Dispatcher", "Handler"]

log = get_log(__name__)


Handler = Callable[[Session, JsonObject], Awaitable[JsonObject]]
"""``await handler(session, params)`` → the result object; params are already validated."""


def _error(request_id: RequestId, code: ErrorCode, message: str) -> bytes:
    return encode_frame(ErrorResponse(request_id, code.value, message))


class Dispatcher:
    """Answers requests by op, from a fixed table of handlers."""

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        *,
        rate_limit: RateLimit | None = None,
        on_request: Callable[[Session], None] | None = None,
    ) -> None:
        for op in handlers:
            spec = OPS.get(op)
            if spec is None or spec.kind is not OpKind.REQUEST:
                # A handler the wire can never reach is a wiring mistake: fail at start-up.
                raise ValueError(f"{op!r} is not a request op of the protocol (protocol.OPS)")
        self._handlers = MappingProxyType(dict(handlers))
        self._rate_limit = rate_limit
        self._on_request = on_request
        """Told of every request of a bound session (presence's last activity)."""

    @property
    def ops(self) -> frozenset[str]:
        """The ops this node implements."""
        return frozenset(self._handlers)

    async def answer(self, session: Session, request: Request) -> bytes:
        """The encoded frame answering ``request``: a result or an error, never nothing.

        Cancellation propagates; every other failure of the handler becomes an error frame.
        """
        peer = session.peer
        if self._rate_limited(session):
            log.debug("rate_limited", op=request.op, conn=peer.connection_id)
            return _error(request.id, ErrorCode.RATE_LIMITED, "too many requests: slow down")
        if (
            peer.endpoint is Endpoint.CLIENT
            and not session.bound
            and request.op not in REQUESTS_BEFORE_AUTH
        ):
            return _error(request.id, ErrorCode.NOT_AUTHENTICATED, "log in or authenticate first")
        if session.bound and self._on_request is not None:
            self._on_request(session)
        handler = self._handlers.get(request.op)
        if handler is None:
            # decode_frame accepted the op, so the protocol defines it; this node doesn't.
            return _error(
                request.id,
                ErrorCode.UNKNOWN_OP,
                f"this node does not implement {request.op!r}",
            )
        try:
            result = await handler(session, request.params)
            return encode_frame(Response(request.id, result))
        except RemoteProtocolError as exc:
            return encode_frame(error_response(request.id, exc))
        except Exception:
            # A LocalProtocolError is our own misuse of the protocol (spec/wire.md §6): a
            # bug here, not the peer's fault, so it is reported like any other failure.
            log.exception(
                "handler_failed",
                op=request.op,
                id=request.id,
                conn=peer.connection_id,
                endpoint=peer.endpoint,
            )
            return _error(request.id, ErrorCode.INTERNAL_ERROR, "the node failed to answer")

    def _rate_limited(self, session: Session) -> bool:
        """Take a token for one request on ``/client``; True when there was none left."""
        if self._rate_limit is None or session.peer.endpoint is not Endpoint.CLIENT:
            return False
        bucket = session.rate_bucket
        if bucket is None:
            bucket = session.rate_bucket = self._rate_limit.bucket()
        return not bucket.take()
