"""Canonical JSON: byte-exact agreement with the ``canonicaljson`` oracle, and a decoder
that returns a value of the data model or raises ``RemoteProtocolError`` — nothing else."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import canonicaljson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import (
    MAX_DEPTH,
    ErrorCode,
    LocalProtocolError,
    RemoteProtocolError,
    decode_json,
    encode_canonical_json,
)
from tests.protocol.strategies import big_integers, floats, json_objects, json_values


@given(json_values)
def test_encoding_matches_the_canonicaljson_oracle_byte_for_byte(value: Any) -> None:
    assert encode_canonical_json(value) == canonicaljson.encode_canonical_json(value)


@given(json_values)
def test_decode_of_encode_is_identity(value: Any) -> None:
    assert decode_json(encode_canonical_json(value)) == value


@given(json_values)
def test_canonical_bytes_are_a_fixed_point(value: Any) -> None:
    encoded = encode_canonical_json(value)
    assert encode_canonical_json(decode_json(encoded)) == encoded


@given(json_values, st.sampled_from([None, 2, "\t"]))
def test_any_formatting_decodes_to_the_same_value(value: Any, indent: int | str | None) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=True)
    assert decode_json(text.encode()) == value
    assert decode_json(text) == value


@given(json_objects, st.lists(floats, min_size=1, max_size=3))
def test_every_float_is_refused_by_the_encoder(obj: dict[str, Any], bad: list[float]) -> None:
    with pytest.raises(LocalProtocolError) as caught:
        encode_canonical_json({**obj, "\x00float": bad})
    assert caught.value.code is ErrorCode.BAD_JSON


@given(st.one_of(floats, big_integers))
def test_floats_and_big_integers_are_refused_by_the_decoder(number: Any) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        decode_json(json.dumps({"n": number}).encode())
    assert caught.value.code is ErrorCode.BAD_JSON


@given(big_integers)
def test_big_integers_are_refused_by_the_encoder(number: int) -> None:
    with pytest.raises(LocalProtocolError):
        encode_canonical_json([number])


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_the_protocol_error(data: bytes) -> None:
    try:
        decode_json(data)
    except RemoteProtocolError as exc:
        assert exc.code in (ErrorCode.BAD_JSON, ErrorCode.TOO_LARGE)


@given(st.text(max_size=200))
def test_arbitrary_text_decodes_or_raises_the_protocol_error(text: str) -> None:
    try:
        decode_json(text)
    except RemoteProtocolError as exc:
        assert exc.code is ErrorCode.BAD_JSON


_JSONISH = st.sampled_from([*'{}[]:,"\\ -0123456789.eEtrufalsn', "\\u", "\\ud800", "1e5"])


@given(st.lists(_JSONISH | st.text(max_size=3), max_size=60).map("".join))
def test_json_shaped_noise_decodes_or_raises_the_protocol_error(text: str) -> None:
    try:
        value = decode_json(text)
    except RemoteProtocolError:
        return
    # Whatever is accepted must be re-encodable: the decoder never yields what the encoder
    # could not produce.
    encode_canonical_json(value)


@given(json_values, st.data())
def test_one_byte_mutations_decode_or_raise_the_protocol_error(value: Any, data: Any) -> None:
    encoded = bytearray(encode_canonical_json(value))
    position = data.draw(st.integers(0, len(encoded) - 1))
    encoded[position] = data.draw(st.integers(0, 255))
    try:
        decoded = decode_json(bytes(encoded))
    except RemoteProtocolError:
        return
    encode_canonical_json(decoded)


def test_accepted_values_equal_what_a_plain_json_parser_sees() -> None:
    text = '{"a": [1, -2, "x\\u00e9"], "b": {"c": null, "d": true}}'
    assert decode_json(text.encode()) == json.loads(text)


def test_nesting_at_the_limit_is_accepted_and_one_deeper_is_refused() -> None:
    deepest = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert encode_canonical_json(decode_json(deepest)).decode() == deepest
    with pytest.raises(RemoteProtocolError):
        decode_json("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    value: Any = []
    for _ in range(MAX_DEPTH):
        value = [value]
    with pytest.raises(LocalProtocolError):
        encode_canonical_json(value)


def test_absurd_nesting_is_a_protocol_error_not_a_recursion_error() -> None:
    for opener in "[{":
        text = (opener + ('"k":' if opener == "{" else "")) * 200_000
        with pytest.raises(RemoteProtocolError):
            decode_json(text.encode())


def test_a_self_referencing_value_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(LocalProtocolError):
        encode_canonical_json(loop)


def test_documents_over_the_size_limit_are_too_large() -> None:
    text = '"' + "x" * 100 + '"'
    assert decode_json(text, max_bytes=len(text)) == "x" * 100
    for data in (text, text.encode()):
        with pytest.raises(RemoteProtocolError) as caught:
            decode_json(data, max_bytes=len(text) - 1)
        assert caught.value.code is ErrorCode.TOO_LARGE


def test_the_size_limit_counts_utf8_bytes_not_characters() -> None:
    text = '"' + "é" * 10 + '"'  # 12 characters, 22 bytes
    with pytest.raises(RemoteProtocolError):
        decode_json(text, max_bytes=21)


def test_raw_lone_surrogates_are_refused_in_both_directions() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_json('"\ud800"')
    with pytest.raises(LocalProtocolError):
        encode_canonical_json({"k": "\udfff"})
    with pytest.raises(LocalProtocolError):
        encode_canonical_json({"\ud800": 1})


def test_valid_surrogate_pair_escapes_become_one_character() -> None:
    assert decode_json(b'"\\ud83d\\ude00"') == "\U0001f600"
    assert encode_canonical_json("\U0001f600") == '"\U0001f600"'.encode()


class _Color(StrEnum):
    RED = "red"


def test_tuples_and_string_enums_encode_as_plain_json() -> None:
    assert encode_canonical_json({"c": _Color.RED, "t": (1, 2)}) == b'{"c":"red","t":[1,2]}'


@pytest.mark.parametrize("value", [{1: "x"}, {None: 1}, b"bytes", {1.5}, object(), 1.0, -0.0])
def test_values_outside_the_data_model_are_refused(value: Any) -> None:
    with pytest.raises(LocalProtocolError) as caught:
        encode_canonical_json(value)
    assert caught.value.code is ErrorCode.BAD_JSON


def test_decoder_refuses_non_text_input() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_json(12)  # type: ignore[arg-type]
