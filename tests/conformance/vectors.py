"""Loading spec/vectors/*.json: the protocol's known answers."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parents[2] / "spec" / "vectors"


@cache
def load(name: str) -> Any:
    """The parsed contents of ``spec/vectors/<name>.json``."""
    return json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))


def cases(name: str, section: str) -> list[Any]:
    """One list of cases; usable as ``pytest.mark.parametrize`` values."""
    value: list[Any] = load(name)[section]
    return value


def case_ids(name: str, section: str) -> list[str]:
    """Readable test ids: the ``name`` of each case."""
    return [str(case["name"]) for case in cases(name, section)]
