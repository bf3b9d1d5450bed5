"""Vectors for spec/rooms.md (authorization) and spec/state.md (resolution)."""

from __future__ import annotations

from typing import Any

from protocol import JsonObject, redact_event
from protocol.rooms import MappingState, authorize, content_fits
from tests.conformance.kith_adapter import ADAPTER
from tests.protocol.rooms.builder import RoomBuilder
from tests.protocol.rooms.simulation import run

A, M, N, U, X = "@a:a.example", "@m:m.example", "@n:n.example", "@u:u.example", "@x:x.example"


def _event(sender: str, kind: str, content: JsonObject, state_key: str | None = None) -> JsonObject:
    event: JsonObject = {"type": kind, "sender": sender, "content": content}
    if state_key is not None:
        event["state_key"] = state_key
    return event


def _member(sender: str, target: str, membership: str) -> JsonObject:
    return _event(sender, "member", {"membership": membership}, target)


def _level(sender: str, target: str, level: int) -> JsonObject:
    return _event(sender, "power_levels", {"level": level}, target)


CREATE = _event(A, "create", {"creator": A, "room_version": "1"}, "")
DIRECT = _event(A, "create", {"creator": A, "room_version": "1", "direct": True}, "")
ROOM = [
    CREATE,
    _member(A, A, "join"),
    _member(M, M, "join"),
    _level(A, M, 50),
    _member(U, U, "join"),
]
PUBLIC = [*ROOM, _event(A, "join_rules", {"join_rule": "public"}, "")]

