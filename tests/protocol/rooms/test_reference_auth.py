"""The reference `authorize` against rooms.md §3-§5, one table row per rule.

Content rows also say whether the whole content fits its schema (rooms.md §3): step 3 checks
only the content of the redacted form, and an event whose whole content breaks its schema is
kept — and judged — in its redacted form, with the same verdict.

Every reason code of rooms.md §7 appears at least once, and so does every allowed path:
each membership transition, the power checks, and the edges of the content schemas. Events
here are bare dicts (``authorize`` reads only `type`, `sender`, `state_key` and `content`);
a state is built from the events that hold its registers.
"""

from __future__ import annotations

from typing import Any

import pytest

from protocol import MAX_SAFE_INTEGER, JsonObject
from protocol.rooms import MappingState, content_fits, kept_form
from protocol.rooms import authorize as engine_authorize
from tests.protocol.rooms.reference import Register, authorize
from tests.protocol.rooms.reference_auth import content_ok, kept, redacted, state_key_ok


def reference_fits(event: JsonObject) -> bool:
    """rooms.md §3 read literally: the content fits, or the state key does not (then the
    state key decides, and the event is kept as it is)."""
    return not state_key_ok(event) or content_ok(event)


def _engine(event: JsonObject, state: dict[Register, JsonObject]) -> str | None:
    reason = engine_authorize(event, MappingState(state))
    return None if reason is None else reason.value


AUTHORIZERS = {"reference": authorize, "engine": _engine}

A = "@a:a.example"  # the creator
H = "@h:h.example"  # admin, 100
M = "@m:m.example"  # moderator, 50
N = "@n:n.example"  # moderator, 50
U = "@u:u.example"  # user, 0
I = "@i:i.example"  # invited  # noqa: E741
L = "@l:l.example"  # left
X = "@x:x.example"  # banned
Z = "@z:z.example"  # never seen
EVENT_ID = "$" + "A" * 43


def ev(event_type: str, sender: str, content: Any, state_key: str | None = None) -> JsonObject:
    """A bare event: just what the authorization check reads."""
    event: JsonObject = {"type": event_type, "sender": sender, "content": content}
    if state_key is not None:
        event["state_key"] = state_key
    return event


def member(sender: str, target: str, membership: Any, **extra: Any) -> JsonObject:
    """A `member` event by ``sender`` about ``target``."""
    return ev("member", sender, {"membership": membership, **extra}, target)


def level(sender: str, target: str, value: Any) -> JsonObject:
    """A per-user `power_levels` event."""
    return ev("power_levels", sender, {"level": value}, target)


def thresholds(sender: str, **content: Any) -> JsonObject:
    """A `power_levels` event with state key `""`."""
    return ev("power_levels", sender, content, "")


def msg(sender: str, body: Any = "hi", **extra: Any) -> JsonObject:
    """A `message` event."""
    return ev("message", sender, {"body": body, **extra})


def create(sender: str = A, **content: Any) -> JsonObject:
    """A `create` event; content defaults to a valid version-1 room by ``sender``."""
    return ev("create", sender, {"creator": sender, "room_version": "1", **content}, "")


def state(*events: JsonObject) -> dict[Register, JsonObject]:
    """A state whose registers hold ``events``."""
    return {(e["type"], e["state_key"]): e for e in events}


def room(
    *extra: JsonObject, join_rule: str | None = "public", direct: bool = False
) -> dict[Register, JsonObject]:
    """A room by A: H (100), M and N (50) and U joined; I invited; L left; X banned."""
    base = [
        create(A, direct=True) if direct else create(A),
        member(A, A, "join"),
        *(member(u, u, "join") for u in (H, M, N, U)),
        member(M, I, "invite"),
        member(L, L, "leave"),
        member(M, X, "ban"),
        level(A, H, 100),
        level(A, M, 50),
        level(A, N, 50),
    ]
    if join_rule is not None:
        base.append(ev("join_rules", A, {"join_rule": join_rule}, ""))
    return state(*base, *extra)


def direct_room(*members: JsonObject) -> dict[Register, JsonObject]:
    """A direct room by A, who joined; no join rule (so `invite`)."""
    return state(create(A, direct=True), member(A, A, "join"), *members)


PUBLIC = room()
INVITE_ONLY = room(join_rule="invite")
NO_JOIN_RULE = room(join_rule=None)

