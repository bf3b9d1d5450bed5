"""One connection's session: who is at the other end, what it is bound to, how to push.

The transport creates a :class:`Session` per accepted WebSocket and hands it to every
handler. A client connection starts unbound; ``register``, ``login`` or ``authenticate``
bind it to a user's device (spec/client.md §1), and every later request acts as that
device. Services push notices through :meth:`Session.push`, which never raises: a push to a
connection that has gone away is dropped (the device catches up from its cursor).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

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

    async def push(self, frame: bytes) -> None:
        """Send an encoded frame; drop it silently if the connection is gone."""
        if self.closed.is_set():
            return
        with contextlib.suppress(
            trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError
        ):
            await self.send(frame.decode())
