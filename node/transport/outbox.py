"""A connection's outbox: complete WebSocket frames waiting to be written, in order.

Two writers take turns on a connection's socket, never both at once, so frames keep their
order:

* the **flush** — one non-blocking ``write`` straight to the socket: right away for an
  answer, and for pushes once per round of the event loop (a flusher task writes every
  outbox that received frames in that round), so fan-out to many connections costs a
  system call each and no task switch: this is the node's hot path (a message to a room of
  twenty is twenty writes of the same bytes);
* the connection's **pump** task, which takes over whenever the socket's buffer is full
  (or the stream is TLS, which has no raw socket) and waits until it can write.

Answers wait for room (:meth:`Outbox.put`); pushes never wait (:meth:`Outbox.put_nowait`):
a connection that lets more than ``limit`` bytes pile up is too slow to keep, and its
outbox says so — the device resumes from its cursor on a new connection.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import trio

__all__ = ["Outbox", "raw_writer"]

DEFAULT_LIMIT = 16 * 1024 * 1024
"""Bytes a connection may have waiting before it counts as too slow."""


class _Flusher:
    """The task, one per trio run, that flushes every outbox that received frames."""

    def __init__(self) -> None:
        self.dirty: dict[Outbox, None] = {}
        self.wake = trio.Event()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake = trio.Event()
            outboxes = list(self.dirty)
            self.dirty.clear()
            for outbox in outboxes:
                outbox.flush_now()


_flusher: trio.lowlevel.RunVar[_Flusher] = trio.lowlevel.RunVar("kith_outbox_flusher")


def _run_flusher() -> _Flusher:
    """The flusher of the current trio run, started with the run's first outbox."""
    try:
        return _flusher.get()
    except LookupError:
        flusher = _Flusher()
        _flusher.set(flusher)
        trio.lowlevel.spawn_system_task(flusher.run, name="kith-outbox-flusher")
        return flusher


def raw_writer(stream: trio.abc.Stream) -> Callable[[bytes], int] | None:
    """A non-blocking write on the stream's socket, or None if there is none (TLS)."""
    if not isinstance(stream, trio.SocketStream):
        return None
    fd = stream.socket.fileno()

    def write(data: bytes) -> int:
        return os.write(fd, data)

    return write


class Outbox:
    """The frames one connection has yet to write."""

    def __init__(
        self,
        write: Callable[[bytes], Awaitable[None]],
        write_now: Callable[[bytes], int] | None,
        *,
        limit: int = DEFAULT_LIMIT,
    ) -> None:
        self._write = write
        self._write_now = write_now
        self._limit = limit
        self._pending: list[bytes] = []
        self._size = 0
        self._writing = False
        self._finished = False
        self._wake = trio.Event()
        self._space = trio.Event()
        self._space.set()
        self._flusher = _run_flusher()
        self.overflowed = False
        """Set when a push found more than ``limit`` bytes waiting: the connection is dropped."""

    # --- adding frames -------------------------------------------------------------------

    def put_nowait(self, framed: bytes) -> bool:
        """Add a frame without waiting; False (and nothing added) if the outbox overflowed."""
        if self._finished or self.overflowed:
            return False
        if self._size + len(framed) > self._limit:
            self.overflowed = True
            self._wake.set()
            self._space.set()  # an answer waiting for room gives up: nothing more is sent
            return False
        self._add(framed)
        # Flushed once the tasks runnable now have run: many pushes of one round share a write.
        flusher = self._flusher
        if not flusher.dirty:
            flusher.wake.set()
        flusher.dirty[self] = None
        return True

    async def put(self, framed: bytes) -> None:
        """Add a frame once there is room (answers: a flooding peer is slowed down)."""
        while self._size >= self._limit and not (self._finished or self.overflowed):
            self._space = trio.Event()
            await self._space.wait()
        if not (self._finished or self.overflowed):
            self._add(framed)
            self.flush_now()  # an answer goes out at once

    def _add(self, framed: bytes) -> None:
        self._pending.append(framed)
        self._size += len(framed)

    def finish(self) -> None:
        """No more frames: the pump writes what is waiting, then returns."""
        self._finished = True
        self._wake.set()
        self._space.set()

    # --- writing -------------------------------------------------------------------------

    def _take(self) -> bytes:
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        self._size = 0
        self._space.set()
        return data

    def _keep(self, rest: bytes) -> None:
        self._pending.insert(0, rest)
        self._size += len(rest)

    def flush_now(self) -> None:
        """Write what is waiting right away if the socket takes it; else leave it to the pump."""
        if self._writing or not self._pending or self.overflowed:
            return
        if self._write_now is None:
            self._wake.set()
            return
        data = self._take()
        try:
            written = self._write_now(data)
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError:
            written = 0  # broken: the pump's own write will find out and end the connection
        if written < len(data):
            self._keep(data[written:])
            self._wake.set()

    async def pump(self) -> None:
        """Write whatever the flush could not, waiting for the socket; return when finished."""
        while True:
            if self.overflowed:
                return
            if not self._pending:
                if self._finished:
                    return
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            data = self._take()
            self._writing = True
            try:
                await self._write(data)
            finally:
                self._writing = False