Case = tuple[str, dict[Register, JsonObject], JsonObject, str | None]
ContentCase = tuple[str, dict[Register, JsonObject], JsonObject, str | None, bool]
"""A :data:`Case` and whether the whole content fits its schema (rooms.md §3): when it does
not, the outcome is that of the redacted form, which every node keeps."""

CREATE: list[Case] = [
    ("create ok", {}, create(), None),
    ("create direct", {}, create(direct=True), None),
    ('create with a state key other than ""', {}, {**create(), "state_key": "x"}, "bad_state_key"),
    ("create direct not a boolean", {}, create(direct=1), "bad_content"),
    ("create unknown key", {}, create(name="x"), "bad_content"),
    ("create without room_version", {}, ev("create", A, {"creator": A}, ""), "bad_content"),
    ("create room_version not a string", {}, create(room_version=1), "bad_content"),
    ("create creator not a user id", {}, create(creator="alice"), "bad_content"),
    ("create creator is not sender", {}, create(creator=U), "not_creator"),
    ("create room version 2", {}, create(room_version="2"), "unsupported_room_version"),
    (
        "create: bad content before not_creator",
        {},
        create(creator=U, extra=1),
        "bad_content",
    ),
    ("create: not_creator before version", {}, create(creator=U, room_version="2"), "not_creator"),
]

STATE_KEYS: list[Case] = [
    ("message with a state key", PUBLIC, {**msg(U), "state_key": ""}, "bad_state_key"),
    (
        "redaction with a state key",
        PUBLIC,
        ev("redaction", U, {"redacts": EVENT_ID}, ""),
        "bad_state_key",
    ),
    (
        "encrypted with a state key",
        PUBLIC,
        ev("encrypted", U, {"algorithm": "x", "ciphertext": ""}, U),
        "bad_state_key",
    ),
    (
        "member without a state key",
        PUBLIC,
        ev("member", U, {"membership": "join"}),
        "bad_state_key",
    ),
    ("member for a non-user", PUBLIC, member(U, "u", "join"), "bad_state_key"),
    ("member for an uppercase user", PUBLIC, member(U, "@U:u.example", "join"), "bad_state_key"),
    ("name with a non-empty key", PUBLIC, ev("name", A, {"name": "n"}, "x"), "bad_state_key"),
    ("topic without a state key", PUBLIC, ev("topic", A, {"topic": "t"}), "bad_state_key"),
    (
        "join_rules keyed by a user",
        PUBLIC,
        ev("join_rules", A, {"join_rule": "public"}, A),
        "bad_state_key",
    ),
    (
        "power_levels keyed by a non-user",
        PUBLIC,
        ev("power_levels", A, {"level": 1}, "x"),
        "bad_state_key",
    ),
    ("state key checked before content", PUBLIC, {**msg(U, 5), "state_key": "k"}, "bad_state_key"),
    ("extension timeline event", PUBLIC, ev("org.example.poll", U, {"any": [1]}), None),
    ("extension content not an object", PUBLIC, ev("org.example.pin", M, "x", "anything"), None),
    ("extension state event", PUBLIC, ev("org.example.pin", M, {}, "anything"), None),
]

