"""What a typed line means in ``kith chat`` (pure: ``client.chat_commands``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.chat_commands import (
    COMMAND_HELP,
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
    expand_user_id,
    parse_line,
)

SERVER = "example.org"
ROOM = "!" + "A" * 43


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("hello there\n", Say("hello there")),
        ("  indented stays  ", Say("  indented stays  ")),
        ("//not a command", Say("/not a command")),
        ("/create Book club", Create("Book club")),
        ("/dm @bob:other.net", Dm("@bob:other.net")),
        ("/dm bob", Dm("@bob:example.org")),
        ("/invite @carol", Invite("@carol:example.org")),
        (f"/join {ROOM}", Join(ROOM)),
        ("/join 2", Join("2")),
        ("/leave", Leave()),
        ("/kick @bob", Kick("@bob:example.org")),
        ("/kick @bob  too loud ", Kick("@bob:example.org", "too loud")),
        ("/ban bob spam", Ban("@bob:example.org", "spam")),
        ("/history", History(20)),
        ("/history 5", History(5)),
        ("/who", Who()),
        ("/rooms", Rooms()),
        ("/room 3", SwitchRoom("3")),
        (f"/room {ROOM}", SwitchRoom(ROOM)),
        ("/help", Help()),
        ("/QUIT", Quit()),
        ("/exit", Quit()),
    ],
)
def test_lines_parse_to_commands(line: str, command: Command) -> None:
    assert parse_line(line, server=SERVER) == command


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("/create", "usage: /create NAME"),
        ("/room", "usage: /room"),
        ("/join", "usage: /join"),
        ("/invite", "usage: /invite @user"),
        ("/kick", "usage: /kick @user [reason]"),
        ("/history 0", "usage: /history"),
        ("/history 101", "usage: /history"),
        ("/history lots", "usage: /history"),
        ("/dm @Bob!:x", "not a user id"),
        ("/teleport home", "unknown command /teleport"),
    ],
)
def test_malformed_commands_say_what_is_wrong(line: str, says: str) -> None:
    parsed = parse_line(line, server=SERVER)
    assert isinstance(parsed, Invalid)
    assert says in parsed.message


def test_blank_lines_are_nothing() -> None:
    assert parse_line("\n") is None
    assert parse_line("   \r\n") is None


def test_short_user_ids_need_a_server_to_complete() -> None:
    assert expand_user_id("@bob:x.org", None) == "@bob:x.org"
    with pytest.raises(ValueError, match="full user id"):
        expand_user_id("bob", None)


def test_help_lists_every_command_of_the_parser() -> None:
    listed = {usage.split()[0] for usage, _ in COMMAND_HELP}
    assert listed == {
        "/rooms",
        "/room",
        "/create",
        "/dm",
        "/invite",
        "/join",
        "/leave",
        "/kick",
        "/ban",
        "/history",
        "/who",
        "/help",
        "/quit",
    }
    for command in listed:  # and the parser knows every command /help lists
        parsed = parse_line(f"{command} 1", server=SERVER)
        assert not (isinstance(parsed, Invalid) and "unknown command" in parsed.message)


@given(st.text(max_size=200))
def test_any_line_parses_to_a_command_or_nothing(line: str) -> None:
    parsed = parse_line(line, server=SERVER)
    assert parsed is None or isinstance(
        parsed,
        Say
        | Create
        | Dm
        | Invite
        | Join
        | Leave
        | Kick
        | Ban
        | History
        | Who
        | Rooms
        | SwitchRoom
        | Help
        | Quit
        | Invalid,
    )
    if isinstance(parsed, Say):
        assert parsed.text.strip()
