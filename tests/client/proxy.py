"""A TCP relay between a client and a node, which a test can cut, stall or close.

The client connects to the proxy's port; every connection is relayed to the node byte for
byte. The test then breaks the network in exactly the way it needs:

* :meth:`Proxy.drop_next_answer` — the next bytes the node sends are thrown away and the
  connection is cut: the node has done what was asked, the client never hears the answer;
* :meth:`Proxy.drop_answers_with` — the same, every time the node sends a given marker;
* :meth:`Proxy.cut_all` — every connection is cut now;
* :attr:`Proxy.refusing` — new connections are closed at once (the node looks down);
* :meth:`Proxy.stall` / :meth:`Proxy.resume` — nothing is forwarded, nothing is closed
  (a dead network path: only a timeout can tell).
"""

from __future__ import annotations

import trio

__all__ = ["Proxy"]


class _Relay:
    """One relayed connection: the client's stream and the node's."""

    def __init__(self, client_side: trio.SocketStream, node_side: trio.SocketStream) -> None:
        self.client_side = client_side
        self.node_side = node_side
        self.cut = trio.Event()

    async def close(self) -> None:
        self.cut.set()
        await trio.aclose_forcefully(self.client_side)
        await trio.aclose_forcefully(self.node_side)


class Proxy:
    """See the module docstring. Start it with ``await nursery.start(proxy.serve)``."""

    def __init__(self, node_port: int) -> None:
        self.node_port = node_port
        self.port = 0
        self.refusing = False
        self.connections = 0
        """How many connections were relayed so far."""
        self.dropped = 0
        """How many times bytes from the node were thrown away (and the connection cut)."""
        self._relays: list[_Relay] = []
        self._drop_next_answer = False
        self._drop_marker: bytes | None = None
        self._dropped = trio.Event()
        self._flowing = trio.Event()
        self._flowing.set()

    @property
    def url(self) -> str:
        """The client URL to give the library instead of the node's."""
        return f"ws://127.0.0.1:{self.port}"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Relay connections until cancelled."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._relay, listeners)

    def drop_next_answer(self) -> trio.Event:
        """Arm the cut (see the module docstring); the returned event is set once it struck."""
        self._drop_next_answer = True
        self._dropped = trio.Event()
        return self._dropped

    def drop_answers_with(self, marker: bytes) -> None:
        """Cut every connection on which the node sends ``marker`` (before it arrives)."""
        self._drop_marker = marker

    def _drops(self, data: bytes) -> bool:
        if self._drop_next_answer:
            self._drop_next_answer = False
            self._dropped.set()
            return True
        return self._drop_marker is not None and self._drop_marker in data

    async def cut_all(self) -> None:
        """Cut every relayed connection now."""
        for relay in list(self._relays):
            await relay.close()

    def stall(self) -> None:
        """Stop forwarding anything, in both directions, without closing."""
        self._flowing = trio.Event()

    def resume(self) -> None:
        """Forward again what was held and what comes."""
        self._flowing.set()

    async def _relay(self, client_side: trio.SocketStream) -> None:
        if self.refusing:
            await trio.aclose_forcefully(client_side)
            return
        try:
            node_side = await trio.open_tcp_stream("127.0.0.1", self.node_port)
        except OSError:
            await trio.aclose_forcefully(client_side)
            return
        relay = _Relay(client_side, node_side)
        self.connections += 1
        self._relays.append(relay)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, relay, client_side, node_side, False)
                nursery.start_soon(self._pump, relay, node_side, client_side, True)
        finally:
            self._relays.remove(relay)
            await relay.close()

    async def _pump(
        self,
        relay: _Relay,
        source: trio.SocketStream,
        sink: trio.SocketStream,
        from_node: bool,
    ) -> None:
        try:
            while True:
                data = await source.receive_some()
                if not data:
                    break
                if from_node and self._drops(data):
                    self.dropped += 1
                    break
                await self._flowing.wait()
                if relay.cut.is_set():
                    break
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        await relay.close()