BODY_MAX = "a" * 100_000
CONTENT: list[ContentCase] = [
    ("body of 100,000 characters", PUBLIC, msg(U, BODY_MAX), None, True),
    ("body of 100,000 four-byte characters", PUBLIC, msg(U, "😀" * 100_000), None, True),
    ("body of 100,001 characters", PUBLIC, msg(U, BODY_MAX + "a"), None, False),
    ("body with NUL", PUBLIC, msg(U, "a\x00b"), None, False),
    ("body with carriage return", PUBLIC, msg(U, "a\r\nb"), None, True),
    ("body with U+001F", PUBLIC, msg(U, "\x1f"), None, False),
    ("body with tab and line feed", PUBLIC, msg(U, "a\tb\nc"), None, True),
    ("body with DEL and C1 controls", PUBLIC, msg(U, "\x7f\x85"), None, True),
    ("empty body", PUBLIC, msg(U, ""), None, True),
    ("body not a string", PUBLIC, msg(U, 1), None, False),
    ("message without body", PUBLIC, ev("message", U, {"msgtype": "text"}), None, False),
    ("msgtype empty", PUBLIC, msg(U, msgtype=""), None, False),
    ("msgtype 64 characters", PUBLIC, msg(U, msgtype="m" * 64), None, True),
    ("msgtype 65 characters", PUBLIC, msg(U, msgtype="m" * 65), None, False),
    ("message with other members", PUBLIC, msg(U, reply_to=EVENT_ID), None, True),
    ("member unknown key", PUBLIC, member(U, U, "join", avatar="x"), None, False),
    ("member unknown membership", PUBLIC, member(U, U, "knock"), "bad_content", False),
    ("member membership not a string", PUBLIC, member(U, U, ["join"]), "bad_content", False),
    ("member content not an object", PUBLIC, ev("member", U, [], U), "bad_content", False),
    (
        "join rule not a string",
        PUBLIC,
        ev("join_rules", A, {"join_rule": ["x"]}, ""),
        "bad_content",
        False,
    ),
    ("member displayname 255", PUBLIC, member(U, U, "join", displayname="d" * 255), None, True),
    ("member displayname 256", PUBLIC, member(U, U, "join", displayname="d" * 256), None, False),
    ("member reason 1024", PUBLIC, member(U, U, "leave", reason="r" * 1024), None, True),
    ("member reason 1025", PUBLIC, member(U, U, "leave", reason="r" * 1025), None, False),
    ("thresholds unknown key", PUBLIC, thresholds(A, users=1), None, False),
    ("threshold negative", PUBLIC, thresholds(A, ban=-1), "bad_content", False),
    ("threshold boolean", PUBLIC, thresholds(A, ban=True), "bad_content", False),
    ("threshold 2^53", PUBLIC, thresholds(A, ban=MAX_SAFE_INTEGER + 1), "bad_content", False),
    ("threshold 2^53-1", PUBLIC, thresholds(A, ban=MAX_SAFE_INTEGER), None, True),
    (
        "events 100 entries",
        PUBLIC,
        thresholds(A, events={f"x.{n}": 1 for n in range(100)}),
        None,
        True,
    ),
    (
        "events 101 entries",
        PUBLIC,
        thresholds(A, events={f"x.{n}": 1 for n in range(101)}),
        "bad_content",
        False,
    ),
    ("events not an object", PUBLIC, thresholds(A, events=[]), "bad_content", False),
    ("events level a string", PUBLIC, thresholds(A, events={"topic": "50"}), "bad_content", False),
    (
        "events key not an event type",
        PUBLIC,
        thresholds(A, events={"nodot": 1}),
        "bad_content",
        False,
    ),
    ("user level missing", PUBLIC, ev("power_levels", A, {}, U), "bad_content", False),
    ("user level extra key", PUBLIC, ev("power_levels", A, {"level": 1, "x": 1}, U), None, False),
    ("user level a string", PUBLIC, level(A, U, "10"), "bad_content", False),
    (
        "join_rules knock",
        PUBLIC,
        ev("join_rules", A, {"join_rule": "knock"}, ""),
        "bad_content",
        False,
    ),
    (
        "join_rules extra key",
        PUBLIC,
        ev("join_rules", A, {"join_rule": "invite", "x": 1}, ""),
        None,
        False,
    ),
    ("name 255", PUBLIC, ev("name", M, {"name": "n" * 255}, ""), None, True),
    ("name 256", PUBLIC, ev("name", M, {"name": "n" * 256}, ""), None, False),
    ("name missing", PUBLIC, ev("name", M, {}, ""), None, False),
    ("topic 4096", PUBLIC, ev("topic", M, {"topic": "t" * 4096}, ""), None, True),
    ("topic 4097", PUBLIC, ev("topic", M, {"topic": "t" * 4097}, ""), None, False),
    ("topic extra key", PUBLIC, ev("topic", M, {"topic": "t", "x": 1}, ""), None, False),
    (
        "encryption full",
        PUBLIC,
        ev(
            "encryption",
            M,
            {"algorithm": "a", "rotation_period_ms": 0, "rotation_period_msgs": 100},
            "",
        ),
        None,
        True,
    ),
    (
        "encryption empty algorithm",
        PUBLIC,
        ev("encryption", M, {"algorithm": ""}, ""),
        "bad_content",
        False,
    ),
    (
        "encryption algorithm 256",
        PUBLIC,
        ev("encryption", M, {"algorithm": "a" * 256}, ""),
        "bad_content",
        False,
    ),
    (
        "encryption negative period",
        PUBLIC,
        ev("encryption", M, {"algorithm": "a", "rotation_period_ms": -1}, ""),
        None,
        False,
    ),
    (
        "encryption extra key",
        PUBLIC,
        ev("encryption", M, {"algorithm": "a", "x": 1}, ""),
        None,
        False,
    ),
    (
        "redaction ok, other members",
        PUBLIC,
        ev("redaction", U, {"redacts": EVENT_ID, "x": 1}),
        None,
        True,
    ),
    (
        "redaction of a non-event-id",
        PUBLIC,
        ev("redaction", U, {"redacts": "$abc"}),
        "bad_content",
        False,
    ),
    (
        "redaction reason 1025",
        PUBLIC,
        ev("redaction", U, {"redacts": EVENT_ID, "reason": "r" * 1025}),
        None,
        False,
    ),
    (
        "encrypted ok",
        PUBLIC,
        ev("encrypted", U, {"algorithm": "m", "ciphertext": "", "x": 1}),
        None,
        True,
    ),
    ("encrypted without ciphertext", PUBLIC, ev("encrypted", U, {"algorithm": "m"}), None, False),
    (
        "encrypted empty algorithm",
        PUBLIC,
        ev("encrypted", U, {"algorithm": "", "ciphertext": "c"}),
        None,
        False,
    ),
    ("content checked before membership", PUBLIC, member(Z, Z, "knock"), "bad_content", False),
    ("only the redacted content before membership", PUBLIC, msg(Z, 5), "not_joined", False),
    ("message content not an object", PUBLIC, ev("message", U, "hi"), None, False),
    (
        "member displayname 300, joined",
        PUBLIC,
        member(U, U, "join", displayname="d" * 300),
        None,
        False,
    ),
    (
        "member displayname 300, stranger",
        INVITE_ONLY,
        member(Z, Z, "join", displayname="d" * 300),
        "not_invited",
        False,
    ),
    (
        "user level extra key above own",
        PUBLIC,
        ev("power_levels", M, {"level": 51, "x": 1}, U),
        "level_above_own",
        False,
    ),
    (
        "thresholds with a level",
        PUBLIC,
        ev("power_levels", A, {"level": 1}, ""),
        "bad_content",
        False,
    ),
    (
        "user level with a threshold",
        PUBLIC,
        ev("power_levels", A, {"level": 1, "ban": 1}, U),
        "bad_content",
        False,
    ),
    ("create content is all kept", {}, create(extra=1), "bad_content", False),
]

