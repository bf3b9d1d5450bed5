"""From pushes to updates (``client.updates``), without a network: the order, the positions
each update completes, one ``CaughtUp`` per connection, and every stream item once however
the node resends after reconnects."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import client
from client.updates import BatchReader, Pending
from protocol import Notice

ROOM = "!" + "A" * 43
ALICE = "@alice:localhost"


def _event(position: int, body: str = "hi") -> dict[str, Any]:
    return {
        "position": position,
        "kind": "event",
        "room_id": ROOM,
        "event": {
            "event_id": f"$e{position}",
            "room_id": ROOM,
            "type": "message",
            "sender": ALICE,
            "content": {"body": body},
            "origin_server_ts": 1_700_000_000_000 + position,
        },
    }


def _batch(items: list[dict[str, Any]], position: int, **more: Any) -> Notice:
    return Notice("sync_batch", {"items": items, "position": position, "caught_up": False, **more})


def _updates(pending: list[Pending]) -> list[client.Update | None]:
    return [p.update for p in pending]


def test_items_become_typed_updates_and_the_last_completes_the_batch() -> None:
    reader = BatchReader(after=0)
    items = [
        _event(1),
        {"position": 2, "kind": "retraction", "room_id": ROOM, "event_id": "$e1"},
        {"position": 3, "kind": "receipt", "room_id": ROOM, "user_id": ALICE, "event_id": "$e1"},
        {
            "position": 4,
            "kind": "to_device",
            "sender": ALICE,
            "sender_device": "DEV",
            "type": "t.k",
            "content": {"k": 1},
        },
    ]
    pending = reader.read(1, _batch(items, 9))  # 5-9: items this device does not see
    assert [type(u).__name__ for u in _updates(pending)] == [
        "EventItem",
        "Retraction",
        "Receipt",
        "ToDevice",
    ]
    assert [p.completes for p in pending] == [1, 2, 3, 9]
    event = pending[0].update
    assert isinstance(event, client.EventItem)
    assert (event.position, event.room_id, event.event.body) == (1, ROOM, "hi")
    assert pending[1].update == client.Retraction(2, ROOM, "$e1")
    assert pending[2].update == client.Receipt(3, ROOM, ALICE, "$e1")
    assert pending[3].update == client.ToDevice(4, ALICE, "DEV", "t.k", {"k": 1})
    assert reader.seen == 9


def test_caught_up_is_yielded_once_per_connection() -> None:
    reader = BatchReader(after=0)
    first = reader.read(1, _batch([_event(1)], 1, caught_up=True))
    assert _updates(first)[-1] == client.CaughtUp(1)
    assert [p.completes for p in first] == [1, 1]
    live = reader.read(1, _batch([_event(2)], 2, caught_up=True))  # every live batch says so
    assert [type(u).__name__ for u in _updates(live)] == ["EventItem"]
    again = reader.read(2, _batch([], 2, caught_up=True))  # a new connection caught up
    assert _updates(again) == [client.CaughtUp(2)]


def test_limited_rooms_come_before_their_items() -> None:
    pending = BatchReader(after=0).read(1, _batch([_event(40)], 50, limited=[ROOM]))
    assert _updates(pending)[0] == client.Limited((ROOM,))
    assert pending[0].completes is None


def test_resent_items_are_dropped_and_an_empty_step_still_completes() -> None:
    reader = BatchReader(after=5)
    assert _updates(reader.read(1, _batch([_event(4), _event(5)], 5))) == [None]
    pending = reader.read(1, _batch([_event(5), _event(6)], 7))
    assert [(type(p.update).__name__, p.completes) for p in pending] == [("EventItem", 7)]


def test_malformed_and_unknown_items_are_skipped_not_fatal() -> None:
    reader = BatchReader(after=0)
    items = [{"position": 1, "kind": "event", "event": {}}, {"position": 2, "kind": "new"}]
    pending = reader.read(1, _batch([*items, _event(3)], 3))
    assert [p.completes for p in pending] == [3]
    assert reader.read(1, Notice("typing_update", {"room_id": ROOM})) == []


def test_pushes_that_are_not_stream_items() -> None:
    reader = BatchReader(after=0)
    presence = {"user_id": ALICE, "presence": "online", "status_msg": "hi"}
    (pending,) = reader.read(1, Notice("presence_update", presence))
    assert pending == Pending(
        client.PresenceChanged(client.PresenceInfo(ALICE, "online", None, "hi"))
    )
    typing = Notice("typing_update", {"room_id": ROOM, "user_ids": [ALICE]})
    assert _updates(reader.read(1, typing)) == [client.TypingChanged(ROOM, (ALICE,))]
    signed_out = Notice("signed_out", {"reason": "revoked"})
    assert _updates(reader.read(1, signed_out)) == [client.SignedOut("revoked")]


def test_every_update_has_a_json_form_with_its_kind() -> None:
    event = client.Event("$e", ROOM, "message", ALICE, {"body": "x"}, 5, None, {"a": 1})
    updates: list[client.Update] = [
        client.EventItem(1, event),
        client.Retraction(2, ROOM, "$e"),
        client.Receipt(3, ROOM, ALICE, "$e"),
        client.ToDevice(4, ALICE, "DEV", "t", {}),
        client.Limited((ROOM,)),
        client.CaughtUp(4),
        client.PresenceChanged(client.PresenceInfo(ALICE, "offline")),
        client.TypingChanged(ROOM, ()),
        client.SignedOut("logout"),
        client.Reconnecting(1, 0.123456),
    ]
    kinds = [u.to_json()["kind"] for u in updates]
    assert kinds == [
        "event",
        "retraction",
        "receipt",
        "to_device",
        "limited",
        "caught_up",
        "presence",
        "typing",
        "signed_out",
        "reconnecting",
    ]
    assert updates[0].to_json()["event"] == {
        "event_id": "$e",
        "room_id": ROOM,
        "type": "message",
        "sender": ALICE,
        "content": {"body": "x"},
        "origin_server_ts": 5,
        "unsigned": {"a": 1},
    }


@st.composite
def _deliveries(draw: st.DrawFn) -> tuple[int, list[tuple[int, list[int], int]]]:
    """Connections of a resumed stream: each starts somewhere at or before where the last
    one got to (as a node resends after a reconnect), and sends positions in batches."""
    head = draw(st.integers(min_value=1, max_value=60))
    visible = sorted(draw(st.sets(st.integers(min_value=1, max_value=head))))
    deliveries: list[tuple[int, list[int], int]] = []
    reached = 0
    for generation in range(1, draw(st.integers(min_value=1, max_value=4)) + 1):
        start = draw(st.integers(min_value=0, max_value=reached))
        stop = draw(st.integers(min_value=start, max_value=head))
        sent = [p for p in visible if start < p <= stop]
        cuts = sorted(draw(st.sets(st.integers(min_value=start, max_value=stop), max_size=5)))
        bounds = [*[c for c in cuts if c > start], stop]
        low = start
        for bound in dict.fromkeys(bounds):
            if bound > low or not deliveries:
                deliveries.append((generation, [p for p in sent if low < p <= bound], bound))
            low = bound
        reached = max(reached, stop)
    return reached, deliveries


@given(_deliveries())
def test_each_position_is_read_once_in_order_however_it_is_resent(
    case: tuple[int, list[tuple[int, list[int], int]]],
) -> None:
    reached, deliveries = case
    reader = BatchReader(after=0)
    read: list[int] = []
    completed = 0
    for generation, positions, bound in deliveries:
        for pending in reader.read(generation, _batch([_event(p) for p in positions], bound)):
            if isinstance(pending.update, client.EventItem):
                read.append(pending.update.position)
            completed = max(completed, pending.completes or 0)
    everything = sorted({p for _, positions, _ in deliveries for p in positions})
    assert read == everything
    assert completed == reached
