"""A node's fixed loopback address for ``kith demo``: a TCP relay to wherever it listens.

The demo's nodes listen on port 0, so nobody knows a node's port before it starts, and a
restarted node gets a new one. Yet each node's ``[peers]`` table must name the others'
addresses when it starts, and a device keeps its node's URL across a restart. A relay per
node settles both, as a DNS name does for a real node: it listens on its own port from the
start and forwards every connection, byte for byte, to the node's current port. While the
node is down it refuses connections, and when the node stops it drops the connections it
carried, as the node's process ending would.
"""

from __future__ import annotations

import trio

__all__ = ["Relay"]

_CHUNK_BYTES = 65536


class Relay:
    """Forward TCP from a loopback port of its own to the node's port (0: the node is down)."""

    def __init__(self) -> None:
        self.port = 0
        """The relay's own port, once :meth:`serve` has started."""
        self.target_port = 0
        self._carried: set[trio.CancelScope] = set()

    @property
    def url(self) -> str:
        """The node's address for devices and peers alike."""
        return f"ws://127.0.0.1:{self.port}"

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on 127.0.0.1 port 0 and relay every connection; reports the bound port."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = int(listeners[0].socket.getsockname()[1])
        task_status.started(self.port)
        await trio.serve_listeners(self._relay, listeners)

    def drop_all(self) -> None:
        """Close every relayed connection (the node behind them has stopped)."""
        for scope in list(self._carried):
            scope.cancel()

    async def _relay(self, client: trio.SocketStream) -> None:
        async with client:
            if self.target_port == 0:
                return  # the node is down: the connection is refused by closing it
            try:
                upstream = await trio.open_tcp_stream("127.0.0.1", self.target_port)
            except OSError:
                return
            scope = trio.CancelScope()
            self._carried.add(scope)
            try:
                async with upstream:
                    with scope:
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(_pump, client, upstream, scope)
                            nursery.start_soon(_pump, upstream, client, scope)
            finally:
                self._carried.discard(scope)


async def _pump(src: trio.SocketStream, dst: trio.SocketStream, both: trio.CancelScope) -> None:
    """Copy ``src`` to ``dst``; pass an end on as an end, a broken side as both broken."""
    try:
        while data := await src.receive_some(_CHUNK_BYTES):
            await dst.send_all(data)
        await dst.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        both.cancel()
