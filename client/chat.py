"""``kith chat``'s loop: the device's stream on one side, the user's lines on the other.

Two tasks share one :class:`~client.session.Session` and one
:class:`~client.chat_view.ChatView`:

* the follower iterates ``session.sync()`` and prints what the view makes of each update;
  when the stream first catches up it loads the room list (with the node's unread counts),
  shows it, and shows the end of the current room; messages shown in the current room are
  marked read with a receipt (spec/client.md §4), so they do not count as unread;
* the reader takes one line at a time, parses it (``client.chat_commands``) and carries it
  out, waiting for the answer before reading the next line — so piped input runs in order.

Reading and writing are arguments: the command reads stdin in a worker thread and prints to
stdout; tests pass their own.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Awaitable, Callable

import trio

from client.chat_commands import (
    Ban,
    Command,
    Create,
    Dm,
    Help,
    History,
    Invalid,
    Invite,
    Join,
    Kick,
    Leave,
    Quit,
    Rooms,
    Say,
    SwitchRoom,
    Who,
    parse_line,
)
from client.chat_view import ChatView, short_user
from client.errors import ClientError, ConnectionLostError, KithClientError
from client.session import Session
from client.updates import CaughtUp, SignedOut

__all__ = ["SHOWN_ON_SWITCH", "read_stdin_line", "run_chat", "write_stdout_line"]

SHOWN_ON_SWITCH = 10
"""Events of a room shown when it becomes current."""

LineReader = Callable[[], Awaitable[str | None]]
LineWriter = Callable[[str], None]


async def read_stdin_line() -> str | None:
    """The next line of stdin, read in a worker thread; None at the end of input."""
    line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    return line or None


def write_stdout_line(line: str) -> None:
    """Print one line at once (the terminal may be a pipe)."""
    print(line, flush=True)


class _NoRoomError(Exception):
    """The command needs a current room and there is none."""


class _Chat:
    def __init__(self, session: Session, view: ChatView, write: LineWriter) -> None:
        self.session = session
        self.view = view
        self.write = write

    def show(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    # --- the stream -------------------------------------------------------------------------

    async def follow(self, done: trio.CancelScope) -> None:
        """Print the stream's updates until the device is signed out or the chat ends."""
        started = False
        try:
            async for update in self.session.sync():
                if self.view.needs_room_list(update):
                    self.view.load_rooms(await self.session.rooms())
                self.show(self.view.on_update(update))
                if isinstance(update, CaughtUp) and not started:
                    started = True
                    await self.show_rooms()
                    if self.view.current is not None:
                        await self.open_room(self.view.current)
                event_id = self.view.marks_read(update)
                if event_id is not None:
                    await self.mark_read(self.view.current, event_id)
                if isinstance(update, SignedOut):
                    break
        except KithClientError as exc:
            self.write(f"! {exc}")
        done.cancel()

    async def mark_read(self, room_id: str | None, event_id: str | None) -> None:
        if room_id is None or event_id is None:
            return
        # A receipt is a courtesy: never worth interrupting the chat for.
        with contextlib.suppress(ClientError):
            await self.session.receipt(room_id, event_id)

    # --- commands ---------------------------------------------------------------------------

    async def read_commands(self, read_line: LineReader) -> None:
        """Carry out the user's lines, one at a time, until ``/quit`` or the end of input."""
        self.write("Type a message, or /help for the commands.")
        while (line := await read_line()) is not None:
            command = parse_line(line, server=self.view.server)
            if command is None:
                continue
            if isinstance(command, Quit):
                return
            try:
                await self.execute(command)
            except _NoRoomError:
                self.write("! no current room: /rooms, /room N, /create NAME or /dm @user")
            except ClientError as exc:
                self.write(f"! refused: {exc.code} ({exc.message})")
            except ConnectionLostError:
                self.write("! the connection dropped before the node answered; check /history")

    def room(self) -> str:
        if self.view.current is None:
            raise _NoRoomError
        return self.view.current

    async def execute(self, command: Command) -> None:
        """Carry out one command (see ``client.chat_commands``)."""
        session, view = self.session, self.view
        if isinstance(command, Say):
            await session.send(self.room(), command.text)
        elif isinstance(command, Create):
            room_id = await session.create_room(name=command.name)
            view.add_room(room_id, name=command.name)
            self.show(view.switch(room_id))
        elif isinstance(command, Dm):
            room_id = await session.create_room(direct=True, invite=[command.user_id])
            view.add_room(room_id, title=short_user(command.user_id, view.server), direct=True)
            self.show(view.switch(room_id))
        elif isinstance(command, Invite):
            await session.invite(self.room(), command.user_id)
        elif isinstance(command, Join):
            room_id = view.resolve_room(command.room) or command.room
            await session.join(room_id)
            view.add_room(room_id)
            await self.open_room(room_id)
        elif isinstance(command, Leave):
            room_id = self.room()
            await session.leave(room_id)
            self.write(f"* you left {view.label(room_id)}")
            view.remove_room(room_id)
            if view.current is not None:
                self.show(view.switch(view.current))
        elif isinstance(command, Kick):
            await session.kick(self.room(), command.user_id, reason=command.reason)
        elif isinstance(command, Ban):
            await session.ban(self.room(), command.user_id, reason=command.reason)
        elif isinstance(command, History):
            self.show(view.history_lines(await session.history(self.room(), limit=command.limit)))
        elif isinstance(command, Who):
            await self.show_members(self.room())
        elif isinstance(command, Rooms):
            await self.show_rooms()
        elif isinstance(command, SwitchRoom):
            target = view.resolve_room(command.room)
            if target is None:
                self.write(f"! no room {command.room!r}: /rooms lists them")
            else:
                await self.open_room(target)
        elif isinstance(command, Help):
            self.show(view.help_lines())
        elif isinstance(command, Invalid):
            self.write(f"! {command.message}")

    async def show_rooms(self) -> None:
        self.view.load_rooms(await self.session.rooms())
        self.show(self.view.room_list())

    async def open_room(self, room_id: str) -> None:
        """Switch to a room: its header, its last events, and a receipt for the newest."""
        self.show(self.view.switch(room_id))
        entry = self.view.rooms.get(room_id)
        if entry is None or entry.membership != "join":
            return  # an invitation: nothing to read until joined
        page = await self.session.history(room_id, limit=SHOWN_ON_SWITCH)
        self.show(self.view.history_lines(page))
        if page.events:
            await self.mark_read(room_id, page.events[-1].event_id)

    async def show_members(self, room_id: str) -> None:
        members = await self.session.members(room_id)
        others = [m.user_id for m in members if m.user_id != self.view.user_id]
        if others:
            for info in await self.session.get_presence(others):
                self.view.presence[info.user_id] = info
        self.write(f"in {self.view.label(room_id)}:")
        self.show(self.view.member_lines(members))


async def run_chat(
    session: Session,
    *,
    read_line: LineReader = read_stdin_line,
    write: LineWriter = write_stdout_line,
    view: ChatView | None = None,
) -> None:
    """Chat until ``/quit``, the end of input, or until the device is signed out.

    The session must be logged in.
    """
    if session.user_id is None:
        raise ValueError("run_chat needs a logged-in session")
    chat = _Chat(session, view or ChatView(session.user_id), write)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(chat.follow, nursery.cancel_scope)
        await chat.read_commands(read_line)
        nursery.cancel_scope.cancel()
