"""A second, deliberately literal implementation of room rules, written from the spec alone.

It is a test oracle, not an engine: every definition of spec/rooms.md §2-§5 (content
schemas, power levels, the authorization check) and spec/state.md §1-§6 (the graph, the
canonical order, causal state, defeat, cuts, segments and the pass/defeat/exclusion loop) is
transcribed as directly as possible, recomputed from scratch on every call. Clarity beats
speed here: quadratic and worse is fine for the rooms tests use.

Readings of the spec where the text leaves a choice (see the report that came with this
file; each is also noted where it is applied):

* rooms.md §3 says `creator` is "a user id, equal to the event's sender" inside the schema,
  while §5 step 1 has a separate code `not_creator` for that. The schema checks only that it
  is a user id; the equality gives `not_creator` (otherwise that code could never occur).
* rooms.md §3 `events` maps "an event type" to a level: its keys must be valid event types
  in the sense of events.md §2.1 step 4 (1-255 characters, a protocol type or containing a
  dot).
* rooms.md §5 step 7: an added or removed `events` entry compares a value with "no value";
  only the values that exist must be at most the sender's level.
* With no `create` event in the state there is no creator: nobody has infinite level.
* state.md does not say what happens to a room whose `create` event is rejected (rooms.md §1
  says such a room must not be judged): :func:`resolve` raises :class:`UnjudgeableRoomError`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from protocol import JsonObject
from tests.protocol.rooms.reference_auth import (
    DEFAULT_THRESHOLDS,
    POWER_THRESHOLDS,
    Level,
    Register,
    RoomView,
    authorize,
    kept,
)

__all__ = [
    "DEFAULT_THRESHOLDS", "POWER_THRESHOLDS", "Register", "Resolution", "RoomView",
    "UnjudgeableRoomError", "ancestors", "authorize", "canonical_order", "causal_state",
    "check_graph", "cuts", "is_power_event", "register_of", "resolve", "segments",
]  # fmt: skip


# --- state.md §1-§4 the graph, its order and causal state ------------------------------------


class UnjudgeableRoomError(Exception):
    """The room's create event is rejected: rooms.md §1 says its events are not judged."""


def check_graph(events: Mapping[str, JsonObject]) -> str:
    """Assert state.md §1's structural rules hold for ``events``; return the root's id."""
    roots = [i for i, e in events.items() if not e["prev_events"]]
    assert len(roots) == 1, f"exactly one root expected, got {len(roots)}"
    root = roots[0]
    assert events[root]["type"] == "create", "the root is the create event"
    assert events[root]["depth"] == 0, "bad_depth"
    room_id = "!" + root[1:]
    for event_id, event in events.items():
        if event_id == root:
            continue
        assert event["type"] != "create", "a create event is the root of its own room only"
        assert 1 <= len(event["prev_events"]) <= 20
        assert event["room_id"] == room_id, "wrong_room"
        assert all(p in events for p in event["prev_events"]), "missing_parents"
        depth = 1 + max(events[p]["depth"] for p in event["prev_events"])
        assert event["depth"] == depth, "bad_depth"
    return root


def canonical_order(events: Mapping[str, JsonObject]) -> list[str]:
    """state.md §3: `L`, the events sorted by `(depth, event_id)`."""
    return sorted(events, key=lambda i: (events[i]["depth"], i))


def ancestors(events: Mapping[str, JsonObject]) -> dict[str, frozenset[str]]:
    """state.md §1: `anc(E)` for every event — parents, their parents, and so on."""
    result: dict[str, frozenset[str]] = {}
    for event_id in canonical_order(events):  # parents come first in L
        found: set[str] = set()
        for parent in events[event_id]["prev_events"]:
            found.add(parent)
            found |= result[parent]
        result[event_id] = frozenset(found)
    return result


def register_of(event: JsonObject) -> Register | None:
    """rooms.md §1: a state event's register `(type, state_key)`; None for timeline events."""
    if "state_key" not in event:
        return None
    return (event["type"], event["state_key"])


def causal_state(
    event_id: str,
    events: Mapping[str, JsonObject],
    anc: Mapping[str, frozenset[str]],
    accepted: set[str],
) -> dict[Register, str]:
    """state.md §4 `CS(E)`: per register, the accepted ancestor writing it with max (depth, id)."""
    return _latest_writers(anc[event_id] & accepted, events)


def _latest_writers(ids: Iterable[str], events: Mapping[str, JsonObject]) -> dict[Register, str]:
    state: dict[Register, str] = {}
    for event_id in ids:
        register = register_of(events[event_id])
        if register is None:
            continue
        held = state.get(register)
        if held is None or (events[held]["depth"], held) < (events[event_id]["depth"], event_id):
            state[register] = event_id
    return state


def _as_events(
    state: Mapping[Register, str], events: Mapping[str, JsonObject]
) -> dict[Register, JsonObject]:
    return {register: events[i] for register, i in state.items()}


# --- state.md §5-§6 defeat, cuts, segments and resolution -------------------------------------


def is_power_event(event: JsonObject, direct: bool) -> bool:
    """state.md §5: ban, unban, kick (leave for another), any power_levels or join_rules;
    in a direct room also invite."""
    if event["type"] in ("power_levels", "join_rules"):
        return True
    if event["type"] != "member":
        return False
    membership = event["content"].get("membership")
    if membership in ("ban", "unban") or (direct and membership == "invite"):
        return True
    return bool(membership == "leave" and event.get("state_key") != event["sender"])


