"""Hypothesis strategies for values of Kith's JSON data model and for protocol objects."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from protocol.canonical_json import MAX_SAFE_INTEGER

safe_integers = st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)

# Any Unicode scalar value (no lone surrogates): what a JSON string may hold.
json_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)

json_scalars: st.SearchStrategy[Any] = st.none() | st.booleans() | safe_integers | json_text

json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(json_text, children, max_size=5)
    ),
    max_leaves=30,
)

json_objects: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    json_text, json_values, max_size=6
)

# Values the encoder must refuse somewhere inside: floats, big integers.
floats = st.floats(allow_nan=True, allow_infinity=True)
big_integers = st.integers(min_value=MAX_SAFE_INTEGER + 1) | st.integers(
    max_value=-MAX_SAFE_INTEGER - 1
)
