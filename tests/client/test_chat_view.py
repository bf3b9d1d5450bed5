"""What ``kith chat`` shows (pure: ``client.chat_view``): lines for events, the room list
with unread counts, presence and typing notices, history and member lists."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import client
from client.chat_view import ChatView, format_time, short_user
from client.results import Event, HistoryPage, Member, PresenceInfo, RoomSummary

ME = "@alice:example.org"
BOB = "@bob:example.org"
ROOM = "!" + "A" * 43
OTHER = "!" + "B" * 43
NOON = 1_700_049_600_000  # 2023-11-15 12:00:00 UTC


def _event(
    kind: str = "message",
    *,
    sender: str = BOB,
    room: str = ROOM,
    state_key: str | None = None,
    ts: int = NOON,
    event_id: str = "$e",
    **content: Any,
) -> Event:
    return Event(event_id, room, kind, sender, content, ts, state_key)


def _live(view: ChatView, event: Event, position: int = 1) -> list[str]:
    return view.on_update(client.EventItem(position, event))


def _view() -> ChatView:
    view = ChatView(ME, tz=UTC)
    view.load_rooms(
        [
            RoomSummary(ROOM, "general", None, False, False, "join", 3, 2),
            RoomSummary(OTHER, None, None, True, False, "join", 2, 0),
        ]
    )
    view.on_update(client.CaughtUp(10))
    return view


def test_times_and_user_names_are_short() -> None:
    assert format_time(NOON, UTC) == "12:00"
    assert short_user(BOB, "example.org") == "bob"
    assert short_user("@bob:other.net", "example.org") == "@bob:other.net"


def test_the_first_joined_room_becomes_current_and_the_list_shows_unread() -> None:
    view = _view()
    assert view.current == ROOM
    assert view.room_list() == [
        "*  1. general  (2 unread)",
        f"   2. {OTHER[:9]}…  (direct)",
    ]
    assert view.switch(ROOM) == ["-- general --"]
    assert view.rooms[ROOM].unread == 0


def test_messages_of_the_current_room_show_in_full() -> None:
    view = _view()
    assert _live(view, _event(body="hi all")) == ["12:00 bob: hi all"]
    assert view.marks_read(client.EventItem(1, _event(body="hi all"))) == "$e"
    assert view.marks_read(client.EventItem(1, _event(sender=ME, body="mine"))) is None


def test_messages_elsewhere_carry_the_room_and_count_as_unread() -> None:
    view = _view()
    assert _live(view, _event(room=OTHER, body="psst")) == [f"[{OTHER[:9]}…] 12:00 bob: psst"]
    assert view.rooms[OTHER].unread == 1
    _live(view, _event(room=OTHER, sender=ME, body="own"))
    assert view.rooms[OTHER].unread == 1  # one's own messages are never unread
    assert view.marks_read(client.EventItem(2, _event(room=OTHER, body="x"))) is None


def test_nothing_is_printed_before_the_catch_up_but_everything_is_learnt() -> None:
    view = ChatView(ME, tz=UTC)
    assert _live(view, _event("create", sender=ME, state_key="", creator=ME)) == []
    assert _live(view, _event("name", sender=ME, state_key="", name="plans")) == []
    assert _live(view, _event(body="old news")) == []
    assert view.label(ROOM) == "plans"
    assert view.on_update(client.CaughtUp(3)) == []
    assert _live(view, _event(body="new")) == ["[plans] 12:00 bob: new"]


def test_membership_and_state_changes_read_as_sentences() -> None:
    view = _view()
    lines = [
        view.describe(_event("member", state_key=BOB, membership="join")),
        view.describe(_event("member", state_key=BOB, membership="leave")),
        view.describe(_event("member", sender=ME, state_key=BOB, membership="leave", reason="x")),
        view.describe(_event("member", sender=ME, state_key=BOB, membership="ban")),
        view.describe(_event("member", sender=ME, state_key=BOB, membership="invite")),
        view.describe(_event("name", state_key="", name="New name")),
        view.describe(_event("name", state_key="")),  # redacted: no name left
        view.describe(_event("topic", state_key="", topic="Plans")),
        view.describe(_event("redaction", redacts="$x")),
        view.describe(_event("encrypted", algorithm="m", ciphertext="...")),
        view.describe(_event("message")),  # redacted: no body left
        view.describe(_event("org.example.hidden")),
    ]
    assert lines == [
        "12:00 * bob joined",
        "12:00 * bob left",
        "12:00 * alice removed bob (x)",
        "12:00 * alice banned bob",
        "12:00 * alice invited bob",
        '12:00 * bob named the room "New name"',
        "12:00 * bob removed the room's name",
        "12:00 * bob set the topic: Plans",
        "12:00 * bob deleted a message",
        "12:00 bob: [encrypted message]",
        "12:00 bob: [deleted]",
        None,
    ]


def test_an_invitation_says_how_to_accept_it() -> None:
    view = _view()
    third = "!" + "C" * 43
    lines = _live(view, _event("member", room=third, state_key=ME, membership="invite"))
    assert lines == [f"12:00 * bob invited you to {third[:9]}… — /join 3"]
    assert "invited: /join 3" in view.room_list()[2]


def test_presence_lines_only_for_changes() -> None:
    view = _view()
    online = client.PresenceChanged(PresenceInfo(BOB, "online"))
    assert view.on_update(online) == ["* bob is online"]
    assert view.on_update(online) == []
    busy = client.PresenceChanged(PresenceInfo(BOB, "online", status_msg="busy"))
    assert view.on_update(busy) == ['* bob is online — "busy"']
    assert view.on_update(client.PresenceChanged(PresenceInfo(BOB, "offline"))) == [
        "* bob is offline"
    ]
    newcomer_offline = client.PresenceChanged(PresenceInfo("@carol:example.org", "offline"))
    assert view.on_update(newcomer_offline) == []


def test_typing_shows_others_in_the_current_room_when_they_start() -> None:
    view = _view()
    assert view.on_update(client.TypingChanged(ROOM, (BOB, ME))) == ["* bob is typing…"]
    assert view.on_update(client.TypingChanged(ROOM, (BOB,))) == []  # nobody new
    assert view.on_update(client.TypingChanged(ROOM, ())) == []
    carol = "@carol:example.org"
    assert view.on_update(client.TypingChanged(ROOM, (BOB, carol))) == ["* bob, carol are typing…"]
    assert view.on_update(client.TypingChanged(OTHER, (BOB,))) == []


def test_connection_and_sign_out_notices() -> None:
    view = _view()
    assert view.on_update(client.Reconnecting(2, 1.25)) == [
        "! connection lost; reconnecting in 1.2s"
    ]
    assert view.on_update(client.SignedOut("revoked")) == [
        "! this device was signed out (revoked): log in again"
    ]
    assert view.signed_out


def test_rooms_resolve_by_number_id_or_name() -> None:
    view = _view()
    assert view.resolve_room("1") == ROOM
    assert view.resolve_room("2") == OTHER
    assert view.resolve_room("3") is None
    assert view.resolve_room(OTHER) == OTHER
    assert view.resolve_room("general") == ROOM
    assert view.resolve_room("nope") is None


def test_leaving_a_room_moves_on_to_another() -> None:
    view = _view()
    view.remove_room(ROOM)
    assert view.current == OTHER
    view.remove_room(OTHER)
    assert view.current is None
    assert view.room_list() == ["no rooms yet: /create NAME or /dm @user"]


def test_a_direct_room_opened_here_is_labelled_with_the_other_user() -> None:
    view = _view()
    third = "!" + "C" * 43
    view.add_room(third, title="bob", direct=True)
    view.load_rooms([RoomSummary(third, None, None, True, False, "join", 1, 0)])
    assert view.label(third) == "bob"


def test_history_and_members_lists() -> None:
    view = _view()
    page = HistoryPage((_event("create", state_key=""), _event(body="first")), None)
    assert view.history_lines(page) == ["12:00 bob: first"]
    assert view.history_lines(HistoryPage((), None)) == ["(nothing yet)"]
    view.on_update(client.PresenceChanged(PresenceInfo(BOB, "online", status_msg="hi")))
    members = [
        Member(ME, "join", None, 2**53 - 1, True),
        Member(BOB, "join", None, 0, False),
        Member("@carol:example.org", "invite", None, 0, False),
        Member("@dan:example.org", "leave", None, 0, False),
    ]
    assert view.member_lines(members) == [
        "  alice  (you, creator)",
        '  bob  (online — "hi")',
        "  carol  (offline, invited)",
    ]
    assert view.help_lines()[0].startswith("Type a line")


def test_an_invitation_to_an_unknown_room_asks_for_the_room_list() -> None:
    view = _view()
    third = "!" + "C" * 43
    invite = client.EventItem(5, _event("member", room=third, state_key=ME, membership="invite"))
    assert view.needs_room_list(invite)  # the invitee sees no name event (client.md §5)
    view.load_rooms(
        [
            RoomSummary(ROOM, "general", None, False, False, "join", 3, 0),
            RoomSummary(third, "secret plans", None, False, False, "invite", 1, 0),
        ]
    )
    assert not view.needs_room_list(invite)
    assert view.on_update(invite) == ["12:00 * bob invited you to secret plans — /join 2"]
    others = client.EventItem(6, _event("member", state_key=BOB, membership="invite"))
    assert not view.needs_room_list(others)


def test_a_name_event_without_a_name_leaves_the_room_unnamed() -> None:
    view = _view()
    _live(view, _event("name", state_key="", name="renamed"))
    assert view.resolve_room("renamed") == ROOM
    _live(view, _event("name", state_key=""), position=2)  # kept redacted (rooms.md §3)
    assert view.rooms[ROOM].name is None
    assert view.resolve_room("renamed") is None
