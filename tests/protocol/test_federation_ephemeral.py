"""EDUs and to-device messages between nodes (spec/federation.md §8): every item is parsed
or refused with one of the protocol's own errors."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import ErrorCode, ProtocolError
from protocol.federation.ephemeral import parse_edu, parse_to_device_message
from tests.protocol.strategies import json_objects, json_values

ROOM = "!" + "x" * 42 + "A"
EVENT = "$" + "y" * 42 + "A"

PRESENCE = {"user_id": "@alice:a.test", "presence": "online", "last_active_ts": 5}
TYPING = {"room_id": ROOM, "user_id": "@alice:a.test", "typing": True, "timeout_ms": 30_000}
RECEIPT = {"room_id": ROOM, "user_id": "@alice:a.test", "event_id": EVENT}
MESSAGE = {
    "message_id": "17",
    "sender": "@alice:a.test",
    "sender_device": "PHONE",
    "type": "kith.room_key",
    "user_id": "@bob:b.test",
    "device_id": "*",
    "content": {"k": 1},
}


@pytest.mark.parametrize(
    ("kind", "content"), [("presence", PRESENCE), ("typing", TYPING), ("receipt", RECEIPT)]
)
def test_each_edu_type_parses_and_names_its_actor(kind: str, content: dict[str, Any]) -> None:
    edu = parse_edu({"type": kind, "content": content})
    assert (edu.type, edu.content, edu.actor) == (kind, content, "@alice:a.test")


@pytest.mark.parametrize(
    ("item", "code"),
    [
        ({"type": "shout", "content": PRESENCE}, ErrorCode.BAD_PARAMS),
        ({"type": "presence"}, ErrorCode.BAD_PARAMS),
        ({"type": "presence", "content": {**PRESENCE, "presence": "away"}}, ErrorCode.BAD_PARAMS),
        (
            {"type": "presence", "content": {**PRESENCE, "status_msg": "x" * 257}},
            ErrorCode.TOO_LARGE,
        ),
        ({"type": "typing", "content": {**TYPING, "timeout_ms": 0}}, ErrorCode.BAD_PARAMS),
        ({"type": "typing", "content": {**TYPING, "extra": 1}}, ErrorCode.BAD_PARAMS),
        ({"type": "receipt", "content": {**RECEIPT, "user_id": "alice"}}, ErrorCode.BAD_PARAMS),
        ([], ErrorCode.BAD_PARAMS),
    ],
)
def test_malformed_edus_are_refused_with_their_code(item: Any, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_edu(item)
    assert caught.value.code == code


def test_a_to_device_message_parses_and_round_trips() -> None:
    message = parse_to_device_message(MESSAGE)
    assert message.to_json() == MESSAGE
    assert parse_to_device_message({**MESSAGE, "device_id": "LAPTOP"}).device_id == "LAPTOP"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"message_id": ""}, ErrorCode.BAD_PARAMS),
        ({"device_id": "no spaces"}, ErrorCode.BAD_PARAMS),
        ({"content": {"k": "x" * 70_000}}, ErrorCode.TOO_LARGE),
        ({"sender": 7}, ErrorCode.BAD_PARAMS),
    ],
)
def test_malformed_to_device_messages_are_refused(change: dict[str, Any], code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_to_device_message({**MESSAGE, **change})
    assert caught.value.code == code


_edu_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["presence", "typing", "receipt"]) | st.text(max_size=5),
        "content": st.fixed_dictionaries(
            {}, optional={**dict.fromkeys(TYPING, json_values), "presence": json_values}
        ),
    }
)


@given(json_values | json_objects | _edu_like)
def test_any_edu_is_parsed_or_refused_with_a_protocol_error(item: Any) -> None:
    with contextlib.suppress(ProtocolError):
        parse_edu(item)


@given(json_values | json_objects | st.builds(lambda extra: {**MESSAGE, **extra}, json_objects))
def test_any_message_is_parsed_or_refused_with_a_protocol_error(item: Any) -> None:
    with contextlib.suppress(ProtocolError):
        parse_to_device_message(item)
