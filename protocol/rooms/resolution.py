"""Resolution: every event's verdict from the set of events alone (spec/state.md §4-§6).

``resolve_window`` decides a *window* — the events from some cut to the end of the canonical
order — segment by segment. Within a segment it runs the spec's loop: a pass that accepts
every event authorized against its causal state and not excluded, then the search for
defeats (a concurrent power event that would have made an accepted event unauthorized), the
exclusion of everything the highest-ranked defeater defeats, and another pass, until no
defeat remains.

Conflicts are settled in causal order: defeats that rest on no other defeat are applied
together, and rank decides only between revocations that depend on each other.

Causal state within a window is read through :class:`_CausalView`: for a register, the
latest accepted writer among the event's ancestors in the window (ancestry as bitsets, one
bit per window event), else the state before the segment, which the caller's ``base`` holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Final, Protocol

from protocol.canonical_json import JsonObject
from protocol.events import EventType
from protocol.rooms.auth import authorize, may_redact_others, rank
from protocol.rooms.dag import Node
from protocol.rooms.power import StateView
from protocol.rooms.reasons import RejectReason
from protocol.rooms.schemas import Register

__all__ = ["BaseState", "judge", "resolve_window"]

_MEMBER: Final = EventType.MEMBER.value
_POWER: Final = EventType.POWER_LEVELS.value
_JOIN_RULES: Final = (EventType.JOIN_RULES.value, "")
_ROOM_POWER: Final = (_POWER, "")


class BaseState(StateView, Protocol):
    """The state before the segment being resolved, which grows as segments are decided."""

    def commit(self, nodes: Iterable[Node]) -> None:
        """Record the accepted state events of a decided segment."""


class _Segment:
    """The events of one segment and what every pass over them shares."""

    def __init__(self, nodes: Sequence[Node], first: int, ancestors: list[int]) -> None:
        self.nodes = nodes
        self.first = first  # window position of nodes[0]
        self.ancestors = ancestors  # window-wide: bit j set = window event j is an ancestor
        self.writers: dict[Register, list[int]] = {}
        self.readers: dict[Register, list[int]] = {}
        self.reads_everything: list[int] = []
        for offset, node in enumerate(nodes):
            position = first + offset
            if node.register is not None:
                self.writers.setdefault(node.register, []).append(position)
            reads = _registers_read(node.event)
            if reads is None:
                self.reads_everything.append(position)
            else:
                for register in reads:
                    self.readers.setdefault(register, []).append(position)

    def node(self, position: int) -> Node:
        return self.nodes[position - self.first]

    def concurrent(self, a: int, b: int) -> bool:
        return not (self.ancestors[a] >> b) & 1 and not (self.ancestors[b] >> a) & 1


def _registers_read(event: JsonObject) -> set[Register] | None:
    """Registers ``authorize`` may read for ``event`` (``None``: all member registers too).

    Only a power event's register can defeat; an event whose check does not read that
    register cannot be defeated by it, which keeps the defeat search small.
    """
    sender = event["sender"]
    reads = {_ROOM_POWER, (_POWER, sender), (_MEMBER, sender)}
    event_type = event["type"]
    target = event.get("state_key")
    if event_type == EventType.MEMBER:
        membership = event["content"].get("membership")
        if membership == "invite":
            return None  # a direct room's invite counts every member
        if membership == "join":
            reads.add(_JOIN_RULES)
    if target and event_type in (EventType.MEMBER, EventType.POWER_LEVELS):
        reads.update({(_MEMBER, target), (_POWER, target)})
    return reads


class _CausalView:
    """``CS(E)`` for the event at ``position`` of a segment (state.md §4)."""

    __slots__ = ("_base", "_position", "_segment", "_substitute")

    def __init__(
        self,
        segment: _Segment,
        position: int,
        base: StateView,
        substitute: tuple[Register, JsonObject] | None = None,
    ) -> None:
        self._segment = segment
        self._position = position
        self._base = base
        self._substitute = substitute

    def get(self, register: Register) -> JsonObject | None:
        if self._substitute is not None and self._substitute[0] == register:
            return self._substitute[1]
        segment = self._segment
        ancestors = segment.ancestors[self._position]
        for writer in reversed(segment.writers.get(register, ())):
            if writer < self._position and (ancestors >> writer) & 1:
                node = segment.node(writer)
                if node.accepted:
                    return node.event
        return self._base.get(register)

    def member_ids(self) -> Iterable[str]:
        users = set(self._base.member_ids())
        users.update(key for kind, key in self._segment.writers if kind == _MEMBER)
        return users


def judge(node: Node, state: StateView) -> None:
    """Set a node's verdict from the check against ``state`` (its causal state)."""
    reason = authorize(node.event, state)
    node.accepted, node.reason = reason is None, reason
    if reason is None and node.event["type"] == EventType.REDACTION:
        node.redacts_others = may_redact_others(node.event, state)


