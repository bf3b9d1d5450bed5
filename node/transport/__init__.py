"""Sockets: the WebSocket server both endpoints share (``websocket``), frames built once
and shared by every recipient (``frames``), and TLS (``tls``)."""
