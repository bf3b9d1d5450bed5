"""Events: signed by the sender's node, ids that survive redaction, hashes that catch edits."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import (
    MAX_EVENT_BYTES,
    MAX_TEXT_BODY_CHARS,
    ErrorCode,
    EventType,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    build_event,
    compute_content_hash,
    compute_event_id,
    decode_json,
    derive_key_id,
    encode_canonical_json,
    redact_event,
    sign_event,
    signing_key_from_seed,
    validate_event_id,
    validate_room_id,
    verify_event,
)
from protocol.b64 import encode_base64_urlsafe
from protocol.events import _content_hash_bytes, _size_from_hash_form, event_size
from tests.protocol.strategies import json_objects, json_values

KEY_A = signing_key_from_seed(hashlib.sha256(b"a").digest())
KEY_B = signing_key_from_seed(hashlib.sha256(b"b").digest())
ID_A, ID_B = derive_key_id(KEY_A.verify_key), derive_key_id(KEY_B.verify_key)
KEYS = {"a.example": {ID_A: KEY_A.verify_key}, "b.example": {ID_B: KEY_B.verify_key}}
ROOM = "!" + encode_base64_urlsafe(hashlib.sha256(b"room").digest())


def _event_id(label: str) -> str:
    return "$" + encode_base64_urlsafe(hashlib.sha256(label.encode()).digest())


event_types = st.sampled_from([*EventType, "org.example.custom"])


@st.composite
def unsigned_events(draw: st.DrawFn) -> dict[str, Any]:
    event_type = draw(event_types)
    is_state = draw(st.booleans())
    return build_event(
        event_type=event_type,
        sender=draw(st.sampled_from(["@alice:a.example", "@bob:a.example"])),
        content=draw(json_objects),
        prev_events=[_event_id(str(i)) for i in range(draw(st.integers(0, 3)))],
        auth_events=[_event_id(f"a{i}") for i in range(draw(st.integers(0, 3)))],
        depth=draw(st.integers(0, 10**6)),
        origin_server_ts=draw(st.integers(0, 2**41)),
        room_id=None if event_type == EventType.CREATE else ROOM,
        state_key=draw(st.text(max_size=10)) if is_state else None,
    )


def _message(body: str = "hi") -> dict[str, Any]:
    return build_event(
        event_type="message",
        sender="@alice:a.example",
        content={"body": body, "msgtype": "text"},
        prev_events=[_event_id("p")],
        auth_events=[_event_id("c")],
        depth=5,
        origin_server_ts=1_700_000_000_000,
        room_id=ROOM,
    )


@given(unsigned_events())
def test_signed_events_verify_and_keep_their_id(event: dict[str, Any]) -> None:
    signed = sign_event(event, "a.example", ID_A, KEY_A)
    verified = verify_event(signed, KEYS)
    assert not verified.redacted
    assert verified.event is signed
    assert verified.event_id == compute_event_id(signed)
    assert validate_event_id(verified.event_id)
    assert signed["hashes"]["sha256"] == compute_content_hash(event)


@given(unsigned_events())
def test_redaction_keeps_the_id_and_the_signature(event: dict[str, Any]) -> None:
    signed = sign_event(event, "a.example", ID_A, KEY_A)
    redacted = redact_event(signed)
    assert redact_event(redacted) == redacted
    assert compute_event_id(redacted) == compute_event_id(signed)
    verified = verify_event(redacted, KEYS)
    assert verified.event_id == compute_event_id(signed)
    # A redacted event's content hash no longer matches unless nothing was removed.
    assert verified.redacted == (redacted != signed)


@given(unsigned_events(), json_objects)
def test_edited_content_yields_only_the_redacted_form(
    event: dict[str, Any], new_content: dict[str, Any]
) -> None:
    signed = sign_event(event, "a.example", ID_A, KEY_A)
    edited = {**signed, "content": new_content}
    if redact_event(edited) != redact_event(signed):
        with pytest.raises(RemoteProtocolError) as caught:
            verify_event(edited, KEYS)
        assert caught.value.code is ErrorCode.BAD_SIGNATURE
        return
    verified = verify_event(edited, KEYS)
    assert verified.redacted == (new_content != event["content"])
    assert verified.event_id == compute_event_id(signed)


@given(unsigned_events(), st.sampled_from(["depth", "origin_server_ts", "sender", "prev_events"]))
def test_editing_a_kept_field_breaks_the_signature(event: dict[str, Any], field: str) -> None:
    signed = sign_event(event, "a.example", ID_A, KEY_A)
    replacement = {
        "depth": signed["depth"] + 1,
        "origin_server_ts": signed["origin_server_ts"] + 1,
        "sender": "@mallory:a.example"
        if signed["sender"] != "@mallory:a.example"
        else "@x:a.example",
        "prev_events": [*signed["prev_events"], _event_id("extra")],
    }[field]
    with pytest.raises(RemoteProtocolError) as caught:
        verify_event({**signed, field: replacement}, KEYS)
    assert caught.value.code is ErrorCode.BAD_SIGNATURE


def test_only_the_senders_server_may_sign() -> None:
    forged = sign_event(_message(), "b.example", ID_B, KEY_B)  # sender is @alice:a.example
    with pytest.raises(RemoteProtocolError) as caught:
        verify_event(forged, KEYS)
    assert caught.value.code is ErrorCode.MISSING_SIGNATURE


def test_a_co_signature_by_another_server_is_kept_and_ignored() -> None:
    signed = sign_event(_message(), "a.example", ID_A, KEY_A)
    co_signed = sign_event(signed, "b.example", ID_B, KEY_B)
    assert set(co_signed["signatures"]) == {"a.example", "b.example"}
    assert verify_event(co_signed, KEYS).event_id == compute_event_id(signed)


def test_unknown_keys_are_reported_so_the_receiver_can_fetch_them() -> None:
    signed = sign_event(_message(), "a.example", ID_A, KEY_A)
    with pytest.raises(RemoteProtocolError) as caught:
        verify_event(signed, {"a.example": {ID_B: KEY_B.verify_key}})
    assert caught.value.code is ErrorCode.UNKNOWN_KEY


def test_a_bad_signature_under_a_known_key_fails_even_beside_a_good_one() -> None:
    signed = sign_event(_message(), "a.example", ID_A, KEY_A)
    other = sign_event(_message("other"), "a.example", ID_B, KEY_B)
    mixed = {
        **signed,
        "signatures": {
            "a.example": {**signed["signatures"]["a.example"], **other["signatures"]["a.example"]}
        },
    }
    keys = {"a.example": {ID_A: KEY_A.verify_key, ID_B: KEY_B.verify_key}}
    with pytest.raises(RemoteProtocolError) as caught:
        verify_event(mixed, keys)
    assert caught.value.code is ErrorCode.BAD_SIGNATURE


def test_a_text_body_of_the_maximum_length_fits_even_in_four_byte_characters() -> None:
    event = _message("😀" * MAX_TEXT_BODY_CHARS)
    signed = sign_event(event, "a.example", ID_A, KEY_A)
    assert event_size(signed) <= MAX_EVENT_BYTES
    assert not verify_event(signed, KEYS).redacted


def test_events_over_the_size_limit_are_refused_when_signing_and_verifying() -> None:
    small = sign_event(_message(), "a.example", ID_A, KEY_A)
    padding = MAX_EVENT_BYTES - event_size(small) + 1
    with pytest.raises(LocalProtocolError) as built:
        sign_event(_message("x" * (padding + 2)), "a.example", ID_A, KEY_A)
    assert built.value.code is ErrorCode.TOO_LARGE
    exact = sign_event(_message("hi" + "x" * (padding - 1)), "a.example", ID_A, KEY_A)
    assert event_size(exact) == MAX_EVENT_BYTES
    verify_event(exact, KEYS)
    # One byte over: the signed (redacted) form is small, so it is kept in that form
    # (events.md §7 step 2), as every node that gets either form keeps it.
    too_big = {**exact, "content": {"body": exact["content"]["body"] + "x", "msgtype": "text"}}
    verified = verify_event(too_big, KEYS)
    assert verified.redacted
    assert verified.event == redact_event(exact)
    assert verified.event_id == compute_event_id(exact)
    assert verify_event(redact_event(exact), KEYS).event_id == verified.event_id


def test_an_event_too_large_even_in_redacted_form_is_refused() -> None:
    """A create event keeps its whole content when redacted (events.md §4.2)."""
    create = build_event(
        event_type="create",
        sender="@alice:a.example",
        state_key="",
        content={"creator": "@alice:a.example", "room_version": "1", "pad": "x" * 1000},
        prev_events=[],
        auth_events=[],
        depth=0,
        origin_server_ts=1,
    )
    signed = sign_event(create, "a.example", ID_A, KEY_A)
    grown = {**signed, "content": {**signed["content"], "pad": "x" * MAX_EVENT_BYTES}}
    with pytest.raises(RemoteProtocolError) as received:
        verify_event(grown, KEYS)
    assert received.value.code is ErrorCode.TOO_LARGE


def test_the_room_id_is_the_reference_hash_of_the_create_event() -> None:
    create = build_event(
        event_type="create",
        sender="@alice:a.example",
        state_key="",
        content={"creator": "@alice:a.example", "room_version": "1"},
        prev_events=[],
        auth_events=[],
        depth=0,
        origin_server_ts=1,
    )
    signed = sign_event(create, "a.example", ID_A, KEY_A)
    room_id = "!" + compute_event_id(signed)[1:]
    assert validate_room_id(room_id) == room_id
    with pytest.raises(LocalProtocolError):
        build_event(**{**_kwargs(create), "room_id": room_id})


def _kwargs(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_type": event["type"],
        "sender": event["sender"],
        "content": event["content"],
        "prev_events": event["prev_events"],
        "auth_events": event["auth_events"],
        "depth": event["depth"],
        "origin_server_ts": event["origin_server_ts"],
        "state_key": event.get("state_key"),
    }


def test_redaction_keeps_only_the_listed_content_keys() -> None:
    power = {"type": "power_levels", "content": {"level": 5, "ban": 50, "users": {}}, "junk": 1}
    assert redact_event(power) == {"type": "power_levels", "content": {"level": 5, "ban": 50}}
    create = {"type": "create", "content": {"creator": "@a:b", "anything": [1]}, "unsigned": {}}
    assert redact_event(create) == {
        "type": "create",
        "content": {"creator": "@a:b", "anything": [1]},
    }
    message = {"type": "message", "content": {"body": "secret"}}
    assert redact_event(message) == {"type": "message", "content": {}}


_FIELDS = [
    "type",
    "sender",
    "room_id",
    "state_key",
    "content",
    "depth",
    "prev_events",
    "auth_events",
    "origin_server_ts",
    "hashes",
    "signatures",
    "unsigned",
    "extra",
]


@given(
    unsigned_events(),
    st.sampled_from(_FIELDS),
    st.none()
    | st.integers()
    | st.text(max_size=5)
    | st.lists(st.text(max_size=3), max_size=3)
    | st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
)
def test_malformed_events_raise_only_protocol_errors(
    event: dict[str, Any], field: str, value: Any
) -> None:
    signed = sign_event(event, "a.example", ID_A, KEY_A)
    with contextlib.suppress(RemoteProtocolError):
        verify_event({**signed, field: value}, KEYS)


@given(st.dictionaries(st.sampled_from(_FIELDS), st.integers() | st.text(max_size=4), max_size=13))
def test_arbitrary_objects_are_never_accepted_as_events(obj: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError):
        verify_event(obj, KEYS)


@given(unsigned_events(), st.booleans())
def test_the_fast_size_equals_the_size_of_the_full_encoding(
    event: dict[str, Any], co_sign: bool
) -> None:
    signed = sign_event(event, "a.example", ID_A, KEY_A)
    if co_sign:
        signed = sign_event(signed, "b.example", ID_B, KEY_B)
    for form in (event, signed, {**signed, "unsigned": {"a": 1}}):
        assert _size_from_hash_form(_content_hash_bytes(form), form) == event_size(form)


@given(
    st.fixed_dictionaries({}, optional={"type": json_values, "content": json_values}) | json_objects
)
def test_redaction_of_any_object_is_total(obj: dict[str, Any]) -> None:
    redacted = redact_event(obj)
    assert set(redacted) <= set(obj) | {"content"}
    assert isinstance(redacted["content"], dict)
    assert redact_event(redacted) == redacted


def _outcome(event: Any, *, decoded: bool) -> tuple[str, str | None]:
    try:
        verified = verify_event(event, KEYS, decoded=decoded)
    except ProtocolError as exc:
        return exc.code.value, None
    return ("redacted" if verified.redacted else "ok"), verified.event_id


@given(unsigned_events(), json_objects)
def test_a_decoded_event_verifies_the_same_without_the_data_model_walk(
    event: dict[str, Any], extra: dict[str, Any]
) -> None:
    """``decoded=True`` only skips a walk that decode_json already made: same outcomes for
    valid, tampered and malformed events, as long as they came out of decode_json."""
    signed = sign_event(event, "a.example", ID_A, KEY_A)
    for candidate in (signed, {**signed, "content": extra}, {**signed, **extra}):
        decoded = decode_json(encode_canonical_json(candidate))
        assert _outcome(decoded, decoded=True) == _outcome(decoded, decoded=False)
