"""Olm's message encodings (spec/e2ee.md §2.5): the exact layouts, the canonical form
only, and the parser invariant — any input is parsed or refused with our own error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.crypto.olm_messages import (
    MessageType,
    NormalMessage,
    OlmMessage,
    PreKeyMessage,
    decode_olm_message,
    parse_normal_message,
    parse_pre_key_message,
)
from protocol.errors import ErrorCode, ProtocolError

KEY_A, KEY_B, KEY_C, KEY_D = (bytes([n]) * 32 for n in (0xA1, 0xB2, 0xC3, 0xD4))
MAC = bytes(range(8))
NORMAL = NormalMessage(KEY_A, 300, b"x" * 16, MAC)
PRE_KEY = PreKeyMessage(KEY_B, KEY_C, KEY_D, NORMAL)


def _refused(parse: object, data: bytes) -> ErrorCode:
    with pytest.raises(ProtocolError) as caught:
        parse(data)  # type: ignore[operator]
    return ErrorCode(caught.value.code)


def test_a_normal_message_is_laid_out_field_by_field() -> None:
    assert NORMAL.to_bytes() == (
        b"\x03\x0a\x20" + KEY_A + b"\x10\xac\x02" + b"\x22\x10" + b"x" * 16 + MAC
    )
    assert parse_normal_message(NORMAL.to_bytes()) == NORMAL


def test_a_chain_index_of_zero_is_written_out() -> None:
    message = NormalMessage(KEY_A, 0, b"y" * 32, MAC)
    assert b"\x10\x00\x22\x20" in message.to_bytes()
    assert parse_normal_message(message.to_bytes()) == message


def test_a_pre_key_message_wraps_a_whole_normal_message() -> None:
    inner = NORMAL.to_bytes()
    assert PRE_KEY.to_bytes() == (
        b"\x03\x0a\x20" + KEY_B + b"\x12\x20" + KEY_C + b"\x1a\x20" + KEY_D
        + b"\x22" + bytes([len(inner)]) + inner
    )  # fmt: skip
    assert parse_pre_key_message(PRE_KEY.to_bytes()) == PRE_KEY


def test_olm_messages_carry_unpadded_base64() -> None:
    message = OlmMessage.from_bytes(1, NORMAL.to_bytes())
    assert "=" not in message.body
    assert message.type is MessageType.NORMAL
    assert decode_olm_message(message) == NORMAL


NON_CANONICAL = [
    ("version 4", b"\x04" + NORMAL.to_bytes()[1:]),
    ("version 2", b"\x02" + NORMAL.to_bytes()[1:]),
    ("fields reordered", b"\x03\x10\xac\x02\x0a\x20" + KEY_A + b"\x22\x10" + b"x" * 16 + MAC),
    ("chain index missing", b"\x03\x0a\x20" + KEY_A + b"\x22\x10" + b"x" * 16 + MAC),
    ("non-minimal varint", b"\x03\x0a\x20" + KEY_A + b"\x10\xac\x82\x00\x22\x10" + b"x" * 16 + MAC),
    ("an extra field", NORMAL.mac_input() + b"\x28\x01" + MAC),
    ("a 31-byte key", b"\x03\x0a\x1f" + KEY_A[:31] + b"\x10\x00\x22\x10" + b"x" * 16 + MAC),
    ("empty ciphertext", b"\x03\x0a\x20" + KEY_A + b"\x10\x00\x22\x00" + MAC),
    ("ciphertext longer than said", b"\x03\x0a\x20" + KEY_A + b"\x10\x00\x22\x11" + b"x" * 16
     + MAC),
    ("a chain index above 2^64-1", b"\x03\x0a\x20" + KEY_A + b"\x10" + b"\xff" * 9 + b"\x02"
     + b"\x22\x10" + b"x" * 16 + MAC),
    ("MAC cut short", NORMAL.to_bytes()[:-1]),
    ("empty", b""),
]  # fmt: skip


@pytest.mark.parametrize(("name", "data"), NON_CANONICAL, ids=[n for n, _ in NON_CANONICAL])
def test_only_the_canonical_form_of_a_normal_message_parses(name: str, data: bytes) -> None:
    assert _refused(parse_normal_message, data) == ErrorCode.BAD_MESSAGE


def test_only_the_canonical_form_of_a_pre_key_message_parses() -> None:
    good = PRE_KEY.to_bytes()
    for bad in [
        good[:-1],
        good + b"\x00",
        b"\x04" + good[1:],
        good[:1] + good[35:69] + good[1:35] + good[69:],  # one-time and base key swapped
        good[:1] + b"\x0a\x21" + KEY_B + b"\x00" + good[35:],
    ]:
        assert _refused(parse_pre_key_message, bad) == ErrorCode.BAD_MESSAGE


@pytest.mark.parametrize("kind", [2, -1, True, "0", None])
def test_an_olm_message_has_type_0_or_1(kind: object) -> None:
    with pytest.raises(ProtocolError) as caught:
        OlmMessage(kind, "AAAA")  # type: ignore[arg-type]
    assert caught.value.code == ErrorCode.BAD_MESSAGE


def test_a_body_that_is_not_base64_is_bad_base64() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_olm_message(OlmMessage(MessageType.NORMAL, "not base64!"))
    assert caught.value.code == ErrorCode.BAD_BASE64


# --- the parser invariant ------------------------------------------------------------------


def _mutations() -> st.SearchStrategy[bytes]:
    """Valid encodings with a few bytes changed, cut or added: close to the real thing."""
    seeds = st.sampled_from([NORMAL.to_bytes(), PRE_KEY.to_bytes()])
    return st.one_of(
        st.tuples(seeds, st.integers(0, 200), st.integers(0, 255)).map(
            lambda t: t[0][: t[1]] + bytes([t[2]]) + t[0][t[1] + 1 :]
        ),
        st.tuples(seeds, st.integers(0, 200)).map(lambda t: t[0][: t[1]]),
        st.tuples(seeds, st.binary(max_size=8)).map(lambda t: t[0] + t[1]),
    )


@given(st.binary(max_size=300) | _mutations())
def test_any_bytes_parse_as_a_normal_message_or_are_bad_message(data: bytes) -> None:
    try:
        message = parse_normal_message(data)
    except ProtocolError as exc:
        assert exc.code == ErrorCode.BAD_MESSAGE
    else:
        assert message.to_bytes() == data


@given(st.binary(max_size=300) | _mutations())
def test_any_bytes_parse_as_a_pre_key_message_or_are_bad_message(data: bytes) -> None:
    try:
        message = parse_pre_key_message(data)
    except ProtocolError as exc:
        assert exc.code == ErrorCode.BAD_MESSAGE
    else:
        assert message.to_bytes() == data


@given(st.sampled_from([0, 1]), st.text(max_size=200))
def test_any_body_decodes_or_is_refused_with_our_error(kind: int, body: str) -> None:
    try:
        decode_olm_message(OlmMessage(MessageType(kind), body))
    except ProtocolError as exc:
        assert exc.code in (ErrorCode.BAD_MESSAGE, ErrorCode.BAD_BASE64)