def resolve_window(window: Sequence[Node], base: BaseState) -> list[Node]:
    """Decide every event of ``window`` (canonical order, starting with a cut).

    ``base`` holds the state before the window and receives each decided segment's
    accepted state events. Returns the cuts found in the window, in order.
    """
    position_of = {node.event_id: i for i, node in enumerate(window)}
    ancestors: list[int] = []
    cuts: list[int] = []
    for i, node in enumerate(window):
        bits = 0
        for parent in node.parents:
            j = position_of.get(parent)
            if j is not None:
                bits |= ancestors[j] | (1 << j)
        ancestors.append(bits)
        alone = (i == 0 or window[i - 1].depth != node.depth) and (
            i + 1 == len(window) or window[i + 1].depth != node.depth
        )
        if alone and bits.bit_count() == i:  # state.md §6: a cut
            cuts.append(i)
    bounds = [*cuts, len(window)]
    for start, end in pairwise(bounds):
        segment = _Segment(window[start:end], start, ancestors)
        _resolve_segment(segment, base)
        base.commit(segment.nodes)
    return [window[i] for i in cuts]


def _resolve_segment(segment: _Segment, base: StateView) -> None:
    """state.md §6 steps 1-5 for one segment."""
    excluded: set[int] = set()
    end = segment.first + len(segment.nodes)
    while True:
        for position in range(segment.first, end):  # step 2: a pass
            node = segment.node(position)
            if position in excluded:
                node.accepted, node.reason = False, RejectReason.DEFEATED
                continue
            view = _CausalView(segment, position, base)
            judge(node, view)
        defeats = _defeats(segment, base)  # step 3
        if not defeats:
            return
        ready = _ready_victims(segment, defeats)  # step 4
        if ready:
            excluded |= ready
            continue
        # step 5: revocations resting on each other; the highest rank, then the earliest
        strongest = max(
            defeats,
            key=lambda q: (rank(segment.node(q).event, _CausalView(segment, q, base)), -q),
        )
        excluded |= defeats[strongest]


def _ready_victims(segment: _Segment, defeats: dict[int, set[int]]) -> set[int]:
    """Victims of the defeats that rest on no other defeat (state.md §6 step 4)."""
    revoked = 0  # bits of the state events being defeated
    for victims in defeats.values():
        for e in victims:
            if segment.node(e).register is not None:
                revoked |= 1 << e
    ready: set[int] = set()
    ancestors = segment.ancestors
    for q, victims in defeats.items():
        if (ancestors[q] | (1 << q)) & revoked:
            continue
        ready.update(e for e in victims if not ancestors[e] & revoked)
    return ready


def _defeats(segment: _Segment, base: StateView) -> dict[int, set[int]]:
    """Every accepted power event that defeats something, with what it defeats (§5)."""
    found: dict[int, set[int]] = {}
    for register, writers in segment.writers.items():
        for q in writers:
            power = segment.node(q)
            if not power.is_power or not power.accepted:
                continue
            for e in (*segment.readers.get(register, ()), *segment.reads_everything):
                victim = segment.node(e)
                if e == q or not victim.accepted or not segment.concurrent(q, e):
                    continue
                view = _CausalView(segment, e, base, (register, power.event))
                if authorize(victim.event, view) is not None:
                    found.setdefault(q, set()).add(e)
    return found
