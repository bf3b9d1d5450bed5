"""The Kith node: WebSocket endpoints for clients and peer nodes, storage, the ``kith`` CLI."""
