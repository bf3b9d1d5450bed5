"""Wire frames: the one JSON envelope both sockets speak (spec/wire.md).

Every WebSocket text message is one frame, a JSON object of one of four shapes:

* request  ``{"id": ID, "op": OP, "params": {...}}`` — answered by exactly one response;
* notice   ``{"op": OP, "params": {...}}`` — no ``id``, never answered (server pushes);
* result   ``{"id": ID, "result": {...}}``;
* error    ``{"id": ID | null, "error": {"code": CODE, "message": TEXT}}``.

:func:`decode_frame` turns a message into one of these or raises :class:`FrameError`,
which says which error frame to answer with and whether the connection must close.
Nothing else escapes it, whatever the input (a property test holds it to that).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from protocol.canonical_json import (
    MAX_SAFE_INTEGER,
    JsonObject,
    decode_json,
    encode_canonical_json,
    encode_trusted_json,
)
from protocol.client_api import CLIENT_OPS
from protocol.errors import ErrorCode, ProtocolError, RemoteProtocolError
from protocol.federation.ops import FEDERATION_OPS
from protocol.ops import (
    ENDPOINT_PATHS,
    SYSTEM_OPS,
    Endpoint,
    OpKind,
    OpSpec,
    Role,
    registry,
)

__all__ = [
    "ENDPOINT_PATHS",
    "MAX_ERROR_MESSAGE_LENGTH",
    "MAX_FRAME_BYTES",
    "MAX_REQUEST_ID_LENGTH",
    "OPS",
    "SUBPROTOCOL",
    "CloseCode",
    "Endpoint",
    "ErrorResponse",
    "Frame",
    "FrameError",
    "Notice",
    "OpKind",
    "OpSpec",
    "Request",
    "RequestId",
    "Response",
    "Role",
    "decode_frame",
    "encode_frame",
    "error_response",
]

SUBPROTOCOL = "kith.v1"
"""The WebSocket subprotocol naming this version of the protocol (spec/wire.md §1)."""


class CloseCode:
    """WebSocket close codes a node uses (RFC 6455 §7.4.1; spec/wire.md §4)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011


# spec/wire.md §1 — limits
MAX_FRAME_BYTES: Mapping[Endpoint, int] = {
    Endpoint.CLIENT: 1024 * 1024,
    Endpoint.FEDERATION: 4 * 1024 * 1024,
}
MAX_REQUEST_ID_LENGTH = 64
MAX_ERROR_CODE_LENGTH = 64
MAX_ERROR_MESSAGE_LENGTH = 1024

RequestId = str | int


# spec/wire.md §5 — the op registry: every area of the protocol declares its ops.
OPS: Mapping[str, OpSpec] = registry(SYSTEM_OPS, CLIENT_OPS, FEDERATION_OPS)


@dataclass(frozen=True, slots=True)
class Request:
    """A frame that asks for exactly one response with the same ``id``."""

    id: RequestId
    op: str
    params: JsonObject


@dataclass(frozen=True, slots=True)
class Notice:
    """A frame that is not answered (pushed updates, one-way signals)."""

    op: str
    params: JsonObject


@dataclass(frozen=True, slots=True)
class Response:
    """The successful answer to the request with the same ``id``."""

    id: RequestId
    result: JsonObject


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """The failed answer to a request; ``id`` is ``None`` when it could not be read."""

    id: RequestId | None
    code: str
    message: str


Frame = Request | Notice | Response | ErrorResponse


class FrameError(RemoteProtocolError):
    """A received message is not an acceptable frame.

    ``request_id`` is the id to answer (``None`` if unknown) and ``fatal`` says the
    message could not be parsed at all, so the connection must close (spec/wire.md §4)
    with ``close_code`` after the error frame.
    """

    def __init__(
        self,
        code: StrEnum,
        message: str,
        *,
        request_id: RequestId | None = None,
        close_code: int | None = None,
    ) -> None:
        super().__init__(code, message)
        self.request_id = request_id
        self.close_code = close_code

    @property
    def fatal(self) -> bool:
        """True when the connection must be closed after answering."""
        return self.close_code is not None

    def to_response(self) -> ErrorResponse:
        """The error frame that answers the offending message."""
        return ErrorResponse(self.request_id, self.code.value, self.message)


def _valid_id(value: Any) -> bool:
    kind = type(value)
    if kind is str:
        return 0 < len(value) <= MAX_REQUEST_ID_LENGTH
    return kind is int and 0 <= value <= MAX_SAFE_INTEGER


def _envelope(frame: JsonObject, allowed: frozenset[str], request_id: RequestId | None) -> None:
    extra = frame.keys() - allowed
    if extra:
        raise FrameError(
            ErrorCode.BAD_FRAME,
            f"unexpected key {sorted(extra)[0][:64]!r} in the frame",
            request_id=request_id,
        )


_REQUEST_KEYS = frozenset({"id", "op", "params"})
_NOTICE_KEYS = frozenset({"op", "params"})
_RESULT_KEYS = frozenset({"id", "result"})
_ERROR_KEYS = frozenset({"id", "error"})
_ERROR_BODY_KEYS = frozenset({"code", "message"})


