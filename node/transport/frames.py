"""WebSocket framing of what the node sends (RFC 6455 §5.2), done once per message.

A server's frames are not masked, so the bytes of a text frame depend on its payload alone:
a stream item published to twenty devices is framed once and the same bytes are written to
twenty sockets. Only final, unfragmented text frames are built here; control frames (pong,
close) come from wsproto, which tracks the closing handshake.
"""

from __future__ import annotations

import struct

__all__ = ["text_frame"]

_FIN_TEXT = 0x81  # FIN bit + opcode 1 (text)


def text_frame(payload: bytes) -> bytes:
    """The complete unmasked text frame carrying ``payload`` (UTF-8)."""
    length = len(payload)
    if length < 126:
        return bytes((_FIN_TEXT, length)) + payload
    if length < 1 << 16:
        return struct.pack("!BBH", _FIN_TEXT, 126, length) + payload
    return struct.pack("!BBQ", _FIN_TEXT, 127, length) + payload
