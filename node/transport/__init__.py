"""Sockets: the WebSocket server both endpoints share (``websocket``), its opening handshake
on h11 (``handshake``), the reader of the peer's frames (``frame_reader``), frames built once
and shared by every recipient (``frames``), each connection's ordered write buffer
(``outbox``), and TLS (``tls``)."""
