"""The server's side of the WebSocket opening handshake (RFC 6455 §4.2), sans-IO, on h11.

h11 parses the HTTP/1.1 request and writes the response; this module checks that the
request is a WebSocket upgrade (§4.2.1) and builds the ``101 Switching Protocols`` answer
(§4.2.2). The caller owns the socket and the policy — which paths and subprotocols it
serves — and calls :meth:`ServerHandshake.accept` or :meth:`ServerHandshake.reject`.

Bytes the client sent after its request (its first frames, when it did not wait for the
101) are kept by h11 and handed over as :attr:`ServerHandshake.trailing_data`: they are
the start of the WebSocket stream, not to be dropped.

A request that is not a valid upgrade raises :class:`HandshakeError` with the HTTP status
to refuse it with (400; 426 for a WebSocket version other than 13; 431 when the request
outgrows ``max_request_bytes``) — never another exception, whatever the bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

import h11

__all__ = [
    "MAX_REQUEST_BYTES",
    "HandshakeError",
    "ServerHandshake",
    "UpgradeRequest",
    "accept_token",
]

MAX_REQUEST_BYTES: Final = 16 * 1024
"""Largest opening request (request line and headers) the server reads: h11 refuses with
431 once this much is buffered without a complete request."""

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
_VERSION: Final = b"13"  # RFC 6455 §4.2.1 item 6
_KEY_BYTES: Final = 16  # RFC 6455 §4.1 item 7: the key is 16 random bytes, base64-encoded
_KEY_LENGTH: Final = 24  # len(base64 of 16 bytes)

Headers = Sequence[tuple[bytes, bytes]]


class HandshakeError(Exception):
    """The client's request is not a WebSocket upgrade the server can accept.

    ``status`` is the HTTP status to answer with, ``headers`` any header that answer needs
    (426 names the version the server speaks, RFC 6455 §4.4).
    """

    def __init__(self, status: int, message: str, headers: Headers = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = tuple(headers)


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    """A valid opening handshake: what the server's policy decides on."""

    target: str
    """The request-target as sent, query string included."""
    path: str
    """The target without its query string."""
    host: str
    subprotocols: tuple[str, ...]
    """Every subprotocol offered in ``Sec-WebSocket-Protocol``, in order (RFC 6455 §4.1)."""
    key: bytes
    """``Sec-WebSocket-Key``, as sent (base64 of 16 bytes)."""


def accept_token(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for ``key``: base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + _GUID, usedforsecurity=False).digest())


def _tokens(values: list[bytes]) -> list[bytes]:
    """The comma-separated elements of a header's lines (RFC 9110 §5.6.1), blanks dropped."""
    return [item.strip() for value in values for item in value.split(b",") if item.strip()]


def _http_version_at_least_1_1(version: bytes) -> bool:
    major, _, minor = version.partition(b".")
    return major.isdigit() and minor.isdigit() and (int(major), int(minor)) >= (1, 1)


def _upgrade_request(request: h11.Request) -> UpgradeRequest:
    """Check ``request`` against RFC 6455 §4.2.1; the upgrade it asks for, or why not."""
    if request.method != b"GET":
        raise HandshakeError(400, "a WebSocket handshake is a GET request")
    if not _http_version_at_least_1_1(request.http_version):
        raise HandshakeError(400, "a WebSocket handshake needs HTTP/1.1")
    fields: dict[bytes, list[bytes]] = {}
    for name, value in request.headers:  # h11 gives names in lower case
        fields.setdefault(name, []).append(value)
    hosts = fields.get(b"host", [])
    if len(hosts) != 1:
        raise HandshakeError(400, "a WebSocket handshake needs one Host header")
    # Item 3: Upgrade holds "websocket"; item 4: Connection holds "Upgrade"; both are
    # compared case-insensitively.
    if b"websocket" not in (token.lower() for token in _tokens(fields.get(b"upgrade", []))):
        raise HandshakeError(400, "not a WebSocket handshake: no 'Upgrade: websocket'")
    if b"upgrade" not in (token.lower() for token in _tokens(fields.get(b"connection", []))):
        raise HandshakeError(400, "not a WebSocket handshake: no 'Connection: Upgrade'")
    # Item 6 and §4.4: another version is refused with 426 and the version we speak.
    versions = fields.get(b"sec-websocket-version", [])
    if versions != [_VERSION]:
        status = 426 if versions else 400
        raise HandshakeError(
            status, "WebSocket version 13 required", [(b"Sec-WebSocket-Version", _VERSION)]
        )
    # Item 5: the key is base64 of 16 bytes.
    keys = fields.get(b"sec-websocket-key", [])
    if len(keys) != 1 or len(keys[0]) != _KEY_LENGTH:
        raise HandshakeError(400, "Sec-WebSocket-Key must be base64 of 16 bytes")
    try:
        decoded = base64.b64decode(keys[0], validate=True)
    except binascii.Error:
        decoded = b""
    if len(decoded) != _KEY_BYTES:
        raise HandshakeError(400, "Sec-WebSocket-Key must be base64 of 16 bytes")
    # A body would arrive where the WebSocket stream starts.
    if b"transfer-encoding" in fields or fields.get(b"content-length", [b"0"]) != [b"0"]:
        raise HandshakeError(400, "a WebSocket handshake has no body")
    target = request.target.decode("ascii", errors="replace")
    return UpgradeRequest(
        target=target,
        path=target.partition("?")[0],
        host=hosts[0].decode("latin-1"),
        subprotocols=tuple(
            token.decode("latin-1") for token in _tokens(fields.get(b"sec-websocket-protocol", []))
        ),
        key=keys[0],
    )