AUTH_CASES: list[tuple[str, list[JsonObject], JsonObject]] = [
    ("create by its creator", [], CREATE),
    (
        "create naming someone else",
        [],
        _event(U, "create", {"creator": A, "room_version": "1"}, ""),
    ),
    (
        "create of an unknown version",
        [],
        _event(A, "create", {"creator": A, "room_version": "9"}, ""),
    ),
    (
        "create with an extra member",
        [],
        _event(A, "create", {"creator": A, "room_version": "1", "x": 1}, ""),
    ),
    ("member may send a message", ROOM, _event(U, "message", {"body": "hi"})),
    ("a stranger may not send", ROOM, _event(X, "message", {"body": "hi"})),
    ("message with a state key", ROOM, _event(U, "message", {"body": "hi"}, "")),
    ("message with a control character", ROOM, _event(U, "message", {"body": "a\u0007b"})),
    ("message body of 100,000 characters", ROOM, _event(U, "message", {"body": "x" * 100_000})),
    ("message body of 100,001 characters", ROOM, _event(U, "message", {"body": "x" * 100_001})),
    ("join of an invite-only room without invitation", ROOM, _member(X, X, "join")),
    ("join of a public room", PUBLIC, _member(X, X, "join")),
    ("join for someone else", PUBLIC, _member(U, X, "join")),
    ("join after an invitation", [*ROOM, _member(U, X, "invite")], _member(X, X, "join")),
    ("banned user joins a public room", [*PUBLIC, _member(A, X, "ban")], _member(X, X, "join")),
    ("invite of a banned user", [*ROOM, _member(A, X, "ban")], _member(U, X, "invite")),
    ("invite of a joined user", ROOM, _member(U, M, "invite")),
    ("invite by a non-member", ROOM, _member(X, N, "invite")),
    (
        "invite below the invite level",
        [*ROOM, _event(A, "power_levels", {"invite": 10}, "")],
        _member(U, X, "invite"),
    ),
    ("leave", ROOM, _member(U, U, "leave")),
    ("leave when not a member", ROOM, _member(X, X, "leave")),
    ("kick by a moderator", ROOM, _member(M, U, "leave")),
    ("kick by a user without the kick level", ROOM, _member(U, M, "leave")),
    ("kick of a peer", [*ROOM, _level(A, N, 50), _member(N, N, "join")], _member(M, N, "leave")),
    ("kick of a banned user", [*ROOM, _member(A, X, "ban")], _member(M, X, "leave")),
    ("kick of someone not in the room", ROOM, _member(M, X, "leave")),
    ("ban of a stranger in advance", ROOM, _member(M, X, "ban")),
    ("ban of the creator", ROOM, _member(M, A, "ban")),
    ("unban", [*ROOM, _member(M, X, "ban")], _member(M, X, "unban")),
    ("unban of someone not banned", ROOM, _member(M, X, "unban")),
    ("member event with a bad state key", ROOM, _member(U, "not-a-user", "leave")),
    (
        "member event with an unknown membership",
        ROOM,
        _event(U, "member", {"membership": "knock"}, U),
    ),
    ("promotion up to one's own level", ROOM, _level(M, U, 50)),
    ("promotion above one's own level", ROOM, _level(M, U, 51)),
    ("demotion of a peer", [*ROOM, _level(A, N, 50)], _level(M, N, 0)),
    ("lowering one's own level", ROOM, _level(M, M, 10)),
    ("setting the creator's level", ROOM, _level(A, A, 10)),
    ("power levels by a user below state_default", ROOM, _level(U, U, 0)),
    ("threshold change within one's level", ROOM, _event(A, "power_levels", {"kick": 60}, "")),
    ("threshold change above one's level", ROOM, _event(M, "power_levels", {"kick": 60}, "")),
    (
        "events map entry above one's level",
        ROOM,
        _event(M, "power_levels", {"events": {"topic": 70}}, ""),
    ),
    ("topic by a user below state_default", ROOM, _event(U, "topic", {"topic": "t"}, "")),
    ("topic by a moderator", ROOM, _event(M, "topic", {"topic": "t"}, "")),
    ("topic too long", ROOM, _event(M, "topic", {"topic": "t" * 4097}, "")),
    ("name with a state key", ROOM, _event(M, "name", {"name": "n"}, "x")),
    (
        "per-type level lets users set the topic",
        [*ROOM, _event(A, "power_levels", {"events": {"topic": 0}}, "")],
        _event(U, "topic", {"topic": "t"}, ""),
    ),
    ("extension timeline event", ROOM, _event(U, "org.example.poll", {"anything": [1]})),
    ("extension state event needs state_default", ROOM, _event(U, "org.example.poll", {}, "x")),
    ("encryption without algorithm", ROOM, _event(M, "encryption", {}, "")),
    (
        "encryption with a bad rotation period, kept redacted",
        ROOM,
        _event(M, "encryption", {"algorithm": "a", "rotation_period_ms": -1}, ""),
    ),
    ("redaction by a member", ROOM, _event(U, "redaction", {"redacts": "$" + "A" * 43})),
    (
        "redaction with a reason too long, kept redacted",
        ROOM,
        _event(U, "redaction", {"redacts": "$" + "A" * 43, "reason": "r" * 1025}),
    ),
    ("redaction without redacts", ROOM, _event(U, "redaction", {"reason": "r"})),
    ("a redacted name event", ROOM, _event(M, "name", {}, "")),
    ("a redacted name event by a user below state_default", ROOM, _event(U, "name", {}, "")),
    ("name too long, kept redacted", ROOM, _event(M, "name", {"name": "n" * 256}, "")),
    ("a redacted message", ROOM, _event(U, "message", {})),
    ("a redacted message by a stranger", ROOM, _event(X, "message", {})),
    (
        "encrypted without ciphertext, kept redacted",
        ROOM,
        _event(U, "encrypted", {"algorithm": "m"}),
    ),
    (
        "join with a display name too long, kept redacted",
        PUBLIC,
        _event(X, "member", {"membership": "join", "displayname": "d" * 300}, X),
    ),
    (
        "join with a display name too long, not invited",
        ROOM,
        _event(X, "member", {"membership": "join", "displayname": "d" * 300}, X),
    ),
    (
        "user level with an extra member, kept redacted",
        ROOM,
        _event(A, "power_levels", {"level": 10, "note": "x"}, U),
    ),
    (
        "join rule with an extra member, kept redacted",
        ROOM,
        _event(A, "join_rules", {"join_rule": "public", "note": "x"}, ""),
    ),
    ("thresholds with a user's level", ROOM, _event(A, "power_levels", {"level": 10}, "")),
    (
        "direct room: third member",
        [DIRECT, _member(A, A, "join"), _member(A, U, "invite")],
        _member(A, X, "invite"),
    ),
    ("direct room: second member", [DIRECT, _member(A, A, "join")], _member(A, U, "invite")),
    (
        "direct room: public join rule",
        [DIRECT, _member(A, A, "join")],
        _event(A, "join_rules", {"join_rule": "public"}, ""),
    ),
]