MEMBERSHIP: list[Case] = [
    # join
    ("join public room", PUBLIC, member(Z, Z, "join"), None),
    ("join for someone else", PUBLIC, member(U, Z, "join"), "wrong_target"),
    ("banned user joins", PUBLIC, member(X, X, "join"), "banned"),
    (
        "creator joins invite-only",
        state(create(), ev("join_rules", A, {"join_rule": "invite"}, "")),
        member(A, A, "join"),
        None,
    ),
    ("join invite-only uninvited", INVITE_ONLY, member(Z, Z, "join"), "not_invited"),
    ("join without a join rule", NO_JOIN_RULE, member(Z, Z, "join"), "not_invited"),
    ("accept invitation", INVITE_ONLY, member(I, I, "join"), None),
    ("joined changes display name", INVITE_ONLY, member(U, U, "join", displayname="u"), None),
    ("left user rejoins invite-only", INVITE_ONLY, member(L, L, "join"), "not_invited"),
    ("unbanned user joins public", room(member(M, X, "unban")), member(X, X, "join"), None),
    (
        "unbanned user joins invite-only",
        room(member(M, X, "unban"), join_rule="invite"),
        member(X, X, "join"),
        "not_invited",
    ),
    # invite
    ("invite", PUBLIC, member(U, Z, "invite"), None),
    ("invite again", PUBLIC, member(U, I, "invite"), None),
    ("invite a left user", PUBLIC, member(U, L, "invite"), None),
    ("invite by a non-member", PUBLIC, member(L, Z, "invite"), "not_joined"),
    ("invite by the invited", PUBLIC, member(I, Z, "invite"), "not_joined"),
    (
        "invite below threshold",
        room(thresholds(A, invite=10)),
        member(U, Z, "invite"),
        "insufficient_power",
    ),
    ("invite a banned user", PUBLIC, member(U, X, "invite"), "target_banned"),
    ("invite a joined user", PUBLIC, member(U, M, "invite"), "already_joined"),
    ("invite oneself", PUBLIC, member(U, U, "invite"), "already_joined"),
    ("direct room second member", direct_room(), member(A, U, "invite"), None),
    ("direct room re-invite", direct_room(member(A, U, "invite")), member(A, U, "invite"), None),
    (
        "direct room third member",
        direct_room(member(A, U, "invite")),
        member(A, Z, "invite"),
        "room_full",
    ),
    (
        "direct room third after a leave",
        direct_room(member(U, U, "leave")),
        member(A, Z, "invite"),
        None,
    ),
    # leave by the target
    ("leave", PUBLIC, member(U, U, "leave"), None),
    ("decline invitation", PUBLIC, member(I, I, "leave"), None),
    ("leave when left", PUBLIC, member(L, L, "leave"), "not_member"),
    ("leave when never joined", PUBLIC, member(Z, Z, "leave"), "not_member"),
    ("banned user leaves", PUBLIC, member(X, X, "leave"), "not_member"),
    # kick
    ("kick", PUBLIC, member(M, U, "leave"), None),
    ("withdraw invitation", PUBLIC, member(M, I, "leave"), None),
    ("kick by a non-member", room(member(M, M, "leave")), member(M, U, "leave"), "not_joined"),
    ("kick a banned user", PUBLIC, member(M, X, "leave"), "target_banned"),
    ("kick a left user", PUBLIC, member(M, L, "leave"), "not_member"),
    ("kick: not_member before power", PUBLIC, member(U, L, "leave"), "not_member"),
    ("kick with level 0", PUBLIC, member(U, I, "leave"), "insufficient_power"),
    ("kick a peer", PUBLIC, member(M, N, "leave"), "target_not_lower"),
    ("kick a superior", PUBLIC, member(M, H, "leave"), "target_not_lower"),
    ("kick the creator", PUBLIC, member(H, A, "leave"), "target_not_lower"),
    (
        "kick threshold lowered",
        room(thresholds(A, kick=0)),
        member(U, I, "leave"),
        "target_not_lower",
    ),
    # ban
    ("ban a joined user", PUBLIC, member(M, U, "ban"), None),
    ("ban a stranger", PUBLIC, member(M, Z, "ban"), None),
    ("ban a banned user", PUBLIC, member(N, X, "ban"), None),
    ("ban by a non-member", PUBLIC, member(L, U, "ban"), "not_joined"),
    ("ban by the banned", PUBLIC, member(X, U, "ban"), "not_joined"),
    ("ban with level 0", PUBLIC, member(U, Z, "ban"), "insufficient_power"),
    ("ban a peer", PUBLIC, member(M, N, "ban"), "target_not_lower"),
    ("ban oneself", PUBLIC, member(M, M, "ban"), "target_not_lower"),
    ("ban the creator", PUBLIC, member(H, A, "ban"), "target_not_lower"),
    # unban
    ("unban", PUBLIC, member(M, X, "unban"), None),
    ("unban by a non-member", PUBLIC, member(L, X, "unban"), "not_joined"),
    ("unban a joined user", PUBLIC, member(M, U, "unban"), "not_banned"),
    ("unban: not_banned before power", PUBLIC, member(U, L, "unban"), "not_banned"),
    ("unban with level 0", PUBLIC, member(U, X, "unban"), "insufficient_power"),
    ("unban a banned peer", room(level(A, X, 50)), member(M, X, "unban"), "target_not_lower"),
    ("unbanned counts as left", room(member(M, X, "unban")), member(M, X, "unban"), "not_banned"),
]

