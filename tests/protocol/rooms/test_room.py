"""The incremental engine's bookkeeping: structure, held and refused events, what each
``add`` reports, and the helpers a node uses to create events."""

from __future__ import annotations

import pytest

import protocol
from protocol import RemoteProtocolError
from protocol.rooms import RejectReason, Room
from tests.protocol.rooms.builder import RoomBuilder

A, M, U, X = "@a:a.example", "@m:m.example", "@u:u.example", "@x:x.example"


def _room(b: RoomBuilder) -> Room:
    return Room(b.create_id, b.events[b.create_id])


def _add_all(room: Room, b: RoomBuilder) -> None:
    for event_id in b.order[1:]:
        room.add({event_id: b.events[event_id]})


def test_events_with_unknown_parents_are_held_with_the_parents_to_fetch() -> None:
    b = RoomBuilder()
    first = b.say(A, "one")
    second = b.say(A, "two")
    room = _room(b)
    changes = room.add({second: b.events[second]})
    assert changes.held == {second: [first]}
    assert second not in room
    _add_all(room, b)
    assert room.is_accepted(second)


def test_a_batch_may_arrive_in_any_order_inside() -> None:
    b = RoomBuilder()
    for i in range(5):
        b.say(A, str(i))
    room = _room(b)
    batch = {event_id: b.events[event_id] for event_id in reversed(b.order[1:])}
    changes = room.add(batch)
    assert changes.accepted == b.order[1:]
    assert not changes.held
    assert not changes.refused


def test_a_lying_depth_is_refused_and_its_descendants_held() -> None:
    b = RoomBuilder()
    good = b.say(A, "fine")
    room = _room(b)
    _add_all(room, b)
    liar = protocol.build_event(
        event_type="message",
        sender=A,
        room_id=b.room_id,
        content={"body": "deep"},
        prev_events=[good],
        auth_events=[],
        depth=99,
        origin_server_ts=1,
    )
    changes = room.add({"$" + "L" * 42 + "A": liar})
    assert changes.refused == {"$" + "L" * 42 + "A": RejectReason.BAD_DEPTH}


def test_events_of_another_room_are_refused() -> None:
    b, other = RoomBuilder(), RoomBuilder(creator=U)
    room = _room(b)
    foreign = other.order[1]
    assert room.add({foreign: other.events[foreign]}).refused == {foreign: RejectReason.WRONG_ROOM}
    assert room.add({other.create_id: other.events[other.create_id]}).refused == {
        other.create_id: RejectReason.WRONG_ROOM
    }


def test_adding_an_event_twice_changes_nothing() -> None:
    b = RoomBuilder()
    message = b.say(A, "once")
    room = _room(b)
    _add_all(room, b)
    again = room.add({message: b.events[message]})
    assert again.added == again.accepted == again.retracted == []


def test_a_late_ban_retracts_what_it_revokes_and_reports_it() -> None:
    b = RoomBuilder()
    b.join(X)
    tip = b.say(A, "before")
    ban = b.member(A, X, "ban", parents=[tip])
    x_message = b.say(X, "meanwhile", parents=[tip])
    room = _room(b)
    for event_id in b.order[1:]:
        if event_id != ban:
            room.add({event_id: b.events[event_id]})
    assert room.is_accepted(x_message)
    changes = room.add({ban: b.events[ban]})
    assert changes.accepted == [ban]
    assert changes.retracted == [x_message]
    assert room.rejection(x_message) is RejectReason.DEFEATED


def test_an_event_rejected_only_because_of_a_defeated_kick_is_reinstated() -> None:
    b = RoomBuilder()
    b.join(M), b.level(A, M, 50), b.join(U)
    tip = b.say(A, "tip")
    demote = b.level(A, M, 0, parents=[tip])
    kick = b.member(M, U, "leave", parents=[tip])
    after_kick = b.say(U, "still here?", parents=[kick])
    room = _room(b)
    for event_id in b.order[1:]:
        if event_id != demote:
            room.add({event_id: b.events[event_id]})
    assert room.rejection(after_kick) is RejectReason.NOT_JOINED
    changes = room.add({demote: b.events[demote]})
    assert kick in changes.retracted
    assert after_kick in changes.accepted
    assert room.rejection(kick) is RejectReason.DEFEATED


def test_new_events_follow_up_to_twenty_extremities_deepest_first() -> None:
    b = RoomBuilder()
    tip = b.say(A, "root")
    branches = [b.say(A, f"branch {i}", parents=[tip]) for i in range(25)]
    room = _room(b)
    _add_all(room, b)
    parents, depth = room.next_position()
    assert len(parents) == 20
    assert set(parents) < set(branches)
    assert parents == sorted(parents, reverse=True)
    assert depth == b.events[tip]["depth"] + 2
    assert sorted(room.forward_extremities()) == sorted(branches)


