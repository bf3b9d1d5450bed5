"""A fault-injecting TCP proxy for loopback federation tests.

Node A is told that node B lives at the proxy's port; the test then cuts, stalls, delays and
kills the traffic between them and heals it again, to check that the nodes converge. Every
task lives under ``serve``, all waiting is on trio primitives and the clock is
``trio.current_time()``, so the proxy works with ``autojump_clock`` and cancelling the
nursery that runs ``serve`` stops everything.

Each accepted connection is a *link*: a connection to the target and, per direction, a
reader that timestamps chunks into a bounded queue and a writer that delivers them when
their time has come and the proxy is not stalled. A fault that breaks a link resets both
of its sockets (``SO_LINGER`` 0), the way a crashed peer or a dropped route looks to TCP.
"""

from __future__ import annotations

import contextlib
import enum
import math
import random
import socket
import struct
from collections.abc import Callable
from typing import NoReturn

import trio

CHUNK_BYTES = 65536
# Chunks a direction may hold before its reader stops reading: a stalled proxy pushes back
# on the sender like a full TCP window instead of buffering without bound.
QUEUE_CHUNKS = 256

# A chunk of bytes and when the proxy read it; ``None`` as the chunk stands for EOF.
_Chunk = tuple[float, bytes | None]


class Direction(enum.Enum):
    """Which way bytes flow: from the connecting client to the target, or back."""

    UP = "client->target"
    DOWN = "target->client"


def _reset(stream: trio.SocketStream | None) -> None:
    """Close ``stream``'s socket now, with a RST rather than a FIN (idempotent)."""
    if stream is None or stream.socket.fileno() == -1:
        return
    # If the socket is already dead on the wire, a plain close is all that is left to do.
    with contextlib.suppress(OSError):
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


class _Link:
    """One proxied connection: the accepted client stream and the stream to the target."""

    def __init__(self, client: trio.SocketStream) -> None:
        self.client = client
        self.upstream: trio.SocketStream | None = None
        self.scope = trio.CancelScope()
        self.killed = False

    @property
    def is_open(self) -> bool:
        """Connected to the target and not killed (its tasks may still be winding down)."""
        return self.upstream is not None and not self.killed

    def kill(self) -> None:
        """Reset both sockets and stop the link's tasks; held bytes are dropped."""
        self.killed = True
        _reset(self.client)
        _reset(self.upstream)
        self.scope.cancel()


