"""Our frames are the frames wsproto would send: text for every payload length class, and
the close and pong frames of the server."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Pong, Request, TextMessage

from node.transport.frames import close_frame, pong_frame, text_frame


def _accepted_server() -> WSConnection:
    client = WSConnection(ConnectionType.CLIENT)
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="localhost", target="/client")))
    next(server.events())
    client.receive_data(server.send(AcceptConnection()))
    return server


@given(st.sampled_from([0, 1, 125, 126, 127, 65535, 65536, 70000]) | st.integers(0, 300))
def test_text_frames_match_wsproto(length: int) -> None:
    text = "é" * (length // 2) + "x" * (length % 2)
    expected = _accepted_server().send(TextMessage(data=text))
    assert text_frame(text.encode()) == expected


def test_a_client_decodes_our_frames() -> None:
    client = WSConnection(ConnectionType.CLIENT)
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="localhost", target="/client")))
    next(server.events())
    client.receive_data(server.send(AcceptConnection()))
    list(client.events())
    client.receive_data(text_frame(b'{"op":"x"}') + text_frame(b"y" * 70000))
    messages = [e.data for e in client.events() if isinstance(e, TextMessage)]
    assert "".join(messages) == '{"op":"x"}' + "y" * 70000


@pytest.mark.parametrize(
    ("code", "reason"), [(1000, ""), (1002, "reserved bits set"), (1009, "message too big")]
)
def test_close_frames_match_wsproto(code: int, reason: str) -> None:
    expected = _accepted_server().send(CloseConnection(code=code, reason=reason))
    assert close_frame(code, reason) == expected


def test_a_close_without_a_code_has_an_empty_payload() -> None:
    # RFC 6455 §7.4.1: 1005 says "no code" in reports and is never sent.
    assert close_frame(None) == b"\x88\x00"


def test_a_long_close_reason_is_cut_to_fit_never_mid_character() -> None:
    frame = close_frame(1011, "€" * 100)
    assert len(frame) - 2 <= 125
    assert frame[4:].decode() == "€" * 41  # 123 bytes of room: 41 characters of 3 bytes


@given(st.binary(max_size=125))
def test_pongs_match_wsproto(payload: bytes) -> None:
    assert pong_frame(payload) == _accepted_server().send(Pong(payload=payload))


def test_a_pong_carries_at_most_125_bytes() -> None:
    with pytest.raises(ValueError, match="125"):
        pong_frame(b"x" * 126)
