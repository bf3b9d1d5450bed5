"""The authorization check is total: any event against any state of valid events gives a
verdict, never an exception — and the engine and the literal reference give the same one."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from protocol import JsonObject
from protocol.rooms import MappingState, RejectReason, authorize
from tests.protocol.rooms import reference
from tests.protocol.strategies import json_values

USERS = ["@a:a.example", "@m:m.example", "@u:u.example", "@x:x.example"]
TYPES = ["member", "power_levels", "join_rules", "name", "topic", "encryption", "redaction",
         "message", "encrypted", "create", "org.example.thing"]  # fmt: skip

memberships = st.sampled_from(["invite", "join", "leave", "ban", "unban"])
levels = st.sampled_from([0, 10, 50, 100])


@st.composite
def contents(draw: st.DrawFn, event_type: str) -> Any:
    """Mostly plausible content for the type, sometimes arbitrary JSON."""
    if draw(st.integers(0, 4)) == 0:
        return draw(json_values)
    plausible: dict[str, Any] = {
        "member": {"membership": draw(memberships)},
        "power_levels": draw(
            st.just({"level": draw(levels)})
            | st.fixed_dictionaries(
                {},
                optional={
                    "kick": levels,
                    "ban": levels,
                    "users_default": levels,
                    "events": st.dictionaries(st.sampled_from(TYPES), levels, max_size=2),
                },
            )
        ),
        "join_rules": {"join_rule": draw(st.sampled_from(["public", "invite", "knock"]))},
        "message": {"body": draw(st.text(max_size=5))},
        "redaction": {"redacts": "$" + "A" * 43},
        "create": {"creator": draw(st.sampled_from(USERS)), "room_version": "1"},
    }
    return plausible.get(event_type, {})


@st.composite
def events(draw: st.DrawFn) -> JsonObject:
    """An event of any type, with a state key that may or may not fit it."""
    event_type = draw(st.sampled_from(TYPES))
    event: JsonObject = {
        "type": event_type,
        "sender": draw(st.sampled_from(USERS)),
        "content": draw(contents(event_type)),
    }
    state_key = draw(st.none() | st.just("") | st.sampled_from(USERS) | st.text(max_size=3))
    if state_key is not None:
        event["state_key"] = state_key
    return event


@st.composite
def states(draw: st.DrawFn) -> dict[tuple[str, str], JsonObject]:
    """A state of valid, accepted-looking events: a create, then some state events."""
    state: dict[tuple[str, str], JsonObject] = {
        ("create", ""): {
            "type": "create",
            "sender": USERS[0],
            "state_key": "",
            "content": {"creator": USERS[0], "room_version": "1", "direct": draw(st.booleans())},
        },
    }
    for user in USERS:
        if draw(st.booleans()):
            state[("member", user)] = {
                "type": "member",
                "sender": user,
                "state_key": user,
                "content": {"membership": draw(memberships)},
            }
        if draw(st.booleans()):
            state[("power_levels", user)] = {
                "type": "power_levels",
                "sender": USERS[0],
                "state_key": user,
                "content": {"level": draw(levels)},
            }
    if draw(st.booleans()):
        state[("join_rules", "")] = {
            "type": "join_rules",
            "sender": USERS[0],
            "state_key": "",
            "content": {"join_rule": draw(st.sampled_from(["public", "invite"]))},
        }
    return state


@given(events(), states())
def test_authorize_gives_a_verdict_for_any_event_and_agrees_with_the_reference(
    event: JsonObject, state: dict[tuple[str, str], JsonObject]
) -> None:
    ours = authorize(event, MappingState(state))
    assert ours is None or isinstance(ours, RejectReason)
    if event["type"] == "create" or event["type"] in TYPES:
        theirs = reference.authorize(event, state)
        assert (None if ours is None else ours.value) == theirs
