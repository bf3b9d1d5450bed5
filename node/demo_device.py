"""The people of ``kith demo``: one device each, a real client session, and the transcript.

A :class:`Device` is a :func:`client.connect` session over a real WebSocket; a task reads
its stream (``session.sync()``) and writes one transcript line per update as it arrives,
so what the transcript shows is what the device received. The demo's script waits on
:meth:`Device.wait_for` for the updates it expects, always with a time limit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

import trio

import client
from client import (
    Backoff,
    CaughtUp,
    EventItem,
    Limited,
    PresenceChanged,
    Receipt,
    Reconnecting,
    Retraction,
    SignedOut,
    Store,
    ToDevice,
    TypingChanged,
    Update,
    UpdateStream,
)
from protocol import parse_user_id

__all__ = ["PASSWORD", "Device", "Sent", "Transcript"]

PASSWORD = "demo password, not a secret"
"""Every demo user's password: the demo's data is thrown away (or kept for a look only)."""


class Transcript:
    """Lines ``<seconds since start>  <who>  <what>``, kept and (unless quiet) printed."""

    def __init__(self, echo: Callable[[str], None] | None) -> None:
        self._echo = echo
        self._start = trio.current_time()
        self._held: list[tuple[float, str, Callable[[], str]]] | None = None
        self.lines: list[str] = []

    def elapsed(self) -> float:
        """Seconds since the demo started."""
        return trio.current_time() - self._start

    def say(self, who: str, text: str | Callable[[], str]) -> None:
        """One line of the transcript; ``text`` may be made when the line is written."""
        entry = (self.elapsed(), who, text if callable(text) else lambda: text)
        if self._held is not None:
            self._held.append(entry)
        else:
            self._write(*entry)

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Keep lines back until the block ends, then write them, with their own times.

        A device may receive a room's first events before the call that creates the room
        returns, and so before the room has a name in the transcript: those lines wait.
        """
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            for entry in held:
                self._write(*entry)

    def plain(self, text: str) -> None:
        """A line of commentary, without a time or a speaker."""
        self._emit(f"  {text}")

    def heading(self, text: str) -> None:
        """A blank line and the title of the next step."""
        self._emit("")
        self._emit(f"── {text} ──")

    def _write(self, at: float, who: str, text: Callable[[], str]) -> None:
        self._emit(f"{at:6.2f}s  {who:<8} {text()}")

    def _emit(self, line: str) -> None:
        self.lines.append(line)
        if self._echo is not None:
            self._echo(line)


@dataclass(frozen=True, slots=True)
class Sent:
    """A message a device sent: what it said, where, and which devices should get it."""

    event_id: str
    room: str
    sender: str
    body: str
    recipients: tuple[str, ...]
    """Labels of the devices of the room's members (the sender's own included)."""
    while_down: str | None = None
    """The server name of the node that was down when it was sent, if one was."""


def short_name(user_id: str) -> str:
    """``@alice:a.demo`` → ``alice`` (the demo's user names are unique across nodes)."""
    return parse_user_id(user_id).localpart


