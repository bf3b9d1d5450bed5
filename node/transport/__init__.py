"""Sockets: the WebSocket server both endpoints share, and (later) the fan-out writer."""

from node.transport.websocket import (
    BoundAddress,
    ListenError,
    WebSocketEndpoints,
    open_listeners,
    serve_websocket_endpoints,
)

__all__ = [
    "BoundAddress",
    "ListenError",
    "WebSocketEndpoints",
    "open_listeners",
    "serve_websocket_endpoints",
]
