"""Literal readings of spec/state.md definitions, for checking results (not for speed)."""

from __future__ import annotations

from collections.abc import Mapping

from protocol import JsonObject
from protocol.rooms import MappingState, Register, Room, authorize, is_power_event


def ancestors(events: Mapping[str, JsonObject]) -> dict[str, frozenset[str]]:
    """``anc(E)`` for every event, by walking ``prev_events`` (state.md §1)."""
    result: dict[str, frozenset[str]] = {}
    for event_id in sorted(events, key=lambda i: (events[i]["depth"], i)):
        parents = events[event_id]["prev_events"]
        found: set[str] = set(parents)
        for parent in parents:
            found |= result[parent]
        result[event_id] = frozenset(found)
    return result


def causal_state(
    event_id: str,
    events: Mapping[str, JsonObject],
    anc: Mapping[str, frozenset[str]],
    accepted: set[str],
) -> dict[Register, JsonObject]:
    """``CS(E)``: per register, the accepted ancestor writing it with the greatest
    ``(depth, event_id)`` (state.md §4)."""
    best: dict[Register, tuple[int, str]] = {}
    for ancestor in anc[event_id]:
        event = events[ancestor]
        if ancestor not in accepted or "state_key" not in event:
            continue
        register = (event["type"], event["state_key"])
        key = (event["depth"], ancestor)
        if register not in best or key > best[register]:
            best[register] = key
    return {register: events[key[1]] for register, key in best.items()}


def check_authority(room: Room, events: Mapping[str, JsonObject]) -> None:
    """Every accepted event is authorized against its causal state, and no accepted power
    event defeats an accepted concurrent one (state.md §6 step 3 at the end)."""
    anc = ancestors(events)
    accepted = {i for i in events if room.is_accepted(i)}
    states = {i: causal_state(i, events, anc, accepted) for i in accepted}
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