@dataclass
class Device:
    """One user's only device, connected to its home node through the node's address."""

    username: str
    server_name: str
    url: str
    transcript: Transcript
    rooms: dict[str, str]
    """Room id → the name the transcript gives it (shared by every device)."""
    backoff: Backoff
    store: Store = field(default_factory=Store)
    received: list[Update] = field(default_factory=list)
    _changed: trio.Event = field(default_factory=trio.Event)
    _leave: trio.Event = field(default_factory=trio.Event)
    _gone: trio.Event = field(default_factory=trio.Event)
    _session: client.Session | None = None

    @property
    def label(self) -> str:
        """``alice@a``: alice's device, on node ``a.demo``."""
        return f"{self.username}@{self.server_name.split('.')[0]}"

    @property
    def user_id(self) -> str:
        """The user's id, ``@alice:a.demo``."""
        return f"@{self.username}:{self.server_name}"

    @property
    def session(self) -> client.Session:
        """The session while the device is connected."""
        if self._session is None:
            raise RuntimeError(f"{self.label} is not connected")
        return self._session

    def note(self, text: str | Callable[[], str]) -> None:
        """A transcript line by this device."""
        self.transcript.say(self.label, text)

    # --- connecting -----------------------------------------------------------------------

    async def connect(self, nursery: trio.Nursery, *, register: bool = False) -> None:
        """Open the session (registering the user first if asked) and start reading."""
        self._leave, self._gone = trio.Event(), trio.Event()
        await nursery.start(self._run, register)

    async def disconnect(self) -> None:
        """Close the session, as an app that quits does; its stream position is kept."""
        self._leave.set()
        await self._gone.wait()

    async def _run(self, register: bool, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            async with client.connect(self.url, store=self.store, backoff=self.backoff) as session:
                if register:
                    login = await session.register(self.username, PASSWORD, device_name="demo")
                    self.note(f"→ registered {login.user_id}, device {login.device_id}")
                else:
                    self.note(f"→ connected again as device {session.device_id}")
                self._session = session
                stream = session.sync()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read, stream)
                    task_status.started()
                    await self._leave.wait()
                    nursery.cancel_scope.cancel()
                self.note("→ disconnected (the app quit)")
        finally:
            self._session = None
            self._gone.set()

    async def _read(self, stream: UpdateStream) -> None:
        async for update in stream:
            self.received.append(update)
            # Described when written: a held line names a room created meanwhile.
            self.note(partial(self.describe, update))
            # Printed is processed: the position is acknowledged, never delivered again.
            stream.mark_processed()
            self._changed.set()
            self._changed = trio.Event()

    async def say(self, room_id: str, body: str) -> str:
        """Send a text message to a room; its event id."""
        self.note(f'→ {self.room(room_id)} says "{body}"')
        return await self.session.send(room_id, body)

    # --- waiting --------------------------------------------------------------------------

    def mark(self) -> int:
        """A bookmark in what the device received, for :meth:`wait_for`'s ``since``."""
        return len(self.received)

    async def wait_for(
        self, predicate: Callable[[Update], bool], *, within: float, since: int = 0
    ) -> Update | None:
        """The first update from ``since`` on that matches, waiting up to ``within`` seconds."""
        seen = since
        with trio.move_on_after(within):
            while True:
                for update in self.received[seen:]:
                    if predicate(update):
                        return update
                seen = len(self.received)
                await self._changed.wait()
        return None

    def times_received(self, event_id: str) -> int:
        """How many times the stream delivered the event (exactly once, if all is well)."""
        return sum(
            1 for u in self.received if isinstance(u, EventItem) and u.event.event_id == event_id
        )

    def bodies(self) -> list[str]:
        """The text of every message the device received, in order."""
        return [
            u.event.body
            for u in self.received
            if isinstance(u, EventItem) and u.event.body is not None
        ]

    # --- the transcript -------------------------------------------------------------------

    def room(self, room_id: str) -> str:
        """The room's name in the transcript."""
        return self.rooms.get(room_id, f"[room {room_id[:9]}…]")

    def describe(self, update: Update) -> str:
        """The transcript line for an update the device received."""
        if isinstance(update, EventItem):
            return self._describe_event(update)
        if isinstance(update, CaughtUp):
            return f"caught up (stream position {update.position}); live from here"
        if isinstance(update, PresenceChanged):
            info = update.presence
            status = f' "{info.status_msg}"' if info.status_msg else ""
            return f"← presence: {short_name(info.user_id)} is {info.presence}{status}"
        if isinstance(update, Reconnecting):
            lost = "connection lost" if update.attempt == 1 else "still no connection"
            return f"{lost}; trying again in {update.delay:.2f}s (attempt {update.attempt})"
        if isinstance(update, TypingChanged):
            names = ", ".join(short_name(u) for u in update.user_ids) or "nobody"
            return f"← {self.room(update.room_id)} typing: {names}"
        if isinstance(update, Receipt):
            return f"← {self.room(update.room_id)} {short_name(update.user_id)} read up to here"
        if isinstance(update, Retraction):
            return f"← {self.room(update.room_id)} event {update.event_id} retracted"
        if isinstance(update, ToDevice):
            return f"← to-device {update.type} from {short_name(update.sender)}"
        if isinstance(update, Limited):
            return f"← older items skipped in {', '.join(map(self.room, update.rooms))}"
        assert isinstance(update, SignedOut)
        return f"signed out ({update.reason})"

    def _describe_event(self, item: EventItem) -> str:
        event = item.event
        room = self.room(event.room_id)
        sender = short_name(event.sender)
        if event.body is not None:
            return f'← {room} {sender}: "{event.body}"'
        membership = event.membership
        if membership is not None and event.state_key is not None:
            target = short_name(event.state_key)
            if membership == "invite":
                return f"← {room} {sender} invited {target}"
            if membership == "join":
                return f"← {room} {target} joined"
            return f"← {room} {target}: {membership} (by {sender})"
        content = event.content
        if event.type in ("name", "topic") and isinstance(content.get(event.type), str):
            return f'← {room} {sender} set the {event.type}: "{content[event.type]}"'
        if event.type == "join_rules" and isinstance(content.get("join_rule"), str):
            return f"← {room} {sender} set the join rule: {content['join_rule']}"
        return f"← {room} {event.type} (by {sender})"
