"""The device's stream as an async iterator of typed updates (spec/client.md §5).

``async for update in session.sync():`` starts the stream after the store's cursor, yields
the catch-up, then :class:`~client.updates.CaughtUp`, then live updates as they come — each
stream item once, in position order, across reconnects — and ends after
:class:`~client.updates.SignedOut` or when the session closes.

**Acknowledgements.** With ``auto_ack`` (the default) an update counts as processed when the
consumer asks for the next one: whatever the loop body did with it has finished. The
session then writes the cursor to the store and sends ``ack`` (§5 step 4) in the
background, coalescing a burst into one write and one request; ``await session.ack()``
waits until that is done. An application that processes updates elsewhere (a queue, a
database transaction) passes ``auto_ack=False`` and calls ``await session.ack(position)``
itself. Either way an update that was yielded but not yet processed when the process dies is
delivered again by the next process; once acknowledged, never. A consumer that leaves the
loop with ``break`` after handling an update calls :meth:`UpdateStream.mark_processed`.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from typing import TYPE_CHECKING

import trio

from client.updates import BatchReader, Pending, SignedOut, Update
from protocol import Notice

if TYPE_CHECKING:
    from client.session import Session

__all__ = ["UpdateStream"]


class UpdateStream:
    """One session's stream of updates; get it from :meth:`Session.sync`."""

    def __init__(self, session: Session, *, auto_ack: bool) -> None:
        self._session = session
        self.auto_ack = auto_ack
        # Unbounded on purpose: the connection's reader must never wait for the consumer,
        # or an answer the consumer itself awaits (say, a history page) could never arrive.
        # The node bounds what it sends: catch-up comes in batches and is capped (§5 step 3).
        self._send, self._receive = trio.open_memory_channel[tuple[int, Notice] | Update](math.inf)
        self._reader: BatchReader | None = None
        self._pending: deque[Pending] = deque()
        self._held: int | None = None
        self._ended = False

    @property
    def started(self) -> bool:
        """True once the ``sync`` request went out (the session resumes it on reconnect)."""
        return self._reader is not None

    @property
    def resume_after(self) -> int:
        """The position to ``sync`` after: the highest one this stream has read.

        Anything read is either yielded already or waiting in memory to be, so asking the
        node only for what comes after it loses nothing and repeats nothing.
        """
        return self._reader.seen if self._reader is not None else 0

    def begin(self, after: int) -> None:
        """The stream starts after ``after`` (the store's cursor)."""
        self._reader = BatchReader(after)

    def feed(self, generation: int, notice: Notice) -> None:
        """A push from connection number ``generation``, in arrival order (never waits)."""
        self._put((generation, notice))

    def announce(self, update: Update) -> None:
        """An update of the library's own (``Reconnecting``), after what came before it."""
        self._put(update)

    def _put(self, entry: tuple[int, Notice] | Update) -> None:
        # Once the stream has ended, nothing more is delivered.
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            self._send.send_nowait(entry)

    def end(self) -> None:
        """No more pushes: the iterator stops once it has yielded what it holds."""
        self._send.close()

    def __aiter__(self) -> UpdateStream:
        return self

    async def __anext__(self) -> Update:
        # The consumer is back for more: the update it held is processed (auto_ack).
        self._done_with_held()
        if self._reader is None:
            await self._session._start_sync(self)
        assert self._reader is not None
        while True:
            while not self._pending:
                if self._ended:
                    raise StopAsyncIteration
                try:
                    entry = await self._receive.receive()
                except trio.EndOfChannel:
                    self._ended = True
                    raise StopAsyncIteration from None
                if isinstance(entry, tuple):
                    self._pending.extend(self._reader.read(*entry))
                else:
                    self._pending.append(Pending(entry))
            step = self._pending.popleft()
            if not step.decrypted and step.update is not None:
                # End-to-end encryption (when on) decrypts before anything is yielded.
                self._pending.extendleft(reversed(await self._session._decrypt(step)))
                continue
            if step.update is None:
                # Nothing to show (resent or invisible items): done as soon as reached.
                if step.completes is not None and self.auto_ack:
                    self._session._mark_processed(step.completes)
                continue
            if isinstance(step.update, SignedOut):
                self._ended = True
                self._pending.clear()
            self._held = step.completes
            return step.update

    def mark_processed(self) -> None:
        """The update last yielded is processed now, before the loop asks for the next.

        For a consumer that leaves the loop after an update (``break``) or that must not
        wait for the next one (``kith tail`` after flushing a line). Only with ``auto_ack``.
        """
        self._done_with_held()

    def _done_with_held(self) -> None:
        if self._held is not None and self.auto_ack:
            self._session._mark_processed(self._held)
        self._held = None

    async def aclose(self) -> None:
        """Stop iterating. The update last yielded is not marked processed: call
        :meth:`mark_processed` first if it was."""
        self._held = None
        self._ended = True
        self._session._stream_closed(self)
        self.end()
