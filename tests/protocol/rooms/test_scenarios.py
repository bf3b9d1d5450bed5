"""Named scenarios of the graph itself: canonical order, state registers, convergence.

The resolution-level items of the memo's T11 and T13: a rejected parent poisons nothing,
`L` is `(depth, event_id)`, concurrent writes to one register converge, an old fork resets
no state, a duplicate delivery changes nothing. Then a few checks of the reference's own
building blocks (cuts, segments) and of the arrival orders the scenarios use.
"""

from __future__ import annotations

import hashlib

import pytest

import protocol
from tests.protocol.rooms import reference
from tests.protocol.rooms.implementations import (
    IMPLEMENTATIONS,
    A,
    M,
    U,
    X,
    Y,
    all_causal_orders,
    assert_rejected,
    causal_orders,
    membership_of,
    resolve_everywhere,
    room,
)

impls = pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))


@impls
def test_rejected_parent_does_not_poison_unrelated_descendants(impl: str) -> None:
    """T13: a stranger's rejected message and topic are parents of U's message and of A's
    name change; both descendants are judged on their own causal state and stand."""
    b = room([U])
    stranger = b.say(X, "not a member", label="x message")
    topic = b.send(X, "topic", {"topic": "spam"}, state_key="", label="x topic")
    b.say(U, "after", parents=[stranger, topic], label="u1")
    b.send(A, "name", {"name": "kith"}, state_key="", label="name")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {stranger: "not_joined", topic: "not_joined"})
    assert ("topic", "") not in res.state


@impls
def test_canonical_order_is_depth_then_event_id(impl: str) -> None:
    """T13/state.md §3: concurrent events are ordered by event id, whatever their creation
    order; depth comes first (a deep event of a short branch follows a shallow one)."""
    b = room([U, Y])
    tip = b.order[-1]
    same_depth = [b.say(user, "hi", parents=[tip]) for user in (Y, U, A)]
    deeper = b.say(Y, "deeper", parents=[same_depth[0]])
    b.say(A, "merge")
    res = resolve_everywhere(impl, b)
    position = {event_id: n for n, event_id in enumerate(res.timeline)}
    assert sorted(same_depth, key=position.__getitem__) == sorted(same_depth)
    assert all(position[e] < position[deeper] for e in same_depth)
    assert res.timeline == sorted(b.events, key=lambda i: (b.events[i]["depth"], i))


@impls
def test_concurrent_topic_changes_converge_on_depth_then_event_id(impl: str) -> None:
    """T11: two concurrent topics at one depth: the greater event id wins everywhere; a
    deeper concurrent topic beats both, whatever its id."""
    b = room([M], {M: 50})
    tip = b.order[-1]
    t1 = b.send(A, "topic", {"topic": "by A"}, state_key="", parents=[tip], label="t1")
    t2 = b.send(M, "topic", {"topic": "by M"}, state_key="", parents=[tip], label="t2")
    b.say(A, "merge", parents=[t1, t2], label="merge")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {})
    assert res.state[("topic", "")] == max(t1, t2)
    pad = b.say(M, "pad", parents=[tip], label="pad")
    t3 = b.send(M, "topic", {"topic": "deeper"}, state_key="", parents=[pad], label="t3")
    res = resolve_everywhere(impl, b)
    assert b.events[t3]["depth"] > b.events[t1]["depth"]
    assert res.state[("topic", "")] == t3


@impls
def test_fork_from_old_history_resets_no_state(impl: str) -> None:
    """T10/A5: an honest message forked from far back, then merged, leaves every register
    of the room state exactly as it was."""
    b = room([M, U], {M: 50})
    old = b.order[-1]  # U has joined; none of the state below is set yet
    b.send(A, "name", {"name": "kith"}, state_key="")
    b.send(M, "topic", {"topic": "hello"}, state_key="")
    b.level(A, U, 10)
    b.member(M, Y, "ban")
    before = IMPLEMENTATIONS[impl]([(i, b.events[i]) for i in b.order])
    tip = b.order[-1]
    fork = b.say(U, "from long ago", parents=[old], label="fork")
    b.say(U, "merge", parents=[fork, tip], label="merge")
    after = resolve_everywhere(impl, b)
    assert_rejected(after, b, {})
    assert after.state == before.state


@impls
def test_duplicate_delivery_changes_nothing(impl: str) -> None:
    """T13/state.md §1: adding an event already in the graph changes nothing."""
    b = room([X])
    tip = b.order[-1]
    b.say(X, "x0", parents=[tip])
    b.member(A, X, "ban", parents=[tip])
    b.say(A, "merge")
    events = [(i, b.events[i]) for i in b.order]
    resolve = IMPLEMENTATIONS[impl]
    once = resolve(events)
    assert resolve(events + events) == once
    assert resolve([pair for pair in events for _ in range(2)]) == once
    assert membership_of(once, b, X) == "ban"


def test_cuts_and_segments_follow_forks_and_merges() -> None:
    """state.md §6: a fork's events share a segment; the merge is a new cut; the root is
    the first cut."""
    b = room([U])
    chain = list(b.order)
    tip = chain[-1]
    left = b.say(U, "left", parents=[tip])
    right = b.say(A, "right", parents=[tip])
    right2 = b.say(A, "right 2", parents=[right])
    merge = b.say(U, "merge", parents=[left, right2])
    anc = reference.ancestors(b.events)
    cut_ids = reference.cuts(b.events, anc)
    assert cut_ids == [*chain, merge]
    segments = reference.segments(b.events, cut_ids)
    assert segments[-2] == [tip, *sorted([left, right]), right2]
    assert segments[-1] == [merge]
    assert [e for s in segments for e in s] == reference.canonical_order(b.events)


def test_room_with_rejected_create_event_is_not_judged() -> None:
    """A reading (rooms.md §1): a room of an unknown version is not judged at all."""
    creator = "@a:a.example"
    create = protocol.build_event(
        event_type="create",
        sender=creator,
        state_key="",
        content={"creator": creator, "room_version": "2"},
        prev_events=[],
        auth_events=[],
        depth=0,
        origin_server_ts=0,
    )
    key = protocol.signing_key_from_seed(hashlib.sha256(b"a.example").digest())
    signed = protocol.sign_event(create, "a.example", "k", key)
    event_id = protocol.compute_event_id(signed)
    assert reference.authorize(signed, {}) == "unsupported_room_version"
    with pytest.raises(reference.UnjudgeableRoomError):
        reference.resolve({event_id: signed})


def test_arrival_orders_are_causal_seeded_and_varied() -> None:
    """The orders the scenarios replay: parents first, the same on every run, not all one."""
    b = room([U, Y])
    tip = b.order[-1]
    for user in (U, Y, A):
        b.say(user, "a", parents=[tip])
    b.say(A, "merge")
    events = [(i, b.events[i]) for i in b.order]
    orders = causal_orders(events, count=8, seed=7)
    assert orders == causal_orders(events, count=8, seed=7)
    assert len({tuple(i for i, _ in order) for order in orders}) > 2
    for order in [*orders, *all_causal_orders(events)]:
        seen: set[str] = set()
        for event_id, event in order:
            assert set(event["prev_events"]) <= seen
            seen.add(event_id)
        assert seen == set(b.events)
    assert len(list(all_causal_orders(events))) == 6  # three concurrent events: 3!