def auth_vectors() -> dict[str, Any]:
    """Events checked against a state (rooms.md §5), and whether the whole content fits its
    schema (rooms.md §3: if not, every node keeps the redacted form, with the same outcome)."""
    cases = []
    for name, state_events, event in AUTH_CASES:
        state = {(e["type"], e["state_key"]): e for e in state_events}
        reason = authorize(event, MappingState(state))
        assert authorize(redact_event(event), MappingState(state)) == reason
        cases.append(
            {
                "name": name,
                "state": state_events,
                "event": event,
                "outcome": None if reason is None else reason.value,
                "content_fits": content_fits(event),
            }
        )
    return {"cases": cases}


def _scenarios() -> list[tuple[str, RoomBuilder]]:
    scenarios = []
    b = RoomBuilder()
    b.join(M), b.level(A, M, 50), b.join(X)
    m1 = b.say(M, "m1")
    b.say(M, "m2"), b.member(A, X, "ban"), b.say(X, "forked", parents=[m1])
    scenarios.append(("a banned user forking from before the ban is rejected", b))

    b = RoomBuilder()
    b.join(M), b.level(A, M, 50), b.join(U)
    before = b.say(U, "u1")
    demote = b.level(A, M, 0)
    b.member(M, U, "leave", parents=[before])
    b.say(U, "u2", parents=[demote])
    scenarios.append(("a demoted moderator's backdated kick removes nothing", b))

    b = RoomBuilder()
    b.join(M), b.level(A, M, 50)
    tip = b.join(X)
    b.member(M, X, "leave", parents=[tip])
    b.member(A, X, "ban", parents=[tip])
    b.say(A, "after")
    scenarios.append(("a kick concurrent with a ban: the ban stands", b))

    b = RoomBuilder()
    b.join(M), b.level(A, M, 50)
    tip = b.join(U)
    b.send(M, "topic", {"topic": "one"}, state_key="", parents=[tip])
    b.send(A, "topic", {"topic": "two"}, state_key="", parents=[tip])
    b.level(A, U, 10, parents=[tip])
    b.level(M, N, 20, parents=[tip])
    b.say(U, "merge")
    scenarios.append(("concurrent topics converge; concurrent levels of two users both apply", b))

    b = RoomBuilder()
    tip = b.say(A, "before")
    b.send(A, "join_rules", {"join_rule": "invite"}, state_key="", parents=[tip])
    b.join(X, parents=[tip])
    scenarios.append(("a join racing a switch to invite-only is rejected", b))

    b = RoomBuilder()
    b.join(M), b.level(A, M, 50)
    b.send(M, "name", {"name": "the first name"}, state_key="")
    name = b.send(M, "name", {"name": "the second name"}, state_key="")
    said = b.say(M, "hello")
    b.join(U)
    for event_id in (name, said):  # as served after a redaction, or by a relay that drops content
        b.events[event_id] = redact_event(b.events[event_id])
    scenarios.append(("a redacted name event is accepted and holds the name", b))

    b = RoomBuilder()
    b.join(M), b.level(A, M, 50)
    b.send(M, "name", {"name": "n" * 256}, state_key="")
    b.say(M, "bell \u0007")
    b.send(U, "member", {"membership": "join", "displayname": "d" * 300}, state_key=U)
    b.send(U, "member", {"membership": "knock"}, state_key=U)
    b.say(U, "after")
    scenarios.append(("events whose content breaks its schema count in redacted form", b))
    return scenarios


def _resolution_case(
    name: str, create_id: str, events: dict[str, JsonObject], order: list[str]
) -> dict[str, Any]:
    arrival = [(event_id, events[event_id]) for event_id in [create_id, *order]]
    return {"name": name, "events": [list(pair) for pair in arrival], **ADAPTER.resolve(arrival)}


def resolution_vectors() -> dict[str, Any]:
    """Rooms in an arrival order, with every verdict, the state and the timeline."""
    cases = [_resolution_case(name, b.create_id, b.events, b.order[1:]) for name, b in _scenarios()]
    for seed in (3, 11, 42):
        federation = run(seed, servers=3, steps=25)
        replica = federation.replicas[seed % 3]
        order = [e for e in replica.added_order if e != federation.create_id]
        cases.append(
            _resolution_case(
                f"random federation history {seed}", federation.create_id, federation.events, order
            )
        )
    return {"cases": cases}
