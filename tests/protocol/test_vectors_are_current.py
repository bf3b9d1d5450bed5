"""The committed vectors in spec/vectors are exactly what the implementation produces.

If this fails, either the implementation drifted from the protocol (fix the code) or the
protocol changed on purpose (run ``make vectors``, review the diff, change spec/ with it).
"""

from __future__ import annotations

import pytest

from tests.vectors.generate import GENERATORS, VECTORS_DIR, render


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_vector_file_matches_the_implementation(name: str) -> None:
    committed = (VECTORS_DIR / name).read_text(encoding="utf-8")
    assert committed == render(name), f"spec/vectors/{name} is out of date"


def test_every_vector_file_has_a_generator() -> None:
    assert {p.name for p in VECTORS_DIR.glob("*.json")} == set(GENERATORS)
