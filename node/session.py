"""One connection's session: who is at the other end, what it is bound to, how to push.

The transport creates a :class:`Session` per accepted WebSocket and hands it to every
handler. A client connection starts unbound; ``register``, ``login`` or ``authenticate``
bind it to a user's device (spec/client.md §1), and every later request acts as that
device.

Everything a connection sends goes through its **outbox** (``node.transport.outbox``), in
order: answers wait for room in it, pushes never wait. A device that does not read fast
enough to keep up with its pushes overflows the outbox and is disconnected (close 1008); it
loses nothing, it resumes from its cursor (client.md §5). A push to a connection that has
gone away is dropped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from node.ratelimit import TokenBucket
from node.transport.frames import text_frame
from node.transport.outbox import Outbox
from protocol import Endpoint, Role
from protocol.wire import CloseCode

__all__ = ["Peer", "Session"]

Sender = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Peer:
    """The other end of one connection, as handlers and logs see it."""

    connection_id: int
    endpoint: Endpoint
    role: Role
    remote: str
    """``host:port`` of the remote socket, for logs."""


async def _nowhere(text: str) -> None:
    """The sender of a session that is not attached to a socket (tests, scripts)."""


@dataclass(eq=False)
class Session:
    """The mutable state of one connection."""

    peer: Peer
    send: Sender = _nowhere
    user_id: str | None = None
    device_id: str | None = None
    close_code: int | None = None
    """Set by a handler that needs the connection closed after its answer is sent."""
    closed: trio.Event = field(default_factory=trio.Event)
    """Set by the transport when the connection is gone."""
    on_end: list[Callable[[Session], None]] = field(default_factory=list)
    """Called once, in order, when the connection is gone (services forget the session)."""
    rate_bucket: TokenBucket | None = None
    """This connection's allowance of requests, once the dispatcher gave it one."""
    _outbox: Outbox | None = None

    @property
    def bound(self) -> bool:
        """True once the connection acts as a device."""
        return self.user_id is not None

    def bind(self, user_id: str, device_id: str) -> None:
        """Act as ``device_id`` of ``user_id`` from now on."""
        self.user_id, self.device_id = user_id, device_id

    def unbind(self) -> None:
        """Back to the unbound state (after ``logout`` or a revoked device)."""
        self.user_id = self.device_id = None

    def close_after_answer(self, code: int = CloseCode.POLICY_VIOLATION) -> None:
        """Ask the transport to close the connection once the current answer is sent."""
        self.close_code = code

    def end(self) -> None:
        """The connection is gone: mark it, and tell whoever asked (transport only)."""
        if self.closed.is_set():
            return
        self.closed.set()
        callbacks, self.on_end = self.on_end, []
        for callback in callbacks:
            callback(self)

    def attach(self, outbox: Outbox) -> None:
        """Route every frame of this session through ``outbox`` (the transport's)."""
        self._outbox = outbox

    @property
    def too_slow(self) -> bool:
        """True once a push found the outbox full: the transport drops the connection."""
        return self._outbox is not None and self._outbox.overflowed

    async def queue(self, frame: bytes) -> None:
        """Queue a frame, waiting for room: answers, and catch-up batches, which must not be
        lost — a flooding peer is slowed by its own answers, a slow device by its backlog."""
        if self._outbox is None:
            await self._send_now(frame)
            return
        await self._outbox.put(text_frame(frame))

    async def push(self, frame: bytes) -> None:
        """Queue a notice without waiting; a full outbox marks the session too slow."""
        if self._outbox is None:
            if not self.closed.is_set():
                await self._send_now(frame)
            return
        self.push_nowait(frame)

    def push_nowait(self, frame: bytes) -> None:
        """:meth:`push` for callers that cannot wait (live fan-out); needs an outbox."""
        self.push_framed_nowait(text_frame(frame))

    def push_framed_nowait(self, framed: bytes) -> None:
        """Queue an already framed notice (one framing shared by many sessions)."""
        if self.closed.is_set():
            return
        if self._outbox is None:
            raise RuntimeError("this session has no outbox to queue into")
        self._outbox.put_nowait(framed)

    async def _send_now(self, frame: bytes) -> None:
        with contextlib.suppress(
            trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError
        ):
            await self.send(frame.decode())
