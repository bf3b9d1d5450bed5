"""Unpadded base64: every byte string has exactly one text form in each alphabet."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import (
    ErrorCode,
    RemoteProtocolError,
    decode_base64,
    decode_base64_urlsafe,
    encode_base64,
    encode_base64_urlsafe,
)


@given(st.binary(max_size=100))
def test_round_trip_in_both_alphabets(data: bytes) -> None:
    assert decode_base64(encode_base64(data)) == data
    assert decode_base64_urlsafe(encode_base64_urlsafe(data)) == data
    assert "=" not in encode_base64(data) + encode_base64_urlsafe(data)
    assert encode_base64(data) == base64.b64encode(data).decode().rstrip("=")


@given(st.text(max_size=60))
def test_decoding_arbitrary_text_returns_the_one_encoding_or_raises(text: str) -> None:
    for decode, encode in (
        (decode_base64, encode_base64),
        (decode_base64_urlsafe, encode_base64_urlsafe),
    ):
        try:
            data = decode(text)
        except RemoteProtocolError as exc:
            assert exc.code is ErrorCode.BAD_BASE64
        else:
            assert encode(data) == text


@pytest.mark.parametrize("text", ["AB", "AAC", "AAAAAB"])
def test_non_zero_trailing_bits_are_refused(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_base64(text)