ACTING: list[Case] = [
    ("message by a member", PUBLIC, msg(U), None),
    ("message by a stranger", PUBLIC, msg(Z), "not_joined"),
    ("message by the invited", PUBLIC, msg(I), "not_joined"),
    ("message by the left", PUBLIC, msg(L), "not_joined"),
    ("message by the banned", PUBLIC, msg(X), "not_joined"),
    ("message by the unbanned", room(member(M, X, "unban")), msg(X), "not_joined"),
    (
        "message below events_default",
        room(thresholds(A, events_default=10)),
        msg(U),
        "insufficient_power",
    ),
    (
        "message below events[message]",
        room(thresholds(A, events={"message": 60})),
        msg(M),
        "insufficient_power",
    ),
    (
        "events[] overrides events_default",
        room(thresholds(A, events_default=60, events={"message": 0})),
        msg(U),
        None,
    ),
    ("redaction by a member", PUBLIC, ev("redaction", U, {"redacts": EVENT_ID}), None),
    ("topic at level 0", PUBLIC, ev("topic", U, {"topic": "t"}, ""), "insufficient_power"),
    ("topic at state_default", PUBLIC, ev("topic", M, {"topic": "t"}, ""), None),
    (
        "extension state below state_default",
        PUBLIC,
        ev("org.example.pin", U, {}, "k"),
        "insufficient_power",
    ),
    (
        "events[power_levels] for a user level",
        room(thresholds(A, events={"power_levels": 60})),
        level(M, U, 10),
        "insufficient_power",
    ),
    # step 7: thresholds
    ("mod lowers kick", PUBLIC, thresholds(M, kick=40), None),
    ("mod raises ban to own level", PUBLIC, thresholds(M, ban=50), None),
    ("mod raises ban above own", PUBLIC, thresholds(M, ban=60), "level_above_own"),
    (
        "mod lowers a threshold above own",
        room(thresholds(A, ban=60)),
        thresholds(M, ban=50),
        "level_above_own",
    ),
    (
        "mod keeps a threshold above own",
        room(thresholds(A, ban=60)),
        thresholds(M, ban=60, kick=10),
        None,
    ),
    (
        "mod drops a threshold above own",
        room(thresholds(A, ban=60)),
        thresholds(M, kick=10),
        "level_above_own",
    ),
    ("mod adds events entry at own", PUBLIC, thresholds(M, events={"topic": 50}), None),
    (
        "mod adds events entry above own",
        PUBLIC,
        thresholds(M, events={"topic": 51}),
        "level_above_own",
    ),
    (
        "mod removes events entry above own",
        room(thresholds(A, events={"topic": 100})),
        thresholds(M),
        "level_above_own",
    ),
    ("mod changes users_default to own", PUBLIC, thresholds(M, users_default=50), None),
    ("user sets thresholds", PUBLIC, thresholds(U, kick=0), "insufficient_power"),
    (
        "creator sets any threshold",
        PUBLIC,
        thresholds(A, ban=MAX_SAFE_INTEGER, events={"x.y": 9}),
        None,
    ),
    # step 8: direct rooms
    (
        "direct room made public",
        direct_room(),
        ev("join_rules", A, {"join_rule": "public"}, ""),
        "direct_room",
    ),
    (
        "direct room stays invite",
        direct_room(),
        ev("join_rules", A, {"join_rule": "invite"}, ""),
        None,
    ),
    ("public non-direct room", INVITE_ONLY, ev("join_rules", M, {"join_rule": "public"}, ""), None),
    # step 9: a user's level
    ("mod sets a user's level", PUBLIC, level(M, U, 50), None),
    ("mod sets a stranger's level", PUBLIC, level(M, Z, 10), None),
    ("mod sets a user above own", PUBLIC, level(M, U, 51), "level_above_own"),
    ("mod demotes a peer", PUBLIC, level(M, N, 0), "target_not_lower"),
    ("mod demotes a superior", PUBLIC, level(M, H, 0), "target_not_lower"),
    ("admin demotes the creator", PUBLIC, level(H, A, 0), "creator_immutable"),
    ("creator sets own level", PUBLIC, level(A, A, 5), "creator_immutable"),
    ("creator sets a user to 2^53-1", PUBLIC, level(A, U, MAX_SAFE_INTEGER), None),
    ("mod lowers own level", PUBLIC, level(M, M, 10), None),
    ("mod keeps own level", PUBLIC, level(M, M, 50), None),
    ("mod raises own level", PUBLIC, level(M, M, 51), "level_above_own"),
    ("user lowers own level", PUBLIC, level(U, U, 0), "insufficient_power"),
    ("banned mod sets a level", room(member(H, M, "ban")), level(M, U, 10), "not_joined"),
]


