"""spec/ is the contract: every op, event type and error code in the code is named there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from protocol import OPS, ErrorCode, EventType
from protocol.rooms import RejectReason

SPEC = Path(__file__).resolve().parents[1] / "spec"


def _spec_names() -> set[str]:
    text = "\n".join(p.read_text(encoding="utf-8") for p in SPEC.glob("*.md"))
    return set(re.findall(r"`([^`\n]+)`", text))


NAMED = [
    *(("error code", code.value) for code in ErrorCode),
    *(("event type", event_type.value) for event_type in EventType),
    *(("op", name) for name in OPS),
    *(("reason code", reason.value) for reason in RejectReason),
]


@pytest.mark.parametrize(("kind", "name"), NAMED, ids=[f"{k}:{n}" for k, n in NAMED])
def test_name_appears_in_spec(kind: str, name: str) -> None:
    assert name in _spec_names(), f"{kind} {name!r} is not named in spec/ (in backticks)"


def test_spec_documents_exist() -> None:
    for document in (
        "README.md",
        "canonical-json.md",
        "signing.md",
        "events.md",
        "wire.md",
        "ids.md",
    ):
        assert (SPEC / document).is_file(), document
