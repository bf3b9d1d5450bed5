"""A room as one node holds it: its graph, every event's verdict and the room state,
kept up to date incrementally as events arrive in any causal order (spec/state.md §8).

``Room.add`` takes a batch of verified events and returns what changed: which events entered
the graph, which became accepted (to deliver, in canonical order, so causally), which were
accepted before and are not any more (to retract), which were refused and which are held for
missing parents (to fetch). The result after any sequence of batches is the one state.md §6
defines for the set of events added: the tests hold this implementation to a literal
second implementation of the spec.

The room holds every event in the form all nodes keep (rooms.md §3, §5 "Redactions"): an
event whose content breaks its schema in its redacted form from the start, and the target
of a redaction that takes effect in its redacted form from then on.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from protocol.canonical_json import JsonObject
from protocol.errors import ErrorCode, RemoteProtocolError
from protocol.events import MAX_PREV_EVENTS, EventType, redact_event
from protocol.rooms.auth import authorize, select_auth_events
from protocol.rooms.dag import Node, RoomGraph
from protocol.rooms.power import StateView
from protocol.rooms.reasons import RejectReason
from protocol.rooms.resolution import judge, resolve_window
from protocol.rooms.schemas import Register, check_shape, content_fits

__all__ = ["Changes", "Room", "kept_form"]

_MEMBER = EventType.MEMBER.value
_REDACTION = EventType.REDACTION.value


def kept_form(event: JsonObject) -> JsonObject:
    """The form every node keeps of a verified event: its redacted form if its content
    breaks its schema (rooms.md §3), so no node stores or judges content others may lack."""
    return event if content_fits(event) else redact_event(event)


@dataclass
class Changes:
    """What one :meth:`Room.add` changed."""

    added: list[str] = field(default_factory=list)
    """Events that entered the graph, in canonical order (accepted or rejected)."""
    accepted: list[str] = field(default_factory=list)
    """Events accepted now and not before — new ones and reinstated ones — canonical order."""
    retracted: list[str] = field(default_factory=list)
    """Events accepted before and rejected now (state.md §6)."""
    refused: dict[str, RejectReason] = field(default_factory=dict)
    """Events that broke a structural rule (state.md §1) and were not added."""
    held: dict[str, list[str]] = field(default_factory=dict)
    """Events not added yet, with the parents to fetch first."""


class _StateIndex:
    """Accepted writers of every register, ordered by ``(depth, event_id)``.

    The room state is the last writer of each register; the state before a cut of depth
    ``d`` is the last writer of depth below ``d``, which is how a window is resolved again
    without copying any state.
    """

    def __init__(self, nodes: Mapping[str, Node]) -> None:
        self._nodes = nodes
        self.writers: dict[Register, list[tuple[int, str]]] = {}
        self._member_ids: set[str] = set()
        self.last_member_write: tuple[int, str] = (0, "")
        """The greatest ``(depth, event_id)`` of an accepted member event."""

    # StateView
    def get(self, register: Register) -> JsonObject | None:
        writers = self.writers.get(register)
        return self._nodes[writers[-1][1]].event if writers else None

    def member_ids(self) -> Iterable[str]:
        return self._member_ids

    def event_id_at(self, register: Register) -> str | None:
        writers = self.writers.get(register)
        return writers[-1][1] if writers else None

    # BaseState
    def commit(self, nodes: Iterable[Node]) -> None:
        for node in nodes:
            if node.accepted and node.register is not None:
                insort(self.writers.setdefault(node.register, []), node.key)
                if node.register[0] == _MEMBER:
                    self._member_ids.add(node.register[1])
                    self.last_member_write = max(self.last_member_write, node.key)

    def forget_from(self, nodes: Iterable[Node], depth: int) -> None:
        """Drop the writes of ``nodes`` (all of depth ``depth`` or more) before re-resolving."""
        registers = {node.register for node in nodes if node.register is not None}
        for register in registers:
            writers = self.writers.get(register)
            if writers:
                del writers[bisect_left(writers, (depth, "")) :]
        if any(register[0] == _MEMBER for register in registers):
            self.last_member_write = max(
                (w[-1] for r, w in self.writers.items() if r[0] == _MEMBER and w),
                default=(0, ""),
            )


class Room:
    """One room's events, verdicts and state (spec/rooms.md, spec/state.md)."""

    def __init__(self, create_id: str, create_event: JsonObject) -> None:
        """Start from the room's verified create event; refuse a room no one can judge."""
        self._graph = RoomGraph(create_id, create_event)
        self._index = _StateIndex(self._graph.nodes)
        self._redactions_waiting: dict[str, list[str]] = {}
        """Accepted redactions by the id of a target not in the graph yet."""
        root = self._graph.nodes[create_id]
        reason = authorize(create_event, self._index)
        if reason is not None:
            raise RemoteProtocolError(
                ErrorCode.BAD_EVENT, f"the room's create event is rejected: {reason.value}"
            )
        root.accepted = True
        self._index.commit([root])

    @property
    def room_id(self) -> str:
        """``!`` + the create event's reference hash."""
        return self._graph.room_id

    @property
    def create_id(self) -> str:
        """The id of the room's create event."""
        return self._graph.create_id

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._graph

    def __len__(self) -> int:
        return len(self._graph)

    # --- adding events ------------------------------------------------------------------

    def add(self, events: Mapping[str, JsonObject]) -> Changes:
        """Add verified events (by id) in any order; resolve; report what changed.

        Each event is held in the form every node keeps (:func:`kept_form`), which the
        verdicts do not depend on.
        """
        changes = Changes()
        graph = self._graph
        batch = sorted(
            (
                (event["depth"], event_id, kept_form(event))
                for event_id, event in events.items()
                if event_id not in graph
            ),
            key=lambda item: (item[0], item[1]),
        )
        pending = {event_id for _, event_id, _ in batch}
        inserted: list[Node] = []
        fast = len(batch) == 1
        for _, event_id, event in batch:
            problem = graph.structural_problem(event_id, event, pending)
            if problem is None and not graph.depth_is_right(event):
                # A parent still pending sorts after its child only if the child claims a
                # depth no greater than the parent's: a lie either way.
                problem = RejectReason.BAD_DEPTH
            if problem is not None:
                pending.discard(event_id)
                if isinstance(problem, list):
                    changes.held[event_id] = problem
                else:
                    changes.refused[event_id] = problem
                continue
            fast = fast and graph.covers_extremities(event)
            inserted.append(graph.insert(event_id, event))
        if not inserted:
            return changes
        if fast:
            self._append(inserted[0], changes)
        else:
            self._resolve_from(min(node.depth for node in inserted), set(inserted), changes)
        self._apply_redactions(changes.accepted)
        self._apply_waiting_redactions(node.event_id for node in inserted)
        return changes

    def _apply_redactions(self, accepted: Iterable[str]) -> None:
        """rooms.md §5 "Redactions": the target of a redaction accepted now, if it takes
        effect, is held in its redacted form from now on (no verdict changes). A redaction
        of an event not in the graph yet waits for it."""
        nodes = self._graph.nodes
        for event_id in accepted:
            if nodes[event_id].event["type"] == _REDACTION:
                target = self.redaction_target(event_id)
                if target is not None:
                    nodes[target].event = redact_event(nodes[target].event)
                    continue
                redacts = nodes[event_id].event["content"].get("redacts")
                if type(redacts) is str and redacts not in nodes:
                    self._redactions_waiting.setdefault(redacts, []).append(event_id)

    def _apply_waiting_redactions(self, inserted: Iterable[str]) -> None:
        """A target that arrives after its redaction is held redacted as well, as on a node
        that had it first: the stored form does not depend on the order of arrival."""
        nodes = self._graph.nodes
        for event_id in inserted:
            for redaction_id in self._redactions_waiting.pop(event_id, ()):
                if self.redaction_target(redaction_id) == event_id:
                    nodes[event_id].event = redact_event(nodes[event_id].event)

    def _append(self, node: Node, changes: Changes) -> None:
        """state.md §8: an event concurrent with nothing is a cut, checked once."""
        judge(node, self._index)
        self._index.commit([node])
        self._graph.cuts.append(node)
        changes.added.append(node.event_id)
        if node.accepted:
            changes.accepted.append(node.event_id)

    def _resolve_from(self, depth: int, new: set[Node], changes: Changes) -> None:
        """Resolve the window from the last cut above ``depth`` to the end again."""
        graph = self._graph
        base_cut = graph.last_cut_below(depth)
        window = graph.from_depth(base_cut.depth)
        before = {node.event_id: node.accepted for node in window if node not in new}
        self._index.forget_from(window, base_cut.depth)
        cuts = resolve_window(window, self._index)
        del graph.cuts[graph.cuts.index(base_cut) :]
        graph.cuts.extend(cuts)
        for node in window:
            was = before.get(node.event_id)
            if was is None:
                changes.added.append(node.event_id)
            if node.accepted and not was:
                changes.accepted.append(node.event_id)
            elif was and not node.accepted:
                changes.retracted.append(node.event_id)

    # --- reading ------------------------------------------------------------------------

    def rejection(self, event_id: str) -> RejectReason | None:
        """Why an event of the graph is rejected, or ``None`` if it is accepted."""
        node = self._graph.nodes[event_id]
        return None if node.accepted else node.reason

    def is_accepted(self, event_id: str) -> bool:
        """True if the event is in the graph and accepted."""
        node = self._graph.nodes.get(event_id)
        return node is not None and node.accepted

    def event(self, event_id: str) -> JsonObject:
        """An event of the graph (accepted or not)."""
        return self._graph.nodes[event_id].event

    def depth(self, event_id: str) -> int:
        """An event's depth."""
        return self._graph.nodes[event_id].depth

    def redaction_target(self, redaction_id: str) -> str | None:
        """The event a redaction takes effect on, if it does now (rooms.md §5 "Redactions").

        ``None`` if the redaction is rejected, its target is not in the graph (yet), or its
        sender may not redact the target's sender's events.
        """
        node = self._graph.nodes[redaction_id]
        target_id = node.event["content"].get("redacts")
        target = self._graph.nodes.get(target_id) if node.accepted else None
        if target is None:
            return None
        same_sender = target.event["sender"] == node.event["sender"]
        return target_id if same_sender or node.redacts_others else None

    def state(self) -> dict[Register, str]:
        """The room state: each register's event id (state.md §4)."""
        return {r: w[-1][1] for r, w in self._index.writers.items() if w}

    def state_view(self) -> StateView:
        """The room state as a :class:`StateView` (to read levels and memberships)."""
        return self._index

    def state_event(self, register: Register) -> JsonObject | None:
        """The event holding ``register`` in the room state."""
        return self._index.get(register)

    def membership_before(self, event_id: str, user_id: str) -> str:
        """The user's membership in the state the accepted events before ``event_id`` in
        canonical order make (``leave`` when none names the user): whether they were in the
        room "when it was said", wherever the event arrived (client.md §5)."""
        writers = self._index.writers.get((_MEMBER, user_id))
        if not writers:
            return "leave"
        index = bisect_left(writers, self._graph.nodes[event_id].key)
        if index == 0:
            return "leave"
        membership: str = self._graph.nodes[writers[index - 1][1]].event["content"]["membership"]
        return membership

    def is_before_a_membership_change(self, event_id: str) -> bool:
        """Whether an accepted member event comes after ``event_id`` in canonical order: only
        then can who was in the room at the event differ from who is in it now."""
        return self._graph.nodes[event_id].key < self._index.last_member_write

    def memberships(self) -> dict[str, str]:
        """Every user the room state names, with their membership (``join``, ``leave``…)."""
        found: dict[str, str] = {}
        for user_id in self._index.member_ids():
            held = self._index.get((_MEMBER, user_id))
            if held is not None:
                found[user_id] = held["content"]["membership"]
        return found

    def timeline(self) -> list[str]:
        """Accepted events in canonical order (state.md §3)."""
        return [node.event_id for node in self._graph.canonical() if node.accepted]

    def canonical_order(self) -> list[str]:
        """Every event of the graph in canonical order."""
        return [node.event_id for node in self._graph.canonical()]

    # --- creating events ----------------------------------------------------------------

    def forward_extremities(self) -> list[str]:
        """The graph's forward extremities, deepest first (state.md §2)."""
        return self._graph.sorted_extremities()

    def next_position(self) -> tuple[list[str], int]:
        """``prev_events`` and ``depth`` for a new event (state.md §2)."""
        parents = self._graph.sorted_extremities()[:MAX_PREV_EVENTS]
        return parents, 1 + max(self._graph.nodes[p].depth for p in parents)

    def auth_events_for(self, event: JsonObject) -> list[str]:
        """``auth_events`` for a new event, from the room state (rooms.md §6)."""
        return select_auth_events(event, self._index.event_id_at)

    def check_new(self, event: JsonObject) -> RejectReason | None:
        """Would ``event``, created on top of every extremity, be allowed? (before signing)

        Stricter than :func:`authorize` on content: a node creates no event whose whole
        content breaks its schema (rooms.md §3) — ``bad_content``, after the state key.
        """
        shape = check_shape(event)
        if shape is None and not content_fits(event):
            shape = RejectReason.BAD_CONTENT
        return shape if shape is not None else authorize(event, self._index)