class FaultProxy:
    """Forward TCP from an OS-chosen loopback port to ``target_host:target_port``.

    The controls are synchronous, may be called at any time, and apply at once to the
    open connections and to the ones that follow. The counters are plain attributes;
    ``wait_until`` waits for a condition on them without polling.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port: int | None = None
        """The port the proxy listens on, once ``serve`` has started."""
        self.connections_accepted = 0
        """Connections forwarded to the target (a link to the target was made)."""
        self.connections_refused = 0
        """Connections closed at once: the proxy was cut or the target could not be reached."""
        self.connections_killed = 0
        """Forwarded connections reset by ``cut`` or ``kill_one``."""
        self.bytes_read = dict.fromkeys(Direction, 0)
        """Bytes taken from the sending side, per direction (held ones included)."""
        self.bytes_forwarded = dict.fromkeys(Direction, 0)
        """Bytes delivered to the receiving side, per direction; counted when the send
        returns, so the receiver may hold them a moment before the count shows them."""
        self._links: dict[int, _Link] = {}  # by accept order, so picks are reproducible
        self._next_link = 0
        self._cut = False
        self._stalled = False
        self._delay = 0.0
        self._controls_changed = trio.Event()  # pulsed when cut/stall/delay change
        self._state_changed = trio.Event()  # pulsed when a counter or a link changes

    # -- controls ----------------------------------------------------------------------

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until ``heal``."""
        self._cut = True
        for link in list(self._links.values()):
            self._kill(link)
        self._pulse_controls()

    def heal(self) -> None:
        """Clear every fault: accept again, deliver stalled bytes, drop the delay."""
        self._cut = False
        self._stalled = False
        self._delay = 0.0
        self._pulse_controls()

    def stall(self) -> None:
        """Keep connections up but hold every byte until ``heal`` (a silent partition).

        Held bytes are delivered in order on ``heal``, or dropped with the connection by
        ``cut`` or ``kill_one``; the TCP streams stay coherent either way.
        """
        self._stalled = True
        self._pulse_controls()

    def set_delay(self, seconds: float) -> None:
        """Deliver each chunk ``seconds`` after it was read, keeping order per direction.

        The delay applies to bytes already held too: lowering it releases them sooner.
        """
        if not seconds >= 0:
            raise ValueError(f"delay must be a non-negative number of seconds, not {seconds}")
        self._delay = seconds
        self._pulse_controls()

    def kill_one(self, rng: random.Random | None = None) -> bool:
        """Reset one open connection: a random one drawn with ``rng``, else the oldest.

        Returns whether there was one to kill.
        """
        links = [link for link in self._links.values() if link.is_open]
        if not links:
            return False
        self._kill(rng.choice(links) if rng is not None else links[0])
        return True

    # -- observation -------------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        """Connections currently forwarded to the target."""
        return sum(link.is_open for link in self._links.values())

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds; it is checked after every change of state."""
        while not condition():
            await self._state_changed.wait()

    # -- serving -----------------------------------------------------------------------

    async def serve(
        self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Listen on 127.0.0.1 port 0 and proxy every connection; reports the bound port."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = int(listeners[0].socket.getsockname()[1])
        task_status.started(self.port)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        """Forward one accepted connection until both sides are done or a fault kills it."""
        if self._cut:
            self._refuse(client)
            return
        link = _Link(client)
        key = self._next_link
        self._next_link += 1
        self._links[key] = link  # registered before connecting, so ``cut`` reaches it
        graceful = False
        try:
            with link.scope:
                try:
                    link.upstream = await trio.open_tcp_stream(self.target_host, self.target_port)
                except OSError:
                    self._refuse(client)
                    return
                if link.killed:
                    return  # cut while connecting: the connect won the race, the cut stands
                self.connections_accepted += 1
                self._pulse_state()
                async with trio.open_nursery() as nursery:
                    for direction, src, dst in (
                        (Direction.UP, client, link.upstream),
                        (Direction.DOWN, link.upstream, client),
                    ):
                        send, receive = trio.open_memory_channel[_Chunk](QUEUE_CHUNKS)
                        nursery.start_soon(self._read, link, direction, src, send)
                        nursery.start_soon(self._write, link, direction, receive, dst)
                graceful = not link.scope.cancel_called
        finally:
            del self._links[key]
            if graceful:
                # Both sides sent EOF and it was passed on: an ordinary close.
                link.client.socket.close()
                if link.upstream is not None:
                    link.upstream.socket.close()
            else:
                _reset(link.client)
                _reset(link.upstream)
            self._pulse_state()

    async def _read(
        self,
        link: _Link,
        direction: Direction,
        src: trio.SocketStream,
        queue: trio.MemorySendChannel[_Chunk],
    ) -> None:
        """Take chunks from ``src`` into the direction's queue, stamped with their arrival."""
        async with queue:
            try:
                while data := await src.receive_some(CHUNK_BYTES):
                    self.bytes_read[direction] += len(data)
                    self._pulse_state()
                    await queue.send((trio.current_time(), data))
                await queue.send((trio.current_time(), None))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                # The peer reset, we closed the socket, or the writer gave up: the link goes.
                link.kill()

    async def _write(
        self,
        link: _Link,
        direction: Direction,
        queue: trio.MemoryReceiveChannel[_Chunk],
        dst: trio.SocketStream,
    ) -> None:
        """Deliver queued chunks to ``dst`` in order, each once it is due and not stalled."""
        async with queue:
            async for arrived, data in queue:
                await self._wait_due(arrived)
                try:
                    if data is None:
                        await dst.send_eof()
                        return
                    await dst.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    link.kill()
                    return
                self.bytes_forwarded[direction] += len(data)
                self._pulse_state()

    async def _wait_due(self, arrived: float) -> None:
        """Wait until a chunk read at ``arrived`` may go, re-checking on every control change."""
        while True:
            due = math.inf if self._stalled else arrived + self._delay
            if trio.current_time() >= due:
                return
            with trio.move_on_at(due):
                await self._controls_changed.wait()

    # -- helpers -----------------------------------------------------------------------

    def _kill(self, link: _Link) -> None:
        if link.is_open:
            self.connections_killed += 1
        link.kill()
        self._pulse_state()

    def _refuse(self, client: trio.SocketStream) -> None:
        _reset(client)
        self.connections_refused += 1
        self._pulse_state()

    def _pulse_controls(self) -> None:
        self._controls_changed.set()
        self._controls_changed = trio.Event()

    def _pulse_state(self) -> None:
        self._state_changed.set()
        self._state_changed = trio.Event()
