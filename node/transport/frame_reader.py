"""Reading a client's WebSocket frames (RFC 6455 §5), sans-IO: bytes in, messages out.

The server's reader loop feeds what the socket gave to :meth:`FrameReader.receive_data`
and takes events from :meth:`FrameReader.next_event` until it returns None (more bytes
needed). Events are complete messages — fragments are joined here — and control frames:

* :class:`TextMessage`, :class:`BinaryMessage`: a whole message's payload, unmasked. Text
  stays bytes: the frame decoder reads UTF-8 bytes itself (spec/wire.md §3 step 1), so
  invalid UTF-8 is its ``bad_json`` and one decode is spent per message, not two;
* :class:`Ping`, :class:`Pong`, :class:`Close` (code and reason already checked).

Whatever the bytes, the reader returns events or raises :class:`ProtocolViolation`, which
carries the close code to fail the connection with (RFC 6455 §7.1.7): 1002 for a frame no
client may send, 1007 for a close reason that is not UTF-8, 1009 for a message larger than
the reader's limit — decided from the frame header, before any of its payload is buffered.

It is written for the node's common case, a small masked frame arriving whole in one read:
one header parse, one XOR over the payload, one event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "BinaryMessage",
    "Close",
    "Event",
    "FrameReader",
    "Ping",
    "Pong",
    "ProtocolViolation",
    "TextMessage",
    "unmask",
]

# RFC 6455 §5.2: the first two bytes of a frame.
_FIN: Final = 0x80
_RSV: Final = 0x70
_OPCODE: Final = 0x0F
_MASKED: Final = 0x80
_LENGTH: Final = 0x7F
# RFC 6455 §11.8: the opcodes; 0x3-0x7 and 0xB-0xF are reserved.
_CONTINUATION: Final = 0x0
_TEXT: Final = 0x1
_BINARY: Final = 0x2
_CLOSE: Final = 0x8
_PING: Final = 0x9
_PONG: Final = 0xA
_MAX_CONTROL_PAYLOAD: Final = 125  # RFC 6455 §5.5

# RFC 6455 §7.4.1 and §7.4.2 with the IANA registry: the codes a peer may send in a close
# frame. 1004 is reserved, 1005, 1006 and 1015 are for reports only and never sent, other
# codes below 3000 are kept for the protocol, 3000-4999 are for libraries and applications.
_SENDABLE_CLOSE_CODES: Final = frozenset(
    [*range(1000, 1004), *range(1007, 1015), *range(3000, 5000)]
)

PROTOCOL_ERROR: Final = 1002
INVALID_PAYLOAD: Final = 1007
MESSAGE_TOO_BIG: Final = 1009

# Unmasking: XOR as one big integer is quickest for small payloads (the usual request),
# four ``bytes.translate`` over strided slices for large ones (measured crossover ~1 KB).
_TRANSLATE_FROM: Final = 1024
_XOR_TABLES: Final = tuple(bytes(value ^ key for value in range(256)) for key in range(256))


class ProtocolViolation(Exception):  # noqa: N818 - named for what the peer did
    """The peer sent bytes no client may send; fail the connection with ``close_code``."""

    def __init__(self, close_code: int, reason: str) -> None:
        super().__init__(reason)
        self.close_code = close_code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TextMessage:
    """A complete text message; its payload as received (UTF-8 unchecked)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class BinaryMessage:
    """A complete binary message."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Ping:
    """A ping; RFC 6455 §5.5.2 asks for a pong with the same payload."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    """A pong (answered or unsolicited, RFC 6455 §5.5.3): nothing to do."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """The peer's close frame: its code (None when the frame had no payload) and reason."""

    code: int | None
    reason: str = ""


Event = TextMessage | BinaryMessage | Ping | Pong | Close


