"""The shared building blocks of Olm and Megolm (spec/e2ee.md §1): known answers from the
RFCs, round trips, and refusals with the protocol's own errors."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import ErrorCode, ProtocolError
from protocol.crypto.primitives import (
    RandomBytes,
    aes_cbc_decrypt,
    aes_cbc_encrypt,
    b64decode,
    b64encode,
    decode_varint,
    encode_varint,
    hkdf_sha256,
    hmac_sha256,
    open_sealed,
    seal,
    x25519,
    x25519_public,
)


def _counter_bytes(seed: str) -> RandomBytes:
    """A deterministic ``random_bytes`` for tests."""
    state = {"n": 0}

    def random_bytes(n: int) -> bytes:
        out = b""
        while len(out) < n:
            state["n"] += 1
            out += hashlib.sha256(f"{seed}{state['n']}".encode()).digest()
        return out[:n]

    return random_bytes


def test_hkdf_matches_rfc_5869_test_case_1() -> None:
    ikm = bytes.fromhex("0b" * 22)
    salt = bytes.fromhex("000102030405060708090a0b0c")
    info = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9")
    okm = hkdf_sha256(ikm, salt=salt, info=info, length=42)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_a_zero_byte_salt_is_the_same_as_none() -> None:
    """e2ee.md §1: HMAC pads its key with zeros, so Olm's "salt 0" needs no care."""
    assert hkdf_sha256(b"s", salt=b"\x00", info=b"i", length=32) == hkdf_sha256(
        b"s", salt=b"", info=b"i", length=32
    )


def test_hmac_matches_rfc_4231_test_case_2() -> None:
    digest = hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert digest.hex() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


@given(st.binary(max_size=200))
def test_aes_cbc_round_trips(plaintext: bytes) -> None:
    key, iv = bytes(range(32)), bytes(range(16))
    ciphertext = aes_cbc_encrypt(key, iv, plaintext)
    assert len(ciphertext) % 16 == 0
    assert aes_cbc_decrypt(key, iv, ciphertext) == plaintext


@pytest.mark.parametrize("ciphertext", [b"", b"x" * 15, b"x" * 17])
def test_aes_cbc_refuses_partial_blocks(ciphertext: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        aes_cbc_decrypt(bytes(32), bytes(16), ciphertext)
    assert caught.value.code == ErrorCode.BAD_MESSAGE


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_varints_round_trip_minimally(value: int) -> None:
    encoded = encode_varint(value)
    assert decode_varint(encoded, 0) == (value, len(encoded))
    assert encoded[-1] != 0 or value == 0


@pytest.mark.parametrize("data", [b"", b"\x80", b"\x80\x00", b"\xff" * 11])
def test_varints_cut_short_too_long_or_not_minimal_are_refused(data: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_varint(data, 0)
    assert caught.value.code == ErrorCode.BAD_MESSAGE


@given(st.binary(max_size=12))
def test_any_bytes_decode_as_a_varint_or_a_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_varint(data, 0)


@given(st.binary(max_size=64))
def test_base64_round_trips_unpadded(data: bytes) -> None:
    text = b64encode(data)
    assert "=" not in text
    assert b64decode(text) == data


@given(st.text(max_size=20))
def test_any_text_decodes_as_base64_or_bad_base64(text: str) -> None:
    try:
        b64decode(text)
    except ProtocolError as exc:
        assert exc.code == ErrorCode.BAD_BASE64


def test_x25519_agrees_both_ways_and_refuses_low_order_points() -> None:
    a, b = bytes([1] * 32), bytes([2] * 32)
    assert x25519(a, x25519_public(b)) == x25519(b, x25519_public(a))
    with pytest.raises(ProtocolError) as caught:
        x25519(a, bytes(32))  # the identity point
    assert caught.value.code == ErrorCode.BAD_MESSAGE


def test_sealed_state_opens_with_its_key_only() -> None:
    random_bytes = _counter_bytes("seal")
    key = bytes(range(32))
    sealed = seal(key, random_bytes, b"ratchet state")
    assert open_sealed(key, sealed) == b"ratchet state"
    for bad_key, blob in ((bytes(32), sealed), (key, sealed[:-1] + bytes([sealed[-1] ^ 1]))):
        with pytest.raises(ProtocolError) as caught:
            open_sealed(bad_key, blob)
        assert caught.value.code == ErrorCode.BAD_MESSAGE
