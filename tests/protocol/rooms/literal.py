"""Checks of a resolved room against the spec's definitions, computed literally by the
reference (``tests.protocol.rooms.reference``) rather than by the engine under test."""

from __future__ import annotations

from collections.abc import Mapping

from protocol import JsonObject
from protocol.rooms import MappingState, Room, authorize, is_power_event
from tests.protocol.rooms import reference

ancestors = reference.ancestors


def check_authority(room: Room, events: Mapping[str, JsonObject]) -> None:
    """Every accepted event is authorized against its causal state, and no accepted power
    event defeats an accepted concurrent one (state.md §6 step 3 at the end)."""
    anc = ancestors(events)
    accepted = {i for i in events if room.is_accepted(i)}
    states = {
        i: {r: events[w] for r, w in reference.causal_state(i, events, anc, accepted).items()}
        for i in accepted
    }
    for event_id in accepted:
        reason = authorize(events[event_id], MappingState(states[event_id]))
        assert reason is None, (event_id, reason)
    direct = events[room.create_id]["content"].get("direct") is True
    powers = [q for q in accepted if is_power_event(events[q], direct=direct)]
    for q in powers:
        register = (events[q]["type"], events[q]["state_key"])
        for e in accepted:
            if e == q or q in anc[e] or e in anc[q]:
                continue
            substituted = {**states[e], register: events[q]}
            assert authorize(events[e], MappingState(substituted)) is None, (q, e)