def unmask(data: bytes, mask: bytes) -> bytes:
    """``data`` XOR the repeated 4-byte ``mask`` (RFC 6455 §5.3), starting at mask byte 0."""
    length = len(data)
    if length < _TRANSLATE_FROM:
        key = (mask * ((length >> 2) + 1))[:length]
        return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(
            length, "little"
        )
    out = bytearray(data)
    for offset in range(4):
        out[offset::4] = out[offset::4].translate(_XOR_TABLES[mask[offset]])
    return bytes(out)


def _close_event(payload: bytes) -> Close:
    """Read a close frame's payload (RFC 6455 §5.5.1): a 2-byte code, then UTF-8 text."""
    if not payload:
        return Close(None)
    if len(payload) == 1:
        raise ProtocolViolation(PROTOCOL_ERROR, "close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if code not in _SENDABLE_CLOSE_CODES:
        raise ProtocolViolation(PROTOCOL_ERROR, f"close code {code} may not be sent")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        # RFC 6455 §5.5.1: the reason is UTF-8; §8.1: invalid UTF-8 fails with 1007.
        raise ProtocolViolation(INVALID_PAYLOAD, "close reason is not UTF-8") from None
    return Close(code, reason)


class FrameReader:
    """Turns the bytes a client sends into events; one per connection, server side.

    ``max_message_bytes`` bounds a message's payload, all its frames together.
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "_control",
        "_failed",
        "_fin",
        "_mask",
        "_max_message_bytes",
        "_message",
        "_message_binary",
        "_message_size",
        "_opcode",
        "_phase",
        "_pos",
        "_remaining",
    )

    def __init__(self, max_message_bytes: int) -> None:
        self._max_message_bytes = max_message_bytes
        # Received bytes are read from ``_pos`` on, so many small frames in one read cost
        # no copying; what is left between reads is at most a header or a control frame.
        self._buffer = b""
        self._pos = 0
        self._failed: ProtocolViolation | None = None
        self._closed = False
        # The frame whose payload is being read, or -1 when a header comes next.
        self._remaining = -1
        self._control = False
        self._opcode = 0
        self._fin = False
        self._mask = b""
        self._phase = 0
        """Where in the mask the next payload byte falls (payload read so far, mod 4)."""
        # The message being assembled from data frames, or None between messages.
        self._message: list[bytes] | None = None
        self._message_binary = False
        self._message_size = 0

    def receive_data(self, data: bytes) -> None:
        """Add bytes received from the socket."""
        if self._closed or self._failed is not None:
            return
        if self._pos >= len(self._buffer):
            self._buffer = bytes(data)
        else:
            self._buffer = self._buffer[self._pos :] + data
        self._pos = 0

    def next_event(self) -> Event | None:
        """The next event, or None until more bytes are received.

        After a :class:`Close` nothing more is read (RFC 6455 §5.5.1: a close frame is the
        peer's last); after a :class:`ProtocolViolation` the same violation is raised again.
        """
        if self._failed is not None:
            raise self._failed
        if self._closed:
            return None
        try:
            return self._next_event()
        except ProtocolViolation as violation:
            self._failed = violation
            self._buffer = b""
            self._pos = 0
            raise

    def _next_event(self) -> Event | None:
        while True:
            if self._remaining < 0 and not self._read_header():
                return None
            if self._control:
                return self._read_control()
            event = self._read_data_payload()
            if event is not None or self._remaining > 0:
                return event
            # A data frame ended without ending its message: read the next frame.

    def _read_header(self) -> bool:
        """Parse a frame header (RFC 6455 §5.2) if all of it has arrived; check it."""
        buffer, pos = self._buffer, self._pos
        available = len(buffer) - pos
        if available < 2:
            return False
        first, second = buffer[pos], buffer[pos + 1]
        # Checks that need only the first two bytes come first: a bad frame fails at once.
        if first & _RSV:
            # §5.2: RSV1-3 are 0 unless an extension says otherwise; none is negotiated.
            raise ProtocolViolation(PROTOCOL_ERROR, "reserved bits set")
        if not second & _MASKED:
            # §5.1: a server MUST close the connection on an unmasked client frame.
            raise ProtocolViolation(PROTOCOL_ERROR, "client frame not masked")
        opcode = first & _OPCODE
        fin = bool(first & _FIN)
        length = second & _LENGTH
        if opcode >= _CLOSE:
            if opcode > _PONG:
                raise ProtocolViolation(PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
            # §5.5: control frames are never fragmented and carry at most 125 bytes.
            if not fin:
                raise ProtocolViolation(PROTOCOL_ERROR, "fragmented control frame")
            if length > _MAX_CONTROL_PAYLOAD:
                raise ProtocolViolation(PROTOCOL_ERROR, "control frame payload over 125 bytes")
        elif opcode == _CONTINUATION:
            # §5.4: a continuation frame continues a message that was started.
            if self._message is None:
                raise ProtocolViolation(PROTOCOL_ERROR, "continuation frame outside a message")
        elif opcode <= _BINARY:
            # §5.4: a new message may not start before the last one ends.
            if self._message is not None:
                raise ProtocolViolation(PROTOCOL_ERROR, "new message inside a fragmented one")
        else:
            raise ProtocolViolation(PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
        if length < 126:
            header_size = 6
        elif length == 126:
            header_size = 8
            if available < header_size:
                return False
            length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
            if length < 126:  # §5.2: the minimal number of bytes MUST be used
                raise ProtocolViolation(PROTOCOL_ERROR, "payload length not minimally encoded")
        else:
            header_size = 14
            if available < header_size:
                return False
            length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
            if length >> 63:  # §5.2: the most significant bit MUST be 0
                raise ProtocolViolation(PROTOCOL_ERROR, "64-bit payload length with its MSB set")
            if length < 1 << 16:
                raise ProtocolViolation(PROTOCOL_ERROR, "payload length not minimally encoded")
        if available < header_size:
            return False
        if opcode < _CLOSE:
            # Decided before any payload is kept: a message over the limit is never buffered.
            if self._message_size + length > self._max_message_bytes:
                raise ProtocolViolation(MESSAGE_TOO_BIG, "message too big")
            if opcode != _CONTINUATION:
                self._message = []
                self._message_binary = opcode == _BINARY
            self._control = False
        else:
            self._control = True
        self._opcode = opcode
        self._fin = fin
        pos += header_size
        self._mask = buffer[pos - 4 : pos]
        self._pos = pos
        self._phase = 0
        self._remaining = length
        return True

    def _read_control(self) -> Event | None:
        """A control frame once its whole payload (≤ 125 bytes) has arrived."""
        buffer, pos, length = self._buffer, self._pos, self._remaining
        if len(buffer) - pos < length:
            return None
        payload = unmask(buffer[pos : pos + length], self._mask)
        self._pos = pos + length
        self._remaining = -1
        opcode = self._opcode
        if opcode == _PING:
            return Ping(payload)
        if opcode == _PONG:
            return Pong(payload)
        close = _close_event(payload)
        self._closed = True
        self._buffer = b""
        self._pos = 0
        return close

    def _read_data_payload(self) -> Event | None:
        """Take what has arrived of a data frame's payload; the message once complete."""
        message = self._message
        assert message is not None  # set by the header of every data frame
        remaining = self._remaining
        if remaining:
            buffer, pos = self._buffer, self._pos
            available = len(buffer) - pos
            if not available:
                return None
            taken = min(available, remaining)
            chunk = buffer if taken == len(buffer) else buffer[pos : pos + taken]
            self._pos = pos + taken
            mask = self._mask
            phase = self._phase
            if phase:
                mask = mask[phase:] + mask[:phase]
            message.append(unmask(chunk, mask))
            self._message_size += taken
            self._phase = (phase + taken) & 3
            remaining -= taken
            self._remaining = remaining
            if remaining:
                return None
        self._remaining = -1
        if not self._fin:
            return None
        data = message[0] if len(message) == 1 else b"".join(message)
        self._message = None
        self._message_size = 0
        return BinaryMessage(data) if self._message_binary else TextMessage(data)