def decode_frame(data: str | bytes, *, endpoint: Endpoint, sender: Role) -> Frame:
    """Parse one text message received on ``endpoint`` from a ``sender`` (spec/wire.md §3).

    Raises :class:`FrameError` — and only that — when the message is not a frame the
    receiver may accept; the error carries the request id to answer when one was readable.
    """
    limit = MAX_FRAME_BYTES[endpoint]
    try:
        frame = decode_json(data, max_bytes=limit)
    except ProtocolError as exc:
        close = (
            CloseCode.MESSAGE_TOO_BIG
            if exc.code is ErrorCode.TOO_LARGE
            else CloseCode.INVALID_PAYLOAD
        )
        raise FrameError(exc.code, exc.message, close_code=close) from exc
    if type(frame) is not dict:
        raise FrameError(ErrorCode.BAD_FRAME, "a frame is a JSON object")
    has_id = "id" in frame
    request_id = frame.get("id")
    if has_id and not _valid_id(request_id) and not (request_id is None and "error" in frame):
        raise FrameError(
            ErrorCode.BAD_FRAME,
            f"'id' must be a string of 1-{MAX_REQUEST_ID_LENGTH} characters or an integer "
            "in 0..2**53-1",
        )
    if "op" in frame:
        return _decode_op_frame(frame, endpoint, sender, request_id if has_id else None, has_id)
    if "result" in frame:
        _envelope(frame, _RESULT_KEYS, request_id)
        if not has_id or request_id is None:
            raise FrameError(ErrorCode.BAD_FRAME, "a result frame needs the request's 'id'")
        if type(frame["result"]) is not dict:
            raise FrameError(
                ErrorCode.BAD_FRAME, "'result' must be an object", request_id=request_id
            )
        return Response(request_id, frame["result"])
    if "error" in frame:
        _envelope(frame, _ERROR_KEYS, request_id)
        if not has_id:
            raise FrameError(ErrorCode.BAD_FRAME, "an error frame needs 'id' (null if unknown)")
        return _decode_error(frame["error"], request_id)
    raise FrameError(
        ErrorCode.BAD_FRAME, "a frame has 'op', 'result' or 'error'", request_id=request_id
    )


def _decode_op_frame(
    frame: JsonObject, endpoint: Endpoint, sender: Role, request_id: Any, has_id: bool
) -> Request | Notice:
    _envelope(frame, _REQUEST_KEYS if has_id else _NOTICE_KEYS, request_id)
    op = frame["op"]
    if type(op) is not str:
        raise FrameError(ErrorCode.BAD_FRAME, "'op' must be a string", request_id=request_id)
    spec = OPS.get(op)
    if spec is None or endpoint not in spec.endpoints or sender not in spec.senders:
        raise FrameError(
            ErrorCode.UNKNOWN_OP,
            f"no op {op[:64]!r} for a {sender.value} on /{endpoint.value}",
            request_id=request_id,
        )
    if has_id != (spec.kind is OpKind.REQUEST):
        raise FrameError(
            ErrorCode.BAD_FRAME,
            f"{op!r} is a {spec.kind.value}: " + ("it needs an 'id'" if not has_id else "no 'id'"),
            request_id=request_id,
        )
    try:
        params = spec.params.validate(frame.get("params", {}))
    except RemoteProtocolError as exc:
        raise FrameError(exc.code, exc.message, request_id=request_id) from exc
    if has_id:
        return Request(request_id, op, params)
    return Notice(op, params)


def _decode_error(body: Any, request_id: RequestId | None) -> ErrorResponse:
    if type(body) is not dict or body.keys() != _ERROR_BODY_KEYS:
        raise FrameError(
            ErrorCode.BAD_FRAME,
            '\'error\' must be {"code": ..., "message": ...}',
            request_id=request_id,
        )
    code, message = body["code"], body["message"]
    if type(code) is not str or not 0 < len(code) <= MAX_ERROR_CODE_LENGTH:
        raise FrameError(
            ErrorCode.BAD_FRAME, "'error.code' must be a short string", request_id=request_id
        )
    if type(message) is not str or len(message) > MAX_ERROR_MESSAGE_LENGTH:
        raise FrameError(
            ErrorCode.BAD_FRAME, "'error.message' must be a string", request_id=request_id
        )
    return ErrorResponse(request_id, code, message)


def error_response(request_id: RequestId | None, error: ProtocolError) -> ErrorResponse:
    """The error frame answering ``request_id`` with ``error``'s code and message."""
    return ErrorResponse(request_id, error.code.value, error.message[:MAX_ERROR_MESSAGE_LENGTH])


def encode_frame(frame: Frame, *, check: bool = True) -> bytes:
    """Canonical JSON bytes of ``frame`` (UTF-8; send as a WebSocket *text* message).

    ``check=False`` skips the walk that refuses values outside the JSON data model, for
    frames built only from values already checked (decoded, or validated events): the
    bytes are the same, the cost is not.
    """
    value: JsonObject
    if isinstance(frame, Request):
        value = {"id": frame.id, "op": frame.op, "params": frame.params}
    elif isinstance(frame, Notice):
        value = {"op": frame.op, "params": frame.params}
    elif isinstance(frame, Response):
        value = {"id": frame.id, "result": frame.result}
    else:
        message = frame.message[:MAX_ERROR_MESSAGE_LENGTH]
        value = {"id": frame.id, "error": {"code": frame.code, "message": message}}
    return encode_canonical_json(value) if check else encode_trusted_json(value)