def _cases(*tables: list[Case]) -> list[Any]:
    return [pytest.param(s, e, want, id=name) for table in tables for name, s, e, want in table]


AUTH_CONTENT: list[Case] = [(name, s, e, want) for name, s, e, want, _ in CONTENT]
FITTERS = {"reference": reference_fits, "engine": content_fits}
KEEPERS = {"reference": kept, "engine": kept_form}


@pytest.mark.parametrize("checker", sorted(AUTHORIZERS))
@pytest.mark.parametrize(("state_", "event", "expected"), _cases(CREATE))
def test_create_event(
    checker: str, state_: dict[Register, JsonObject], event: JsonObject, expected: str | None
) -> None:
    """rooms.md §5 step 1: a create event is judged on its content alone."""
    assert AUTHORIZERS[checker](event, state_) == expected


@pytest.mark.parametrize("checker", sorted(AUTHORIZERS))
@pytest.mark.parametrize(("state_", "event", "expected"), _cases(STATE_KEYS, AUTH_CONTENT))
def test_state_key_and_content_schema(
    checker: str, state_: dict[Register, JsonObject], event: JsonObject, expected: str | None
) -> None:
    """rooms.md §5 steps 2-3 with the tables of §2 and §3: the content of the redacted form."""
    assert AUTHORIZERS[checker](event, state_) == expected


