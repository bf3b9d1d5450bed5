"""The implementations of spec/state.md the scenarios run against, and how scenarios use them.

Every entry of :data:`IMPLEMENTATIONS` takes a room's events in *arrival order* — a causal
order, the create event first, as ``(event_id, event)`` pairs, possibly with an event
delivered twice — and returns the :class:`~tests.protocol.rooms.reference.Resolution` of
the whole set. The spec says the result is a function of the set alone (state.md §6), so
:func:`resolve_everywhere` runs one implementation under several arrival orders and insists
on one answer (the memo's T2).

The rest is the scenarios' shared vocabulary: the cast of users, a room factory, arrival
orders, and readers for verdicts and state that speak in the builder's labels.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator, Mapping, Sequence

from protocol import JsonObject
from protocol.rooms import Room
from tests.protocol.rooms import reference
from tests.protocol.rooms.builder import RoomBuilder
from tests.protocol.rooms.reference import Resolution

__all__ = [
    "IMPLEMENTATIONS",
    "Arrival",
    "Implementation",
    "all_causal_orders",
    "assert_rejected",
    "causal_orders",
    "content_of",
    "level_of",
    "membership_of",
    "resolve_everywhere",
    "room",
]

Arrival = list[tuple[str, JsonObject]]
"""Events in the order a node received them: parents before children."""

Implementation = Callable[[Arrival], Resolution]

# The cast: A creates every room; M and N are moderators or admins; U, X, Y plain users.
A = "@a:a.example"
M = "@m:m.example"
N = "@n:n.example"
H = "@h:h.example"
U = "@u:u.example"
X = "@x:x.example"
Y = "@y:y.example"
B = "@b:b.example"
C = "@c:c.example"


def _reference(arrival: Arrival) -> Resolution:
    """The reference ignores arrival order: a duplicate delivery changes nothing (§1)."""
    events: dict[str, JsonObject] = {}
    for event_id, event in arrival:
        events.setdefault(event_id, event)
    return reference.resolve(events)


def _engine(arrival: Arrival, *, batch: bool) -> Resolution:
    """``protocol.rooms.Room``, fed one event at a time (or all in one batch) as it arrives."""
    (create_id, create), *rest = arrival
    engine = Room(create_id, create)
    if batch:
        engine.add(dict(rest))
    else:
        for event_id, event in rest:
            engine.add({event_id: event})
    verdicts: dict[str, str | None] = {}
    for event_id in engine.canonical_order():
        reason = engine.rejection(event_id)
        verdicts[event_id] = None if reason is None else reason.value
    return Resolution(verdicts=verdicts, state=engine.state(), timeline=engine.timeline())


IMPLEMENTATIONS: dict[str, Implementation] = {
    "reference": _reference,
    "engine": functools.partial(_engine, batch=False),
    "engine-batch": functools.partial(_engine, batch=True),
}


def room(
    members: Sequence[str] = (),
    levels: Mapping[str, int] | None = None,
    *,
    join_rule: str | None = "public",
    direct: bool = False,
    power: JsonObject | None = None,
) -> RoomBuilder:
    """A room created by ``A``; ``members`` join (invited first unless it is public), then
    ``A`` sets ``levels`` — all on one chain, so the fork of a scenario starts at its tip."""
    b = RoomBuilder(A, join_rule=join_rule, direct=direct, power=power)
    for user in members:
        if join_rule != "public":
            b.member(A, user, "invite", label=f"invite {user}")
        b.join(user, label=f"join {user}")
    for user, value in (levels or {}).items():
        b.level(A, user, value, label=f"level {user} {value}")
    return b


def _causal_order(events: Arrival, pick: Callable[[list[int]], int]) -> Arrival:
    """One causal order of ``events``: repeatedly deliver a ready event chosen by ``pick``."""
    delivered: set[str] = set()
    waiting = list(events)
    result: Arrival = []
    while waiting:
        ready = [
            n for n, (_, e) in enumerate(waiting) if all(p in delivered for p in e["prev_events"])
        ]
        event_id, event = waiting.pop(pick(ready))
        delivered.add(event_id)
        result.append((event_id, event))
    return result


def causal_orders(events: Arrival, *, count: int = 6, seed: int = 0) -> list[Arrival]:
    """``events`` as created, newest-ready-first, and ``count`` random causal orders.

    Newest-ready-first delivers each branch late, the way a partition heals; the random
    orders come from a seeded ``random.Random``, so every run sees the same orders.
    """
    rng = random.Random(seed)
    orders = [list(events), _causal_order(events, max)]
    orders += [_causal_order(events, rng.choice) for _ in range(count)]
    return orders


def all_causal_orders(events: Arrival) -> Iterator[Arrival]:
    """Every causal order of ``events`` (all linear extensions; keep the graph small)."""
    if not events:
        yield []
        return
    remaining = {i for i, _ in events}
    for n, (event_id, event) in enumerate(events):
        if any(p in remaining for p in event["prev_events"]):
            continue
        rest = events[:n] + events[n + 1 :]
        for tail in all_causal_orders(rest):
            yield [(event_id, event), *tail]


def resolve_everywhere(
    impl: str, b: RoomBuilder, *, count: int = 6, seed: int = 0, every_order: bool = False
) -> Resolution:
    """Resolve ``b``'s events with ``impl`` under several arrival orders; the one result.

    With ``every_order`` all causal orders are tried (only for small graphs).
    """
    events = [(i, b.events[i]) for i in b.order]
    resolve = IMPLEMENTATIONS[impl]
    first = resolve(events)
    orders: Iterator[Arrival] | list[Arrival]
    orders = (
        all_causal_orders(events) if every_order else causal_orders(events, count=count, seed=seed)
    )
    for n, arrival in enumerate(orders):
        got = resolve(arrival)
        assert got == first, f"{impl}: arrival order #{n} gives another result"
    assert set(first.verdicts) == set(b.events)
    return first


def assert_rejected(res: Resolution, b: RoomBuilder, expected: Mapping[str, str]) -> None:
    """Exactly the events of ``expected`` are rejected, each with its reason code."""
    got = {b.label(i): v for i, v in res.verdicts.items() if v is not None}
    want = {b.label(i): reason for i, reason in expected.items()}
    assert got == want, f"rejected {got}, expected {want}"
    timeline = [i for i in reference.canonical_order(b.events) if i not in expected]
    assert res.timeline == timeline, "the timeline is L restricted to accepted events"


def content_of(
    res: Resolution, b: RoomBuilder, event_type: str, state_key: str = ""
) -> JsonObject | None:
    """The content of the event holding a register of the room state, None if empty."""
    event_id = res.state.get((event_type, state_key))
    return None if event_id is None else b.events[event_id]["content"]


def membership_of(res: Resolution, b: RoomBuilder, user: str) -> str | None:
    """``user``'s membership as the room state has it (None: never had one)."""
    content = content_of(res, b, "member", user)
    return None if content is None else str(content["membership"])


def level_of(res: Resolution, b: RoomBuilder, user: str) -> int | None:
    """``user``'s own power level register in the room state (None: none of their own)."""
    content = content_of(res, b, "power_levels", user)
    return None if content is None else int(content["level"])
