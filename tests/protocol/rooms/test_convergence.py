"""Properties of resolution over random federated histories (spec/state.md §7).

2-5 servers, each with its own replica; users create events on what their server has seen
(sometimes forking from older history), servers exchange random causally closed batches —
partitions are simply the deliveries that did not happen yet. At the end everyone has
everything.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.rooms import Room
from tests.protocol.rooms import reference
from tests.protocol.rooms.literal import ancestors, check_authority
from tests.protocol.rooms.simulation import Federation, run

seeds = st.integers(min_value=0, max_value=2**32 - 1)
server_counts = st.integers(min_value=2, max_value=5)


def _outcome(room: Room, event_ids: list[str]) -> tuple[object, ...]:
    return (
        room.timeline(),
        room.state(),
        {e: room.rejection(e) for e in event_ids},
        room.canonical_order(),
    )


def _fresh(federation: Federation, order: list[str]) -> Room:
    room = Room(federation.create_id, federation.events[federation.create_id])
    for event_id in order:
        room.add({event_id: federation.events[event_id]})
    return room


@settings(max_examples=500)
@given(seeds, server_counts)
def test_replicas_that_hold_the_same_events_agree(seed: int, servers: int) -> None:
    federation = run(seed, servers=servers, steps=40)
    ids = sorted(federation.events)
    outcomes = [_outcome(replica.room, ids) for replica in federation.replicas]
    assert all(outcome == outcomes[0] for outcome in outcomes)
    # ... and agree with a replica that received everything at once, or in another order.
    at_once = Room(federation.create_id, federation.events[federation.create_id])
    at_once.add(dict(federation.events))
    assert _outcome(at_once, ids) == outcomes[0]
    causal = sorted(
        ids, key=lambda i: (federation.events[i]["depth"], random.Random(seed).random())
    )
    assert _outcome(_fresh(federation, causal[1:]), ids) == outcomes[0]


@settings(max_examples=300)
@given(seeds, server_counts)
def test_the_engine_agrees_with_a_literal_reading_of_the_spec(seed: int, servers: int) -> None:
    federation = run(seed, servers=servers, steps=40)
    expected = reference.resolve(federation.events)
    room = federation.replicas[0].room
    verdicts = {e: room.rejection(e) for e in federation.events}
    assert {e: (None if v is None else v.value) for e, v in verdicts.items()} == expected.verdicts
    assert room.state() == expected.state
    assert room.timeline() == expected.timeline


@settings(max_examples=100)
@given(seeds, server_counts)
def test_delivery_is_causal_and_the_canonical_order_extends_the_graph(
    seed: int, servers: int
) -> None:
    federation = run(seed, servers=servers, steps=40)
    for replica in federation.replicas:
        seen = {federation.create_id}
        for changes in replica.log:
            seen.update(changes.added)
            for event_id in changes.accepted:
                assert set(federation.events[event_id]["prev_events"]) <= seen
        position = {e: i for i, e in enumerate(replica.room.canonical_order())}
        for event_id, event in federation.events.items():
            assert all(position[p] < position[event_id] for p in event["prev_events"])


@settings(max_examples=200)
@given(seeds, server_counts)
def test_accepted_events_were_authorized_and_no_revocation_was_escaped(
    seed: int, servers: int
) -> None:
    federation = run(seed, servers=servers, steps=40)
    check_authority(federation.replicas[0].room, federation.events)


@settings(max_examples=200)
@given(seeds, server_counts, st.sampled_from(["message", "topic", "join"]), st.booleans())
def test_an_unrelated_concurrent_event_changes_no_other_verdict(
    seed: int, servers: int, kind: str, fork: bool
) -> None:
    federation = run(seed, servers=servers, steps=40)
    replica = federation.replicas[-1]
    before = {e: replica.room.rejection(e) for e in federation.events}
    state_before = replica.room.state()
    user = replica.users[-1]
    new = federation.act(replica, user, kind, target=user, fork=fork)
    after = {e: replica.room.rejection(e) for e in before}
    assert after == before
    state_after = replica.room.state()
    changed = {r for r in state_after if state_after.get(r) != state_before.get(r)}
    assert changed <= {(federation.events[new]["type"], federation.events[new].get("state_key"))}


@pytest.mark.slow
@settings(max_examples=3000)
@given(seeds, server_counts)
def test_replicas_agree_on_long_histories(seed: int, servers: int) -> None:
    federation = run(seed, servers=servers, steps=120)
    ids = sorted(federation.events)
    outcomes = [_outcome(replica.room, ids) for replica in federation.replicas]
    assert all(outcome == outcomes[0] for outcome in outcomes)
    check_authority(federation.replicas[0].room, federation.events)


def test_ancestor_helper_walks_the_whole_past() -> None:
    federation = run(7, servers=3, steps=20)
    anc = ancestors(federation.events)
    for event_id, event in federation.events.items():
        for parent in event["prev_events"]:
            assert anc[parent] < anc[event_id]