@pytest.mark.parametrize("checker", sorted(FITTERS))
@pytest.mark.parametrize(
    ("event", "fits"), [pytest.param(e, fits, id=name) for name, _, e, _, fits in CONTENT]
)
def test_whole_content_schema(checker: str, event: JsonObject, fits: bool) -> None:
    """rooms.md §3: whether the whole content fits, which decides the form nodes keep."""
    assert FITTERS[checker](event) is fits


@pytest.mark.parametrize("checker", sorted(KEEPERS))
@pytest.mark.parametrize(
    ("state_", "event", "expected", "fits"),
    [pytest.param(s, e, want, fits, id=name) for name, s, e, want, fits in CONTENT],
)
def test_the_form_every_node_keeps_gets_the_same_verdict(
    checker: str,
    state_: dict[Register, JsonObject],
    event: JsonObject,
    expected: str | None,
    fits: bool,
) -> None:
    """rooms.md §3: an event whose content breaks its schema is kept redacted, and judged
    the same as the event received whole; both implementations keep the same form."""
    form = KEEPERS[checker](event)
    assert form == (event if fits else redacted(event))
    assert form == KEEPERS["engine" if checker == "reference" else "reference"](event)
    assert AUTHORIZERS[checker](form, state_) == expected


@pytest.mark.parametrize("checker", sorted(AUTHORIZERS))
@pytest.mark.parametrize(("state_", "event", "expected"), _cases(MEMBERSHIP))
def test_membership_transition(
    checker: str, state_: dict[Register, JsonObject], event: JsonObject, expected: str | None
) -> None:
    """rooms.md §5 step 4, each membership rule's checks in order."""
    assert AUTHORIZERS[checker](event, state_) == expected


@pytest.mark.parametrize("checker", sorted(AUTHORIZERS))
@pytest.mark.parametrize(("state_", "event", "expected"), _cases(ACTING))
def test_acting_and_power(
    checker: str, state_: dict[Register, JsonObject], event: JsonObject, expected: str | None
) -> None:
    """rooms.md §5 steps 5-10: membership to act, power to send, thresholds, user levels."""
    assert AUTHORIZERS[checker](event, state_) == expected


def test_every_reason_code_of_rooms_md_is_exercised() -> None:
    """Each code of rooms.md §7 is the expected outcome of at least one row above."""
    codes = {
        "bad_state_key", "bad_content", "not_creator", "unsupported_room_version",
        "wrong_target", "banned", "not_invited", "not_joined", "insufficient_power",
        "target_banned", "already_joined", "not_member", "not_banned", "target_not_lower",
        "level_above_own", "creator_immutable", "direct_room", "room_full",
    }  # fmt: skip
    seen = {
        want
        for table in (CREATE, STATE_KEYS, AUTH_CONTENT, MEMBERSHIP, ACTING)
        for *_, want in table
    }
    assert codes <= seen


def test_no_create_event_means_no_creator() -> None:
    """A reading: without `(create, "")` in the state nobody has infinite level."""
    assert authorize(member(A, A, "join"), {}) == "not_invited"


def test_unknown_protocol_type_is_outside_the_rules() -> None:
    """Types without a dot outside events.md §4.1 never reach auth (events.md §2.1 step 4)."""
    with pytest.raises(ValueError, match="not an event type"):
        authorize(ev("poll", U, {}), PUBLIC)
