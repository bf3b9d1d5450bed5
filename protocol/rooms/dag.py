"""The room's graph of events: structure, forward extremities, depth layers and cuts
(spec/state.md §1-§3, §6).

The graph only knows structure — who follows whom, at which depth. Verdicts live on the
nodes but are set by the resolution (``protocol.rooms.resolution``); the structural rules of
state.md §1 are enforced here, so a node never enters the graph before its parents or with
a depth that lies.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterator
from dataclasses import dataclass, field

from protocol.canonical_json import JsonObject
from protocol.events import MAX_PREV_EVENTS, EventType
from protocol.ids import validate_event_id
from protocol.rooms.reasons import RejectReason
from protocol.rooms.schemas import Register, is_power_event, register_of

__all__ = ["Node", "RoomGraph", "room_id_of"]


def room_id_of(create_id: str) -> str:
    """The room id derived from its create event's id (ids.md §4, events.md §5)."""
    return "!" + validate_event_id(create_id)[1:]


@dataclass(slots=True, eq=False)
class Node:
    """One event in the graph, with what the resolution needs to know about it."""

    event_id: str
    event: JsonObject
    depth: int
    parents: tuple[str, ...]
    register: Register | None
    is_power: bool
    accepted: bool = False
    reason: RejectReason | None = None
    """Why the event is rejected; ``None`` while accepted (or not yet judged)."""
    redacts_others: bool = False
    """For an accepted redaction: its sender could redact others' events in its causal state."""
    key: tuple[int, str] = field(init=False)
    """``(depth, event_id)``: the event's place in the canonical order (state.md §3)."""

    def __post_init__(self) -> None:
        self.key = (self.depth, self.event_id)


class RoomGraph:
    """The events of one room that passed the structural rules, by id and by depth."""

    def __init__(self, create_id: str, create_event: JsonObject) -> None:
        if create_event.get("type") != EventType.CREATE or create_event.get("prev_events"):
            raise ValueError("a room graph is rooted in a create event without parents")
        self.create_id = create_id
        self.room_id = room_id_of(create_id)
        self.direct = create_event.get("content", {}).get("direct") is True
        self.nodes: dict[str, Node] = {}
        self.extremities: set[str] = set()
        self._layers: dict[int, list[str]] = {}
        self.max_depth = 0
        self.cuts: list[Node] = []
        """Cut events in increasing depth (state.md §6); the root is always the first."""
        root = self._insert(create_id, create_event, depth=0)
        self.cuts.append(root)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self.nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def structural_problem(
        self, event_id: str, event: JsonObject, pending: set[str]
    ) -> RejectReason | list[str] | None:
        """state.md §1 for a new event: a reason to refuse it, the parents missing, or None.

        ``pending`` holds ids of events of the same batch that will be inserted before this
        one; a parent among them is not missing.
        """
        if event.get("type") == EventType.CREATE or event.get("room_id") != self.room_id:
            return RejectReason.WRONG_ROOM
        parents = event["prev_events"]
        if not parents or len(parents) > MAX_PREV_EVENTS:
            return RejectReason.WRONG_ROOM
        missing = [p for p in parents if p not in self.nodes and p not in pending]
        if missing:
            return missing
        return None

    def depth_is_right(self, event: JsonObject) -> bool:
        """state.md §1 rule 4: depth is one more than the deepest parent (parents known)."""
        parents = [self.nodes.get(p) for p in event["prev_events"]]
        if any(parent is None for parent in parents):
            return False  # a parent of the same batch that sorts after it: depth lies
        return bool(event["depth"] == 1 + max(p.depth for p in parents if p is not None))

    def covers_extremities(self, event: JsonObject) -> bool:
        """True if the event names every forward extremity: it is concurrent with nothing."""
        return self.extremities.issubset(event["prev_events"])

    def insert(self, event_id: str, event: JsonObject) -> Node:
        """Add an event that passed :meth:`structural_problem` and :meth:`depth_is_right`."""
        return self._insert(event_id, event, depth=event["depth"])

    def _insert(self, event_id: str, event: JsonObject, *, depth: int) -> Node:
        parents = tuple(event["prev_events"])
        power = is_power_event(event, direct=self.direct)
        node = Node(event_id, event, depth, parents, register_of(event), power)
        self.nodes[event_id] = node
        self.extremities.difference_update(parents)
        self.extremities.add(event_id)
        insort(self._layers.setdefault(depth, []), event_id)
        self.max_depth = max(self.max_depth, depth)
        return node

    def last_cut_below(self, depth: int) -> Node:
        """The deepest cut whose depth is below ``depth`` (the root at least)."""
        for cut in reversed(self.cuts):
            if cut.depth < depth:
                return cut
        return self.cuts[0]

    def from_depth(self, depth: int) -> list[Node]:
        """Every event of depth ``depth`` or more, in canonical order."""
        return [
            self.nodes[event_id]
            for layer in range(depth, self.max_depth + 1)
            for event_id in self._layers.get(layer, ())
        ]

    def canonical(self) -> Iterator[Node]:
        """Every event in canonical order ``(depth, event_id)`` (state.md §3)."""
        for layer in range(self.max_depth + 1):
            for event_id in self._layers.get(layer, ()):
                yield self.nodes[event_id]

    def sorted_extremities(self) -> list[str]:
        """Forward extremities by depth, then id, both descending (state.md §2)."""
        return sorted(self.extremities, key=lambda i: self.nodes[i].key, reverse=True)