def _reason_phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class ServerHandshake:
    """One connection's opening handshake, from the first byte to the 101 or the refusal."""

    def __init__(self, *, max_request_bytes: int = MAX_REQUEST_BYTES) -> None:
        self._http = h11.Connection(h11.SERVER, max_incomplete_event_size=max_request_bytes)
        self._max_request_bytes = max_request_bytes
        self._received = 0
        self._checked: UpgradeRequest | None = None
        self.request: UpgradeRequest | None = None
        """The complete, valid request once :meth:`next_request` has returned it."""
        self.trailing_data = b""
        """After :meth:`accept`: what the client sent after its request (WebSocket bytes)."""

    def receive_data(self, data: bytes) -> None:
        """Add bytes received from the socket (the end of the stream is the caller's to
        handle: nothing is left to answer)."""
        if data:
            self._received += len(data)
            self._http.receive_data(data)

    def next_request(self) -> UpgradeRequest | None:
        """The upgrade request once all of it has arrived, else None (read more).

        Raises :class:`HandshakeError` as soon as the bytes so far cannot be a valid
        upgrade; answer it with :meth:`reject`.
        """
        while self.request is None:
            try:
                event = self._http.next_event()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                message = "request too large" if status == 431 else "malformed HTTP request"
                raise HandshakeError(status, message) from None
            if event is h11.NEED_DATA:
                return None
            if isinstance(event, h11.Request):
                # h11 bounds a request still incomplete; one that arrived whole in a large
                # read is measured here: what was received, less what follows it.
                size = self._received - len(self._http.trailing_data[0])
                if size > self._max_request_bytes:
                    raise HandshakeError(431, "request too large")
                self._checked = _upgrade_request(event)
            elif isinstance(event, h11.EndOfMessage) and self._checked is not None:
                self.request = self._checked
            else:  # cannot happen: a checked request has no body and the peer is not done
                raise HandshakeError(400, "unexpected HTTP message")
        return self.request

    def accept(self, subprotocol: str | None) -> bytes:
        """The ``101 Switching Protocols`` response selecting ``subprotocol`` (§4.2.2).

        Afterwards :attr:`trailing_data` holds the bytes that followed the request.
        """
        request = self.request
        if request is None:
            raise RuntimeError("accept() before a complete request")
        headers = [
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Accept", accept_token(request.key)),
        ]
        if subprotocol is not None:
            if subprotocol not in request.subprotocols:
                raise ValueError(f"subprotocol {subprotocol!r} was not offered")
            headers.append((b"Sec-WebSocket-Protocol", subprotocol.encode("latin-1")))
        response = h11.InformationalResponse(
            status_code=101, headers=headers, reason=b"Switching Protocols"
        )
        data = self._http.send(response)
        self.trailing_data = self._http.trailing_data[0]
        return data

    def reject(self, status: int, body: bytes, headers: Headers = ()) -> bytes:
        """A complete HTTP response refusing the handshake; the caller then closes TCP.

        Works at any point before :meth:`accept`, even after h11 failed to parse the
        request (it leaves our side of the connection able to answer).
        """
        response = h11.Response(
            status_code=status,
            headers=[
                (b"Content-Type", b"text/plain; charset=utf-8"),
                (b"Content-Length", str(len(body)).encode()),
                (b"Connection", b"close"),
                *headers,
            ],
            reason=_reason_phrase(status),
        )
        return (
            self._http.send(response)
            + self._http.send(h11.Data(data=body))
            + self._http.send(h11.EndOfMessage())
        )
