"""WebSocket framing of what the node sends (RFC 6455 §5.2), done once per message.

A server's frames are not masked, so the bytes of a text frame depend on its payload alone:
a stream item published to twenty devices is framed once and the same bytes are written to
twenty sockets. Data goes out as final, unfragmented text frames; the only control frames
the server sends are the pong that answers a ping and the close of the closing handshake.
(Reading the client's frames is ``node.transport.frame_reader``.)
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["MAX_CLOSE_REASON_BYTES", "close_frame", "pong_frame", "text_frame"]

_FIN_TEXT: Final = 0x81  # FIN bit + opcode 1 (text)
_FIN_CLOSE: Final = 0x88  # FIN bit + opcode 8 (close)
_FIN_PONG: Final = 0x8A  # FIN bit + opcode 0xA (pong)
_MAX_CONTROL_PAYLOAD: Final = 125  # RFC 6455 §5.5
MAX_CLOSE_REASON_BYTES: Final = _MAX_CONTROL_PAYLOAD - 2
"""Room for a close reason: a control frame's payload, less the 2-byte code (§5.5.1)."""


def text_frame(payload: bytes) -> bytes:
    """The complete unmasked text frame carrying ``payload`` (UTF-8)."""
    length = len(payload)
    if length < 126:
        return bytes((_FIN_TEXT, length)) + payload
    if length < 1 << 16:
        return struct.pack("!BBH", _FIN_TEXT, 126, length) + payload
    return struct.pack("!BBQ", _FIN_TEXT, 127, length) + payload


def close_frame(code: int | None, reason: str = "") -> bytes:
    """The unmasked close frame with ``code`` and ``reason`` (RFC 6455 §5.5.1).

    ``None`` sends an empty payload (the answer to a close that carried no code: 1005 is
    never sent, §7.4.1). The reason is cut to fit the frame, never mid-character.
    """
    if code is None:
        return bytes((_FIN_CLOSE, 0))
    text = reason.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore").encode()
    payload = code.to_bytes(2, "big") + text
    return bytes((_FIN_CLOSE, len(payload))) + payload


def pong_frame(payload: bytes) -> bytes:
    """The unmasked pong answering a ping with ``payload`` (RFC 6455 §5.5.3: same data)."""
    if len(payload) > _MAX_CONTROL_PAYLOAD:
        raise ValueError("a control frame carries at most 125 bytes")
    return bytes((_FIN_PONG, len(payload))) + payload
