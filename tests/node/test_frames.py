"""Our text frames are the frames wsproto would send, for every payload length class."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from node.transport.frames import text_frame


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
