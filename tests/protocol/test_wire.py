"""Wire frames: any message decodes to a frame or raises ``FrameError`` — nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import (
    Endpoint,
    ErrorCode,
    ErrorResponse,
    Frame,
    FrameError,
    Notice,
    RemoteProtocolError,
    Request,
    Response,
    Role,
    decode_frame,
    encode_frame,
    error_response,
)
from protocol.schema import Field, Schema
from protocol.wire import MAX_ERROR_MESSAGE_LENGTH, MAX_FRAME_BYTES, CloseCode
from tests.protocol.strategies import json_objects, json_text, json_values, safe_integers

endpoints = st.sampled_from(list(Endpoint))
roles = st.sampled_from(list(Role))
request_ids = st.text(min_size=1, max_size=64) | st.integers(0, 2**53 - 1)
envelope_keys = st.sampled_from(["id", "op", "params", "result", "error", "x"])
envelope_values: st.SearchStrategy[Any] = (
    st.sampled_from(["ping", "pong", None, 1, "", {}, []]) | json_values
)


def _decode_or_frame_error(data: str | bytes, endpoint: Endpoint, sender: Role) -> Frame | None:
    try:
        return decode_frame(data, endpoint=endpoint, sender=sender)
    except FrameError as exc:
        assert isinstance(exc.code, ErrorCode)
        assert exc.close_code in (None, CloseCode.INVALID_PAYLOAD, CloseCode.MESSAGE_TOO_BIG)
        # The error frame answering it always encodes.
        encode_frame(exc.to_response())
        return None


@given(st.binary(max_size=300) | st.text(max_size=300), endpoints, roles)
def test_arbitrary_messages_decode_or_raise_frame_error(
    data: str | bytes, endpoint: Endpoint, sender: Role
) -> None:
    _decode_or_frame_error(data, endpoint, sender)


@given(st.dictionaries(envelope_keys, envelope_values, max_size=5), endpoints, roles)
def test_arbitrary_envelopes_decode_or_raise_frame_error(
    obj: dict[str, Any], endpoint: Endpoint, sender: Role
) -> None:
    _decode_or_frame_error(json.dumps(obj), endpoint, sender)


frames = st.one_of(
    st.builds(Request, request_ids, st.just("ping"), st.just({})),
    st.builds(Response, request_ids, json_objects),
    st.builds(ErrorResponse, request_ids | st.none(), st.text(min_size=1, max_size=64), json_text),
)


@given(frames, endpoints)
def test_encoded_frames_decode_to_themselves(frame: Frame, endpoint: Endpoint) -> None:
    sender = Role.CLIENT if isinstance(frame, Request) else Role.NODE
    assert decode_frame(encode_frame(frame), endpoint=endpoint, sender=sender) == frame
    assert decode_frame(encode_frame(frame).decode(), endpoint=endpoint, sender=sender) == frame


def test_a_request_id_is_echoed_in_its_error() -> None:
    with pytest.raises(FrameError) as caught:
        decode_frame('{"id": "abc", "op": "nope"}', endpoint=Endpoint.CLIENT, sender=Role.CLIENT)
    assert caught.value.request_id == "abc"
    assert caught.value.to_response() == ErrorResponse("abc", "unknown_op", caught.value.message)
    assert not caught.value.fatal


def test_unparseable_messages_are_fatal_with_the_right_close_code() -> None:
    with pytest.raises(FrameError) as bad:
        decode_frame(b"\xff", endpoint=Endpoint.CLIENT, sender=Role.CLIENT)
    assert bad.value.close_code == CloseCode.INVALID_PAYLOAD
    big = '{"id": 1, "op": "ping", "params": {}}' + " " * MAX_FRAME_BYTES[Endpoint.CLIENT]
    with pytest.raises(FrameError) as large:
        decode_frame(big, endpoint=Endpoint.CLIENT, sender=Role.CLIENT)
    assert (large.value.code, large.value.close_code) == (
        ErrorCode.TOO_LARGE,
        CloseCode.MESSAGE_TOO_BIG,
    )
    # The federation socket allows bigger frames.
    assert isinstance(decode_frame(big, endpoint=Endpoint.FEDERATION, sender=Role.NODE), Request)


def test_a_notice_is_a_frame_without_id() -> None:
    frame = Notice("anything", {"a": 1})
    assert json.loads(encode_frame(frame)) == {"op": "anything", "params": {"a": 1}}


def test_error_messages_are_bounded() -> None:
    error = error_response(7, RemoteProtocolError(ErrorCode.BAD_PARAMS, "x" * 5000))
    assert len(error.message) == MAX_ERROR_MESSAGE_LENGTH
    assert json.loads(encode_frame(error))["error"]["code"] == "bad_params"


SCHEMA = Schema(
    {
        "name": Field(str, max_length=5),
        "count": Field(int, required=False, minimum=1, maximum=10),
        "tags": Field(list, required=False, max_length=2, items=Field(str)),
        "flag": Field(bool, required=False),
    }
)


@given(
    st.dictionaries(
        st.sampled_from(["name", "count", "tags", "flag", "zzz"]), json_values, max_size=4
    )
    | json_values
)
def test_schemas_accept_or_raise_bad_params(params: Any) -> None:
    try:
        assert SCHEMA.validate(params) is params
    except RemoteProtocolError as exc:
        assert exc.code in (ErrorCode.BAD_PARAMS, ErrorCode.TOO_LARGE)


@given(st.text(max_size=5), st.none() | st.integers(1, 10), st.lists(st.text(), max_size=2))
def test_schemas_accept_what_they_declare(name: str, count: int | None, tags: list[str]) -> None:
    params: dict[str, Any] = {"name": name, "tags": tags}
    if count is not None:
        params["count"] = count
    assert SCHEMA.validate(params) == params


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, ErrorCode.BAD_PARAMS),
        ({"name": 5}, ErrorCode.BAD_PARAMS),
        ({"name": "toolong"}, ErrorCode.TOO_LARGE),
        ({"name": "a", "count": 0}, ErrorCode.BAD_PARAMS),
        ({"name": "a", "flag": 1}, ErrorCode.BAD_PARAMS),
        ({"name": "a", "tags": ["x", 1]}, ErrorCode.BAD_PARAMS),
        ({"name": "a", "other": 1}, ErrorCode.BAD_PARAMS),
    ],
)
def test_schema_errors_name_the_problem(params: dict[str, Any], code: ErrorCode) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        SCHEMA.validate(params)
    assert caught.value.code is code


@given(safe_integers)
def test_integer_bounds_are_inclusive(number: int) -> None:
    schema = Schema({"n": Field(int, minimum=-5, maximum=5)})
    if -5 <= number <= 5:
        schema.validate({"n": number})
    else:
        with pytest.raises(RemoteProtocolError):
            schema.validate({"n": number})