def cuts(events: Mapping[str, JsonObject], anc: Mapping[str, frozenset[str]]) -> list[str]:
    """state.md §6: the events every other event is an ancestor or a descendant of, in L order.

    Computed from the definition; the spec's shortcut ("the only event of its depth, with as
    many ancestors as there are events of smaller depth") is asserted to agree.
    """
    found = []
    for k in canonical_order(events):
        is_cut = all(e == k or e in anc[k] or k in anc[e] for e in events)
        depth = events[k]["depth"]
        alone = sum(1 for e in events.values() if e["depth"] == depth) == 1
        smaller = sum(1 for e in events.values() if e["depth"] < depth)
        assert is_cut == (alone and len(anc[k]) == smaller), "state.md §6 shortcut disagrees"
        if is_cut:
            found.append(k)
    return found


def segments(events: Mapping[str, JsonObject], cut_ids: Sequence[str]) -> list[list[str]]:
    """state.md §6: each cut with the events of greater depth below the next cut, in L order."""
    order = canonical_order(events)
    result: list[list[str]] = []
    for n, k in enumerate(cut_ids):
        low = events[k]["depth"]
        high = events[cut_ids[n + 1]]["depth"] if n + 1 < len(cut_ids) else math.inf
        result.append([i for i in order if i == k or low < events[i]["depth"] < high])
    return result


@dataclass(frozen=True)
class Resolution:
    """The result of state.md §6 for one set of events."""

    verdicts: dict[str, str | None]
    """Every event's verdict: None when accepted, else its reason code (or `defeated`)."""
    state: dict[Register, str]
    """The room state (state.md §4): register -> id of the accepted event holding it."""
    timeline: list[str]
    """The accepted events in canonical order `L` (state.md §3)."""


@dataclass
class _Resolver:
    events: Mapping[str, JsonObject]
    anc: Mapping[str, frozenset[str]]
    order: list[str]
    direct: bool

    def concurrent(self, a: str, b: str) -> bool:
        """`a ∥ b`: distinct and neither an ancestor of the other."""
        return a != b and a not in self.anc[b] and b not in self.anc[a]

    def cs(self, event_id: str, verdicts: Mapping[str, str | None]) -> dict[Register, str]:
        accepted = {i for i in self.anc[event_id] if verdicts[i] is None}
        return causal_state(event_id, self.events, self.anc, accepted)

    def run_pass(
        self, segment: list[str], excluded: set[str], decided: Mapping[str, str | None]
    ) -> dict[str, str | None]:
        """§6 step 2: walk the segment in L order; return verdicts so far, this pass included."""
        verdicts = dict(decided)
        for event_id in segment:
            if event_id in excluded:
                verdicts[event_id] = "defeated"
                continue
            state = _as_events(self.cs(event_id, verdicts), self.events)
            verdicts[event_id] = authorize(self.events[event_id], state)
        return verdicts

    def defeats(self, q: str, e: str, verdicts: Mapping[str, str | None]) -> bool:
        """§5: does `q` defeat `e` (both accepted, q a power event, q ∥ e, auth fails)?"""
        if verdicts[q] is not None or verdicts[e] is not None:
            return False
        if not is_power_event(self.events[q], self.direct) or not self.concurrent(q, e):
            return False
        register = register_of(self.events[q])
        assert register is not None
        state = self.cs(e, verdicts)
        state[register] = q
        return authorize(self.events[e], _as_events(state, self.events)) is not None

    def rank(self, q: str, verdicts: Mapping[str, str | None]) -> Level:
        """§5: `level(Q.sender)` in `CS(Q)`; infinity for the creator."""
        state = _as_events(self.cs(q, verdicts), self.events)
        return RoomView(state).level(self.events[q]["sender"])

    def resolve_segment(
        self, segment: list[str], decided: Mapping[str, str | None]
    ) -> dict[str, str | None]:
        """§6 steps 1-5 for one segment, earlier segments already decided."""
        excluded: set[str] = set()
        while True:
            verdicts = self.run_pass(segment, excluded, decided)
            pairs = [(q, e) for q in segment for e in segment if self.defeats(q, e, verdicts)]
            if not pairs:
                return verdicts
            # §6 step 4: ready pairs rest on no defeated state event.
            revoked = {e for _, e in pairs if "state_key" in self.events[e]}
            ready = {e for q, e in pairs if not (revoked & (self.anc[q] | {q} | self.anc[e]))}
            if ready:
                assert not ready <= excluded, "X must grow at every repetition"
                excluded = excluded | ready
                continue
            # §6 step 5: revocations resting on each other.
            defeaters = {q for q, _ in pairs}
            best = min(defeaters, key=lambda q: (-self.rank(q, verdicts), self.order.index(q)))
            grown = excluded | {e for q, e in pairs if q == best}
            assert grown > excluded, "X must grow at every repetition"
            excluded = grown


def resolve(events: Mapping[str, JsonObject]) -> Resolution:
    """state.md §3-§6: every event's verdict, the room state and the timeline.

    ``events`` maps event ids to events forming a structurally valid graph (asserted). Each
    is judged in the form every node keeps (rooms.md §3): redacted if its content breaks
    its schema.
    """
    events = {event_id: kept(event) for event_id, event in events.items()}
    root = check_graph(events)
    anc = ancestors(events)
    order = canonical_order(events)
    direct = events[root]["content"].get("direct") is True
    resolver = _Resolver(events, anc, order, direct)
    verdicts: dict[str, str | None] = {}
    for segment in segments(events, cuts(events, anc)):
        verdicts = resolver.resolve_segment(segment, verdicts)
        if verdicts[root] is not None:
            raise UnjudgeableRoomError(f"the create event is rejected: {verdicts[root]}")
    accepted = [i for i in order if verdicts[i] is None]
    return Resolution(
        verdicts={i: verdicts[i] for i in order},
        state=_latest_writers(accepted, events),
        timeline=accepted,
    )
