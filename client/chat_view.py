"""What ``kith chat`` shows: the rooms, the current room, unread counts, presence and typing,
and every line it prints — pure state and formatting, no IO, so all of it is unit-tested.

The terminal loop (``client.chat``) feeds :class:`ChatView` the updates of the device's
stream (``on_update``) and the answers it gets (``load_rooms``, history pages, member
lists), and prints the lines it returns. Before the stream has caught up the view only
learns (room names, memberships); once caught up it shows live events: messages of the
current room in full, messages of other rooms with the room's name in front (and counted
as unread), membership changes, contacts coming and going, who is typing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo

from client.chat_commands import COMMAND_HELP
from client.results import Event, HistoryPage, Member, PresenceInfo, RoomSummary
from client.updates import (
    CaughtUp,
    EventItem,
    PresenceChanged,
    Reconnecting,
    SignedOut,
    TypingChanged,
    Update,
)

__all__ = ["ChatView", "RoomEntry", "format_time", "short_user"]

_COUNTED = frozenset({"message", "encrypted"})
"""The event types unread counts count (spec/client.md §3)."""
_MEMBERSHIP_VERBS = {"join": "joined", "leave": "left", "ban": "was banned", "unban": "unbanned"}


def format_time(ts_ms: int, tz: tzinfo | None = None) -> str:
    """``HH:MM`` of a timestamp in milliseconds, in ``tz`` (the local zone by default)."""
    return datetime.fromtimestamp(ts_ms / 1000, tz).strftime("%H:%M")


def short_user(user_id: str, server: str | None) -> str:
    """``bob`` for ``@bob:<own server>``; other servers' users keep their full id."""
    local, _, user_server = user_id[1:].partition(":")
    return local if server is not None and user_server == server else user_id


@dataclass
class RoomEntry:
    """What the view knows of one room."""

    room_id: str
    name: str | None = None
    direct: bool = False
    membership: str = "join"
    unread: int = 0
    last_event_id: str | None = None
    """The newest event seen live, for the read receipt sent when the room is viewed."""
    title: str | None = None
    """A label known only here (the other user of a direct room this client opened)."""


