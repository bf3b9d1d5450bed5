"""A verdict depends only on what the signature covers (rooms.md §3, §5 "Redactions").

The signature and the event id cover an event's redacted form (events.md §4.2, §5); a relay
may drop the rest, so an event and its redacted form must get the same verdict, and every
node keeps the same form: the redacted one when the whole content breaks its schema.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import JsonObject, redact_event, verify_event
from protocol.rooms import MappingState, RejectReason, Room, authorize, check_shape, kept_form
from tests.protocol.rooms.builder import RoomBuilder, signing_key
from tests.protocol.rooms.simulation import run
from tests.protocol.rooms.test_authorize_fuzz import events, states

A, M, U, X = "@a:a.example", "@m:m.example", "@u:u.example", "@x:x.example"


@given(events(), states())
def test_an_event_and_its_redacted_form_get_the_same_verdict(
    event: JsonObject, state: dict[tuple[str, str], JsonObject]
) -> None:
    redacted = redact_event(event)
    assert check_shape(redacted) == check_shape(event)
    assert authorize(redacted, MappingState(state)) == authorize(event, MappingState(state))
    assert authorize(kept_form(event), MappingState(state)) == authorize(event, MappingState(state))


def _outcome(room: Room, event_ids: list[str]) -> tuple[object, ...]:
    verdicts = {e: room.rejection(e) for e in event_ids}
    return room.timeline(), room.state(), verdicts, room.canonical_order()


@settings(max_examples=150)
@given(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=2, max_value=4))
def test_a_room_judges_redacted_forms_as_it_judges_whole_events(seed: int, servers: int) -> None:
    """Any mix of whole and redacted events (a wrong content hash, a redacting relay, a
    backfill after a redaction) gives the same verdicts, state and timeline."""
    federation = run(seed, servers=servers, steps=30)
    rng = random.Random(seed)
    ids = sorted(federation.events, key=lambda i: federation.events[i]["depth"])
    create_id = federation.create_id
    whole = Room(create_id, federation.events[create_id])
    mixed = Room(create_id, federation.events[create_id])
    for event_id in ids[1:]:
        event = federation.events[event_id]
        whole.add({event_id: event})
        mixed.add({event_id: redact_event(event) if rng.random() < 0.5 else event})
    assert _outcome(mixed, ids) == _outcome(whole, ids)


def _room(b: RoomBuilder) -> Room:
    room = Room(b.create_id, b.events[b.create_id])
    for event_id in b.order[1:]:
        room.add({event_id: b.events[event_id]})
    return room


def test_a_name_too_long_is_kept_redacted_and_holds_the_register() -> None:
    b = RoomBuilder()
    b.join(M), b.level(A, M, 50)
    name = b.send(M, "name", {"name": "n" * 256}, state_key="")
    room = _room(b)
    assert room.is_accepted(name)
    assert room.event(name) == redact_event(b.events[name])
    assert room.state_event(("name", "")) == {**redact_event(b.events[name]), "content": {}}


def test_a_message_with_a_bad_body_is_accepted_in_redacted_form() -> None:
    b = RoomBuilder()
    b.join(U)
    bad = b.say(U, "bell \u0007")
    room = _room(b)
    assert room.is_accepted(bad)
    assert room.event(bad)["content"] == {}


def test_a_member_event_with_a_long_display_name_keeps_its_membership() -> None:
    b = RoomBuilder()
    joined = b.send(U, "member", {"membership": "join", "displayname": "d" * 300}, state_key=U)
    room = _room(b)
    assert room.is_accepted(joined)
    assert room.event(joined)["content"] == {"membership": "join"}
    assert room.memberships()[U] == "join"


def test_a_membership_redaction_cannot_repair_is_still_bad_content() -> None:
    b = RoomBuilder()
    knock = b.send(U, "member", {"membership": "knock"}, state_key=U)
    room = _room(b)
    assert room.rejection(knock) is RejectReason.BAD_CONTENT


def test_a_redaction_that_takes_effect_leaves_the_name_register_empty_of_content() -> None:
    b = RoomBuilder()
    b.join(M), b.level(A, M, 50)
    name = b.send(M, "name", {"name": "the room"}, state_key="")
    said = b.say(M, "hello")
    b.send(M, "redaction", {"redacts": name})
    b.send(A, "redaction", {"redacts": said, "reason": "spam"})
    room = _room(b)
    before = {e: room.rejection(e) for e in b.order}
    assert room.state_event(("name", ""))["content"] == {}  # type: ignore[index]
    assert room.event(said)["content"] == {}
    later = _room_of_redacted_history(b)
    assert {e: later.rejection(e) for e in b.order} == before
    assert later.state() == room.state()


def _room_of_redacted_history(b: RoomBuilder) -> Room:
    """What a node that joins later gets from backfill: the redacted events."""
    redacted = {b.events[e]["content"].get("redacts") for e in b.order}
    room = Room(b.create_id, b.events[b.create_id])
    for event_id in b.order[1:]:
        event = b.events[event_id]
        room.add({event_id: redact_event(event) if event_id in redacted else event})
    return room


def test_a_redaction_by_someone_without_the_power_leaves_the_content() -> None:
    b = RoomBuilder()
    b.join(U), b.join(X)
    said = b.say(U, "mine")
    b.send(X, "redaction", {"redacts": said})
    room = _room(b)
    assert room.event(said)["content"] == {"body": "mine", "msgtype": "text"}


def test_a_node_creates_no_event_whose_content_breaks_its_schema() -> None:
    b = RoomBuilder()
    b.join(U)
    room = _room(b)
    parents, depth = room.next_position()
    base = {"sender": U, "room_id": b.room_id, "prev_events": parents, "depth": depth}
    assert room.check_new({**base, "type": "message", "content": {"body": "\u0000"}}) is (
        RejectReason.BAD_CONTENT
    )
    stranger = {**base, "sender": X, "type": "message", "content": {"body": "\u0000"}}
    assert room.check_new(stranger) is RejectReason.BAD_CONTENT  # step 3 before step 5
    keyed = {**base, "type": "message", "content": {"body": "\u0000"}, "state_key": ""}
    assert room.check_new(keyed) is RejectReason.BAD_STATE_KEY  # step 2 first
    assert room.check_new({**base, "type": "message", "content": {"body": "ok"}}) is None


def test_a_message_with_a_wrong_content_hash_is_accepted_in_redacted_form() -> None:
    """events.md §7 step 9: the receiver keeps the redacted form, which the room accepts
    like the whole event (it used to fail the `message` schema: no body)."""
    b = RoomBuilder()
    b.join(U)
    said = b.say(U, "original")
    tampered = {**b.events[said], "content": {"body": "altered", "msgtype": "text"}}
    keys = {"u.example": {"k": signing_key("u.example").verify_key}}
    verified = verify_event(tampered, keys)
    assert verified.redacted
    assert verified.event_id == said
    room = Room(b.create_id, b.events[b.create_id])
    for event_id in b.order[1:-1]:
        room.add({event_id: b.events[event_id]})
    changes = room.add({said: verified.event})
    assert changes.accepted == [said]
    assert room.event(said) == redact_event(b.events[said])
