"""Packing catch-up items into ``sync_batch`` frames (spec/client.md §5 steps 2 and 3): the hand
assembled frame is the canonical one, and no batch is empty, reordered or over the limit."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from node.services.stream import BATCH_BYTES, _assemble, _batch, _pack, _Packed
from protocol import Endpoint, encode_trusted_json
from protocol.wire import MAX_FRAME_BYTES

_texts = st.text(max_size=40)
_items = st.lists(
    st.fixed_dictionaries(
        {"position": st.integers(0, 2**53 - 1), "kind": st.just("event"), "room_id": _texts},
        optional={"event": st.dictionaries(_texts, _texts, max_size=3)},
    ),
    max_size=8,
)


@given(_items, st.integers(0, 2**53 - 1), st.booleans(), st.data())
def test_an_assembled_batch_is_the_canonical_frame(
    items: list[dict[str, Any]], position: int, caught_up: bool, data: st.DataObject
) -> None:
    opens = [data.draw(st.booleans()) for _ in items]
    packed = [
        _Packed(item["position"], encode_trusted_json(item), item["room_id"] if o else None)
        for item, o in zip(items, opens, strict=True)
    ]
    limited = [item["room_id"] for item, o in zip(items, opens, strict=True) if o]
    expected = _batch(items, position, caught_up=caught_up, limited=limited)
    assert _assemble(packed, position, caught_up=caught_up) == expected


# Item sizes from tiny to the largest an item may be (an event of 512 KiB plus its envelope).
_sizes = st.lists(st.integers(1, 512 * 1024 + 2048), max_size=30)


@given(_sizes, st.integers(1, 100))
def test_batches_keep_order_and_stay_within_the_frame_limit(
    sizes: list[int], max_items: int
) -> None:
    items = [_Packed(position, b"x" * size) for position, size in enumerate(sizes)]
    batches = _pack(items, max_items)
    assert [item for batch in batches for item in batch] == items
    for batch in batches:
        assert 1 <= len(batch) <= max_items
        frame = _assemble(batch, 2**53 - 1, caught_up=False)
        assert len(frame) <= MAX_FRAME_BYTES[Endpoint.CLIENT]
        assert sum(item.cost for item in batch) <= BATCH_BYTES


def test_a_batch_is_only_cut_when_the_next_item_would_not_fit() -> None:
    half = BATCH_BYTES // 2
    items = [_Packed(p, b"x" * (half - 1)) for p in range(3)]
    assert [len(batch) for batch in _pack(items, 100)] == [2, 1]
    assert [len(batch) for batch in _pack(items, 1)] == [1, 1, 1]