class ChatView:
    """The terminal client's state, and the lines it prints (see the module docstring)."""

    def __init__(self, user_id: str, *, tz: tzinfo | None = None) -> None:
        self.user_id = user_id
        self.server: str | None = user_id.partition(":")[2] or None
        self.tz = tz
        self.rooms: dict[str, RoomEntry] = {}
        """Rooms in the order they are numbered in ``/rooms``."""
        self.current: str | None = None
        self.caught_up = False
        self.presence: dict[str, PresenceInfo] = {}
        self.typing: dict[str, tuple[str, ...]] = {}
        self.signed_out = False

    # --- rooms ------------------------------------------------------------------------------

    def load_rooms(self, summaries: Iterable[RoomSummary]) -> None:
        """Take the node's room list (names, memberships, unread counts) as the truth."""
        listed = {summary.room_id for summary in summaries}
        for summary in summaries:
            entry = self.rooms.setdefault(summary.room_id, RoomEntry(summary.room_id))
            entry.name, entry.direct = summary.name, summary.direct
            entry.membership, entry.unread = summary.membership, summary.unread_count
        for room_id in [r for r in self.rooms if r not in listed]:
            del self.rooms[room_id]
        if self.current not in self.rooms:
            self.current = next(
                (r.room_id for r in self.rooms.values() if r.membership == "join"), None
            )

    def add_room(
        self,
        room_id: str,
        *,
        name: str | None = None,
        title: str | None = None,
        direct: bool = False,
    ) -> None:
        """A room the user just created or joined."""
        entry = self.rooms.setdefault(room_id, RoomEntry(room_id))
        entry.membership = "join"
        entry.name = name if name is not None else entry.name
        entry.title = title if title is not None else entry.title
        entry.direct = entry.direct or direct

    def remove_room(self, room_id: str) -> None:
        """The user left ``room_id``: off the list; another joined room becomes current."""
        self.rooms.pop(room_id, None)
        if self.current == room_id:
            self.current = next(
                (r.room_id for r in self.rooms.values() if r.membership == "join"), None
            )

    def label(self, room_id: str) -> str:
        """How a room is named on screen: its name, else a short form of its id."""
        entry = self.rooms.get(room_id)
        if entry is not None and (entry.name or entry.title):
            return entry.name or entry.title or ""
        return f"{room_id[:9]}…" if len(room_id) > 10 else room_id

    def resolve_room(self, text: str) -> str | None:
        """The room ``text`` names: its number in the list, its id, or its name."""
        numbered = list(self.rooms)
        if text.isdigit() and 1 <= int(text) <= len(numbered):
            return numbered[int(text) - 1]
        if text in self.rooms:
            return text
        matches = [r.room_id for r in self.rooms.values() if r.name == text]
        return matches[0] if len(matches) == 1 else None

    def switch(self, room_id: str) -> list[str]:
        """Make ``room_id`` current: its unread count is cleared; the header line."""
        self.current = room_id
        entry = self.rooms.get(room_id)
        if entry is not None:
            entry.unread = 0
        return [f"-- {self.label(room_id)} --"]

    def room_list(self) -> list[str]:
        """``/rooms``: numbered, the current one marked, with unread counts."""
        if not self.rooms:
            return ["no rooms yet: /create NAME or /dm @user"]
        lines = []
        for number, entry in enumerate(self.rooms.values(), start=1):
            mark = "*" if entry.room_id == self.current else " "
            notes = []
            if entry.direct:
                notes.append("direct")
            if entry.membership == "invite":
                notes.append(f"invited: /join {number}")
            if entry.unread:
                notes.append(f"{entry.unread} unread")
            suffix = f"  ({', '.join(notes)})" if notes else ""
            lines.append(f"{mark}{number:>3}. {self.label(entry.room_id)}{suffix}")
        return lines

    # --- the stream -------------------------------------------------------------------------

    def on_update(self, update: Update) -> list[str]:
        """Learn from one update; the lines to print for it (none before catching up)."""
        if isinstance(update, EventItem):
            return self._on_event(update.event)
        if isinstance(update, CaughtUp):
            self.caught_up = True
            return []
        if isinstance(update, PresenceChanged):
            return self._on_presence(update.presence)
        if isinstance(update, TypingChanged):
            return self._on_typing(update)
        if isinstance(update, SignedOut):
            self.signed_out = True
            return [f"! this device was signed out ({update.reason}): log in again"]
        if isinstance(update, Reconnecting):
            return [f"! connection lost; reconnecting in {update.delay:.1f}s"]
        return []

    def _on_event(self, event: Event) -> list[str]:
        room_id = event.room_id
        entry = self.rooms.get(room_id)
        if event.type == "create":
            entry = self.rooms.setdefault(room_id, RoomEntry(room_id))
            entry.direct = event.content.get("direct") is True
        elif event.type == "name":
            # A name event without a name (redacted, rooms.md §3) leaves the room unnamed.
            entry = self.rooms.setdefault(room_id, RoomEntry(room_id))
            name = event.content.get("name")
            entry.name = name if isinstance(name, str) and name else None
        elif event.membership is not None and event.state_key == self.user_id:
            entry = self.rooms.setdefault(room_id, RoomEntry(room_id))
            entry.membership = event.membership
        if entry is not None:
            entry.last_event_id = event.event_id
        if not self.caught_up:
            return []
        line = self.describe(event)
        if line is None:
            return []
        if room_id == self.current:
            return [line]
        if event.sender == self.user_id:
            return []  # the user's own doing elsewhere (a room just created, another device)
        if event.type in _COUNTED and entry is not None:
            entry.unread += 1
        if event.membership == "invite" and event.state_key == self.user_id:
            number = list(self.rooms).index(room_id) + 1
            return [f"{line} — /join {number}"]
        return [f"[{self.label(room_id)}] {line}"]

    def needs_room_list(self, update: Update) -> bool:
        """True for an invitation to a room the view cannot name yet: an invited user sees
        no more of the room than the invite (client.md §5), but ``rooms`` has its name."""
        if not isinstance(update, EventItem) or not self.caught_up:
            return False
        event = update.event
        if event.membership != "invite" or event.state_key != self.user_id:
            return False
        entry = self.rooms.get(event.room_id)
        return entry is None or entry.name is None

    def marks_read(self, update: Update) -> str | None:
        """The event to send a read receipt for, when ``update`` is a message shown in the
        current room (the user has seen it, so it must not count as unread)."""
        if not isinstance(update, EventItem) or not self.caught_up:
            return None
        event = update.event
        if event.room_id != self.current or event.type not in _COUNTED:
            return None
        return None if event.sender == self.user_id else event.event_id

    def describe(self, event: Event) -> str | None:
        """One line for an event, or None for the kinds a person need not see."""
        time = format_time(event.origin_server_ts, self.tz)
        who = short_user(event.sender, self.server)
        body = event.body
        if body is not None:
            return f"{time} {who}: {body}"
        if event.type == "encrypted":
            return f"{time} {who}: [encrypted message]"
        if event.type == "message":
            return f"{time} {who}: [deleted]"
        membership = event.membership
        if membership is not None and event.state_key is not None:
            target = short_user(event.state_key, self.server)
            reason = event.content.get("reason")
            why = f" ({reason})" if isinstance(reason, str) and reason else ""
            if membership == "invite":
                if event.state_key == self.user_id:
                    return f"{time} * {who} invited you to {self.label(event.room_id)}"
                return f"{time} * {who} invited {target}"
            if membership == "leave" and event.sender != event.state_key:
                return f"{time} * {who} removed {target}{why}"
            if membership == "ban":
                return f"{time} * {who} banned {target}{why}"
            verb = _MEMBERSHIP_VERBS.get(membership, membership)
            return f"{time} * {target} {verb}"
        if event.type == "name":
            name = event.content.get("name")
            if not isinstance(name, str) or not name:
                return f"{time} * {who} removed the room's name"
            return f'{time} * {who} named the room "{name}"'
        if event.type == "topic":
            return f"{time} * {who} set the topic: {event.content.get('topic', '')}"
        if event.type == "redaction":
            return f"{time} * {who} deleted a message"
        return None

    def _on_presence(self, info: PresenceInfo) -> list[str]:
        before = self.presence.get(info.user_id)
        self.presence[info.user_id] = info
        if before is None:
            news = info.online  # first heard of: worth a line if they are around
        elif before.presence == info.presence:
            news = bool(info.status_msg) and info.status_msg != before.status_msg
        else:
            news = True
        if not news:
            return []
        status = f' — "{info.status_msg}"' if info.status_msg else ""
        return [f"* {short_user(info.user_id, self.server)} is {info.presence}{status}"]

    def _on_typing(self, update: TypingChanged) -> list[str]:
        others = tuple(u for u in update.user_ids if u != self.user_id)
        before = self.typing.get(update.room_id, ())
        self.typing[update.room_id] = others
        if update.room_id != self.current or not others or set(others) <= set(before):
            return []
        names = ", ".join(short_user(u, self.server) for u in others)
        return [f"* {names} {'is' if len(others) == 1 else 'are'} typing…"]

    # --- answers ----------------------------------------------------------------------------

    def history_lines(self, page: HistoryPage) -> list[str]:
        """``/history``: the page's events that a person reads, oldest first."""
        lines = [line for event in page.events if (line := self.describe(event)) is not None]
        return lines or ["(nothing yet)"]

    def member_lines(self, members: Iterable[Member]) -> list[str]:
        """``/who``: joined and invited members, with presence where it is known."""
        lines = []
        for member in members:
            if member.membership not in ("join", "invite"):
                continue
            info = self.presence.get(member.user_id)
            if member.user_id == self.user_id:
                state = "you"
            elif info is not None:
                state = info.presence + (f' — "{info.status_msg}"' if info.status_msg else "")
            else:
                state = "offline"
            notes = [state]
            if member.membership == "invite":
                notes.append("invited")
            if member.creator:
                notes.append("creator")
            lines.append(f"  {short_user(member.user_id, self.server)}  ({', '.join(notes)})")
        return lines or ["  (nobody)"]

    @staticmethod
    def help_lines() -> list[str]:
        """``/help``: every command; a plain line is a message."""
        width = max(len(usage) for usage, _ in COMMAND_HELP)
        lines = [f"  {usage:<{width}}  {what}" for usage, what in COMMAND_HELP]
        return ["Type a line to send it to the current room. Commands:", *lines]