def test_auth_events_are_selected_from_the_room_state() -> None:
    b = RoomBuilder()
    b.join(M)
    level = b.level(A, M, 50)
    room = _room(b)
    _add_all(room, b)
    kick = {"type": "member", "sender": M, "state_key": U, "content": {"membership": "leave"}}
    selected = room.auth_events_for(kick)
    state = room.state()
    assert selected == [
        b.create_id,
        level,
        state[("member", M)],
    ]
    assert room.check_new(kick) is RejectReason.NOT_MEMBER


def test_a_room_whose_create_event_fails_cannot_be_held() -> None:
    create = protocol.build_event(
        event_type="create",
        sender=A,
        state_key="",
        content={"creator": A, "room_version": "2"},
        prev_events=[],
        auth_events=[],
        depth=0,
        origin_server_ts=0,
    )
    with pytest.raises(RemoteProtocolError):
        Room("$" + "C" * 42 + "A", create)


def test_the_timeline_is_the_canonical_order_of_accepted_events() -> None:
    b = RoomBuilder()
    tip = b.say(A, "tip")
    left, right = b.say(A, "left", parents=[tip]), b.say(X, "stranger", parents=[tip])
    room = _room(b)
    _add_all(room, b)
    order = room.canonical_order()
    assert order.index(tip) < min(order.index(left), order.index(right))
    assert right not in room.timeline()
    assert room.timeline() == [e for e in order if room.is_accepted(e)]


def test_redactions_take_effect_on_own_events_or_with_the_redact_level() -> None:
    b = RoomBuilder()
    b.join(M), b.level(A, M, 50), b.join(U)
    own = b.say(U, "oops")
    other = b.say(A, "mine")
    redact_own = b.send(U, "redaction", {"redacts": own})
    redact_other = b.send(U, "redaction", {"redacts": other})
    moderated = b.send(M, "redaction", {"redacts": own})
    unknown = b.send(M, "redaction", {"redacts": "$" + "Q" * 42 + "A"})
    stranger = b.send(X, "redaction", {"redacts": own})
    room = _room(b)
    _add_all(room, b)
    assert room.redaction_target(redact_own) == own
    assert room.redaction_target(redact_other) is None
    assert room.redaction_target(moderated) == own
    assert room.redaction_target(unknown) is None
    assert room.redaction_target(stranger) is None


def test_membership_before_an_event_follows_the_canonical_order_not_arrival() -> None:
    """client.md §5: who was in the room "when it was said" — the state of the accepted
    events before it in canonical order — whatever order the events arrived in."""
    b = RoomBuilder()
    joined = b.join(U)
    ban = b.member(A, U, "ban")
    said = b.say(A, "while u is banned", parents=[ban])  # concurrent with what follows
    later = b.say(A, "later", parents=[b.say(A, "meanwhile", parents=[ban])])
    unban = b.member(A, U, "unban", parents=[later])
    back = b.join(U, parents=[b.member(A, U, "invite", parents=[unban])])
    room = _room(b)
    late = {said}
    for event_id in b.order[1:]:
        if event_id not in late:
            room.add({event_id: b.events[event_id]})
    room.add({said: b.events[said]})  # arrives after u is back
    assert room.is_accepted(said)
    assert room.is_before_a_membership_change(said)
    assert room.membership_before(said, U) == "ban"
    assert room.membership_before(said, A) == "join"
    assert room.membership_before(joined, U) == "leave"  # a member event: the state before
    assert room.membership_before(back, U) == "invite"
    assert not room.is_before_a_membership_change(back)


def test_a_target_that_arrives_after_its_redaction_is_held_redacted() -> None:
    """The stored form does not depend on arrival order: a node that gets the redaction
    first holds the target redacted once it comes, like a node that had the target first."""
    b = RoomBuilder()
    base = b.say(A, "before")
    target = b.say(A, "secret", parents=[base])
    redaction = b.send(A, "redaction", {"redacts": target}, parents=[base])
    in_order, reversed_order = _room(b), _room(b)
    _add_all(in_order, b)
    for event_id in [e for e in b.order[1:] if e != target] + [target]:
        reversed_order.add({event_id: b.events[event_id]})
    assert reversed_order.is_accepted(redaction)
    assert reversed_order.event(target)["content"] == {}
    assert reversed_order.event(target) == in_order.event(target)
