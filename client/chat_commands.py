"""What a line typed into ``kith chat`` asks for: pure parsing, no IO.

A line starting with ``/`` is a command; anything else is a message for the current room
(``//`` escapes a message that starts with a slash). User ids may be written short:
``bob`` or ``@bob`` mean ``@bob:<the user's own server>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol import RemoteProtocolError, parse_user_id

__all__ = [
    "COMMAND_HELP",
    "DEFAULT_HISTORY",
    "Ban",
    "Command",
    "Create",
    "Dm",
    "Help",
    "History",
    "Invalid",
    "Invite",
    "Join",
    "Kick",
    "Leave",
    "Quit",
    "Rooms",
    "Say",
    "SwitchRoom",
    "Who",
    "expand_user_id",
    "parse_line",
]

DEFAULT_HISTORY = 20
MAX_HISTORY = 100  # spec/client.md §4: history's limit is 1-100


@dataclass(frozen=True, slots=True)
class Say:
    """Send ``text`` to the current room."""

    text: str


@dataclass(frozen=True, slots=True)
class Create:
    """Create a group room called ``name`` and switch to it."""

    name: str


@dataclass(frozen=True, slots=True)
class Dm:
    """Open a direct room with ``user_id`` and switch to it."""

    user_id: str


@dataclass(frozen=True, slots=True)
class Invite:
    """Invite ``user_id`` to the current room."""

    user_id: str


@dataclass(frozen=True, slots=True)
class Join:
    """Join a room: its id, or its number in the room list (for an invitation)."""

    room: str


@dataclass(frozen=True, slots=True)
class Leave:
    """Leave the current room."""


@dataclass(frozen=True, slots=True)
class Kick:
    """Remove ``user_id`` from the current room."""

    user_id: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Ban:
    """Ban ``user_id`` from the current room."""

    user_id: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """Show the last ``limit`` events of the current room."""

    limit: int = DEFAULT_HISTORY


@dataclass(frozen=True, slots=True)
class Who:
    """List the current room's members and their presence."""


@dataclass(frozen=True, slots=True)
class Rooms:
    """List the rooms, numbered, with unread counts."""


@dataclass(frozen=True, slots=True)
class SwitchRoom:
    """Make a room current: its number in the room list, its id or its name."""

    room: str


@dataclass(frozen=True, slots=True)
class Help:
    """Show the commands."""


@dataclass(frozen=True, slots=True)
class Quit:
    """Leave the program."""


@dataclass(frozen=True, slots=True)
class Invalid:
    """The line could not be understood; ``message`` says why."""

    message: str


Command = (
    Say | Create | Dm | Invite | Join | Leave | Kick | Ban | History | Who | Rooms | SwitchRoom
) | (Help | Quit | Invalid)

COMMAND_HELP: tuple[tuple[str, str], ...] = (
    ("/rooms", "list your rooms with unread counts"),
    ("/room N|ROOM", "switch to room number N (or a room id or name)"),
    ("/create NAME", "create a group room and switch to it"),
    ("/dm @user:server", "open a direct conversation"),
    ("/invite @user", "invite someone to this room"),
    ("/join ROOM", "join a room by id, or an invitation by its number"),
    ("/leave", "leave this room"),
    ("/kick @user [reason]", "remove someone from this room"),
    ("/ban @user [reason]", "ban someone from this room"),
    ("/history [N]", f"show the last N events (default {DEFAULT_HISTORY})"),
    ("/who", "who is in this room, and who is online"),
    ("/help", "this list"),
    ("/quit", "leave (Ctrl-D works too)"),
)
"""Every command and what it does, in the order ``/help`` shows them."""


def expand_user_id(text: str, server: str | None) -> str:
    """``bob`` or ``@bob`` → ``@bob:server``; a full user id is kept. Raises ``ValueError``."""
    user = text if text.startswith("@") else f"@{text}"
    if ":" not in user:
        if server is None:
            raise ValueError(f"write the full user id, like {user}:example.org")
        user = f"{user}:{server}"
    try:
        parse_user_id(user)
    except RemoteProtocolError:
        raise ValueError(f"{text!r} is not a user id (like @bob:example.org)") from None
    return user


def _user_and_reason(name: str, rest: str, server: str | None) -> tuple[str, str | None] | Invalid:
    user, _, reason = rest.partition(" ")
    if not user:
        return Invalid(f"usage: /{name} @user" + (" [reason]" if name in ("kick", "ban") else ""))
    try:
        return expand_user_id(user, server), reason.strip() or None
    except ValueError as exc:
        return Invalid(str(exc))


def _history(rest: str) -> Command:
    if not rest:
        return History()
    if not rest.isdigit() or not 1 <= int(rest) <= MAX_HISTORY:
        return Invalid(f"usage: /history [N], N from 1 to {MAX_HISTORY}")
    return History(int(rest))


def parse_line(line: str, *, server: str | None = None) -> Command | None:
    """The command a typed line asks for; None for a blank line.

    ``server`` is the user's own server name, used to complete short user ids.
    """
    text = line.rstrip("\r\n")
    if not text.strip():
        return None
    if not text.startswith("/"):
        return Say(text)
    if text.startswith("//"):
        return Say(text[1:])
    name, _, rest = text[1:].partition(" ")
    name, rest = name.lower(), rest.strip()
    if name in ("quit", "exit", "q"):
        return Quit()
    if name in ("help", "?"):
        return Help()
    if name == "rooms":
        return Rooms()
    if name == "who":
        return Who()
    if name == "leave":
        return Leave()
    if name == "history":
        return _history(rest)
    if name == "create":
        return Create(rest) if rest else Invalid("usage: /create NAME")
    if name in ("room", "join"):
        if not rest:
            return Invalid(f"usage: /{name} N|ROOM")
        return SwitchRoom(rest) if name == "room" else Join(rest)
    if name in ("dm", "invite", "kick", "ban"):
        parsed = _user_and_reason(name, rest, server)
        if isinstance(parsed, Invalid):
            return parsed
        user, reason = parsed
        if name == "dm":
            return Dm(user)
        if name == "invite":
            return Invite(user)
        return Kick(user, reason) if name == "kick" else Ban(user, reason)
    return Invalid(f"unknown command /{name}: /help lists the commands")
