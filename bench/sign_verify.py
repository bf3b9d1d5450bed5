"""Signed and verified events per second on one core (foundation issue targets).

Targets on the reference 2-core machine: >= 15,000 ``sign_event``/s and >= 8,000
``verify_event``/s for a typical chat message. Rows for a large event show how cost grows
with size (hashing and canonical encoding are linear in it).
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import protocol
from bench.common import emit, rate
from protocol.b64 import encode_base64_urlsafe
from protocol.events import event_size

KEY = protocol.signing_key_from_seed(hashlib.sha256(b"bench").digest())
KEY_ID = protocol.derive_key_id(KEY.verify_key)
KEYS = {"a.example": {KEY_ID: KEY.verify_key}}


def _id(sigil: str, label: str) -> str:
    return sigil + encode_base64_urlsafe(hashlib.sha256(label.encode()).digest())


def message_event(body: str) -> dict[str, Any]:
    """A message event shaped like real traffic: a couple of parents, three auth events."""
    return protocol.build_event(
        event_type="message",
        sender="@alice:a.example",
        room_id=_id("!", "room"),
        content={"body": body, "msgtype": "text"},
        prev_events=[_id("$", "p1"), _id("$", "p2")],
        auth_events=[_id("$", "create"), _id("$", "power"), _id("$", "member")],
        depth=12345,
        origin_server_ts=1_767_225_600_000,
    )


SCENARIOS = {
    "typical message (80 chars)": (
        "Are we still on for dinner tonight? I can bring dessert if you want 🍰 see you!"
    ),
    "long message (10,000 chars)": "lorem ipsum " * 833 + "dolo",
}


def main(seconds: float = 2.0) -> None:
    """Emit one row per operation and scenario."""
    for scenario, body in SCENARIOS.items():
        event = message_event(body)
        signed = protocol.sign_event(event, "a.example", KEY_ID, KEY)
        size = event_size(signed)
        sign_rate = rate(
            functools.partial(protocol.sign_event, event, "a.example", KEY_ID, KEY), seconds=seconds
        )
        emit(
            {
                "bench": "sign_event",
                "scenario": scenario,
                "event_bytes": size,
                "ops_per_s": round(sign_rate),
                "target_ops_per_s": 15_000,
            }
        )
        verify_rate = rate(functools.partial(protocol.verify_event, signed, KEYS), seconds=seconds)
        emit(
            {
                "bench": "verify_event",
                "scenario": scenario,
                "event_bytes": size,
                "ops_per_s": round(verify_rate),
                "target_ops_per_s": 8_000,
            }
        )
        wire = protocol.encode_canonical_json(signed)
        decode_rate = rate(functools.partial(protocol.decode_json, wire), seconds=seconds)
        emit(
            {
                "bench": "decode_json",
                "scenario": scenario,
                "bytes": len(wire),
                "ops_per_s": round(decode_rate),
            }
        )


if __name__ == "__main__":
    main()
