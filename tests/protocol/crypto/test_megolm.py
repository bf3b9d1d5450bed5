"""Megolm (spec/e2ee.md §3) on its own: the ratchet's arithmetic, the strict formats, the
order of checks, the replay rule, pickles — and that no input makes a parser raise anything
but our own ProtocolError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from protocol import ErrorCode, ProtocolError
from protocol.crypto.megolm import InboundGroupSession, OutboundGroupSession
from protocol.crypto.megolm_formats import (
    EXPORT_BYTES,
    SESSION_KEY_BYTES,
    MegolmMessage,
    decode_export,
    decode_session_key,
)
from protocol.crypto.megolm_ratchet import MAX_INDEX, Ratchet
from protocol.crypto.primitives import b64decode, b64encode, encode_varint, hmac_sha256
from protocol.errors import LocalProtocolError, RemoteProtocolError
from tests.vectors.megolm import seeded_random

RATCHET_BYTES = bytes(range(128))
SEED = bytes(range(100, 132))
PICKLE_KEY = bytes(range(32))


def _outbound(index: int = 0) -> OutboundGroupSession:
    return OutboundGroupSession(Ratchet(RATCHET_BYTES, 0).advance_to(index), SEED)


def _refused(call: object, *args: object) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


def _sign(body: bytes, mac_key: bytes) -> str:
    """A message with any body, MAC'd and signed over exactly the bytes given."""
    mac = hmac_sha256(mac_key, body)[:8]
    return b64encode(body + mac + SigningKey(SEED).sign(body + mac).signature)


# --- the ratchet (§3.2, §3.3) ---------------------------------------------------------------


@pytest.mark.parametrize(("start", "end"), [(0, 300), (250, 530), (65_530, 65_540)])
def test_winding_the_ratchet_equals_advancing_it_one_step_at_a_time(start: int, end: int) -> None:
    stepped = Ratchet(RATCHET_BYTES, 0).advance_to(start)
    for index in range(start + 1, end + 1):
        stepped = stepped.advance()
        assert stepped == Ratchet(RATCHET_BYTES, 0).advance_to(start).advance_to(index)


@given(st.integers(0, MAX_INDEX), st.integers(0, MAX_INDEX))
def test_winding_in_two_legs_equals_winding_in_one(a: int, b: int) -> None:
    low, high = sorted((a, b))
    base = Ratchet(RATCHET_BYTES, 0)
    assert base.advance_to(low).advance_to(high) == base.advance_to(high)


def test_a_ratchet_cannot_be_wound_back_or_past_its_last_index() -> None:
    at_ten = Ratchet(RATCHET_BYTES, 10)
    with pytest.raises(LocalProtocolError):
        at_ten.advance_to(9)
    with pytest.raises(LocalProtocolError):
        Ratchet(RATCHET_BYTES, MAX_INDEX).advance()
    assert at_ten.advance_to(10) == at_ten


def test_only_the_fast_parts_move_within_a_period() -> None:
    start = Ratchet(RATCHET_BYTES, 0)
    one = start.advance()
    assert one.data[:96] == start.data[:96]
    assert one.part(3) != start.part(3)
    boundary = start.advance_to(256)
    assert boundary.data[:64] == start.data[:64]
    assert boundary.part(2) != start.part(2)
    top = start.advance_to(1 << 24)
    assert top.part(0) != start.part(0)


def test_a_session_is_used_up_before_its_last_index() -> None:
    out = _outbound(MAX_INDEX - 1)
    inbound = InboundGroupSession.from_session_key(out.session_key)
    assert inbound.decrypt(out.encrypt(b"last"))[:2] == (b"last", MAX_INDEX - 1)
    with pytest.raises(LocalProtocolError):
        out.encrypt(b"one too many")
    assert len(b64decode(inbound.export_at(MAX_INDEX))) == EXPORT_BYTES
    with pytest.raises(LocalProtocolError):
        inbound.export_at(MAX_INDEX + 1)
    with pytest.raises(LocalProtocolError):
        OutboundGroupSession(Ratchet(RATCHET_BYTES, 0), SEED[:31])


# --- formats (§3.5 to §3.7) -------------------------------------------------------------------


def test_session_key_and_export_have_their_fixed_sizes() -> None:
    out = _outbound(5)
    assert len(b64decode(out.session_key)) == SESSION_KEY_BYTES == 229
    inbound = InboundGroupSession.from_session_key(out.session_key)
    export = inbound.export_at(7)
    assert len(b64decode(export)) == EXPORT_BYTES == 165
    assert decode_export(export).ratchet == Ratchet(RATCHET_BYTES, 0).advance_to(7)
    assert decode_session_key(out.session_key).ratchet.index == 5
    assert inbound.session_id == out.session_id == b64encode(bytes(SigningKey(SEED).verify_key))


def test_a_message_is_laid_out_byte_for_byte() -> None:
    out = _outbound(300)
    raw = b64decode(out.encrypt(b"hi"))
    assert raw[:4] == b"\x03\x08\xac\x02"  # version, tag, varint(300)
    assert raw[4:6] == b"\x12\x10"  # tag, 16 bytes of ciphertext
    assert len(raw) == 6 + 16 + 8 + 64
    assert MegolmMessage.from_bytes(raw).to_bytes() == raw


def test_index_zero_is_written_out() -> None:
    assert b64decode(_outbound().encrypt(b""))[:4] == b"\x03\x08\x00\x12"


def _mangled_bodies() -> list[tuple[str, bytes]]:
    ciphertext = bytes(16)
    return [
        ("non-minimal index", b"\x03\x08\x80\x00\x12\x10" + ciphertext),
        ("fields swapped", b"\x03\x12\x10" + ciphertext + b"\x08\x00"),
        ("index missing", b"\x03\x12\x10" + ciphertext),
        ("unknown field", b"\x03\x08\x00\x12\x10" + ciphertext + b"\x18\x01"),
        ("version 4", b"\x04\x08\x00\x12\x10" + ciphertext),
        ("index above u32", b"\x03\x08" + encode_varint(1 << 32) + b"\x12\x10" + ciphertext),
        ("length too long", b"\x03\x08\x00\x12\x11" + ciphertext),
    ]


@pytest.mark.parametrize(("name", "body"), _mangled_bodies(), ids=[n for n, _ in _mangled_bodies()])
def test_non_canonical_messages_are_refused_even_when_signed(name: str, body: bytes) -> None:
    inbound = InboundGroupSession.from_session_key(_outbound().session_key)
    keys = Ratchet(RATCHET_BYTES, 0).keys()
    assert _refused(inbound.decrypt, _sign(body, keys.mac_key)).code == ErrorCode.BAD_MESSAGE


def test_a_session_key_with_a_bad_signature_is_refused() -> None:
    raw = bytearray(b64decode(_outbound().session_key))
    raw[-1] ^= 1
    error = _refused(InboundGroupSession.from_session_key, b64encode(bytes(raw)))
    assert error.code == ErrorCode.BAD_MESSAGE


def test_a_session_key_is_not_an_export_and_vice_versa() -> None:
    key = _outbound().session_key
    export = InboundGroupSession.from_session_key(key).export_at(0)
    assert _refused(InboundGroupSession.import_export, key).code == ErrorCode.BAD_MESSAGE
    assert _refused(InboundGroupSession.from_session_key, export).code == ErrorCode.BAD_MESSAGE


def test_bad_base64_is_bad_base64() -> None:
    inbound = InboundGroupSession.from_session_key(_outbound().session_key)
    assert _refused(inbound.decrypt, "not*base64").code == ErrorCode.BAD_BASE64
    assert _refused(InboundGroupSession.import_export, "%%").code == ErrorCode.BAD_BASE64


# --- decryption: order of checks, first known index (§3.8) --------------------------------


def test_messages_decrypt_in_any_order() -> None:
    out = _outbound()
    inbound = InboundGroupSession.from_session_key(out.session_key)
    messages = [out.encrypt(f"m{i}".encode()) for i in range(6)]
    for i in (5, 0, 3, 1, 4, 2):
        assert inbound.decrypt(messages[i])[:2] == (f"m{i}".encode(), i)


def test_a_message_before_the_first_known_index_is_refused_clearly() -> None:
    out = _outbound()
    early = out.encrypt(b"before")
    inbound = InboundGroupSession.from_session_key(out.session_key)
    error = _refused(inbound.decrypt, early)
    assert error.code == ErrorCode.BAD_MESSAGE
    assert "first known index 1" in error.message
    with pytest.raises(LocalProtocolError):
        inbound.export_at(0)


def test_the_signature_is_checked_before_the_index_and_the_mac() -> None:
    out = _outbound()
    early = bytearray(b64decode(out.encrypt(b"before")))
    inbound = InboundGroupSession.from_session_key(out.session_key)
    early[-1] ^= 1
    assert "signature" in _refused(inbound.decrypt, b64encode(bytes(early))).message


def test_a_bad_mac_is_refused_under_a_good_signature() -> None:
    inbound = InboundGroupSession.from_session_key(_outbound().session_key)
    body = MegolmMessage.body(0, bytes(16))
    forged = _sign(body, mac_key=bytes(32))
    assert "MAC" in _refused(inbound.decrypt, forged).message


# --- replays (§3.9) -----------------------------------------------------------------------


def test_the_same_message_twice_is_reported_as_a_replay() -> None:
    out = _outbound()
    inbound = InboundGroupSession.from_session_key(out.session_key)
    message = out.encrypt(b"once")
    assert inbound.decrypt(message) == (b"once", 0, False)
    assert inbound.decrypt(message) == (b"once", 0, True)


def test_another_message_under_a_seen_index_is_refused() -> None:
    first, second = _outbound(), _outbound()
    inbound = InboundGroupSession.from_session_key(first.session_key)
    inbound.decrypt(first.encrypt(b"to Bob"))
    error = _refused(inbound.decrypt, second.encrypt(b"to Carol"))
    assert error.code == ErrorCode.BAD_MESSAGE
    assert "already used" in error.message


def test_the_replay_record_survives_pickling() -> None:
    first, second = _outbound(), _outbound()
    inbound = InboundGroupSession.from_session_key(first.session_key)
    message = first.encrypt(b"kept")
    inbound.decrypt(message)
    restored = InboundGroupSession.from_pickle(
        PICKLE_KEY, inbound.pickle(PICKLE_KEY, seeded_random("pickle"))
    )
    assert restored.decrypt(message).replay
    assert _refused(restored.decrypt, second.encrypt(b"other")).code == ErrorCode.BAD_MESSAGE
    assert restored.signed
    assert restored.first_known_index == 0


# --- pickles --------------------------------------------------------------------------------


def test_an_outbound_session_continues_after_pickling() -> None:
    out = _outbound(41)
    restored = OutboundGroupSession.from_pickle(
        PICKLE_KEY, out.pickle(PICKLE_KEY, seeded_random("p"))
    )
    assert (restored.session_id, restored.message_index) == (out.session_id, 41)
    assert restored.encrypt(b"x") == out.encrypt(b"x")


def test_a_pickle_does_not_open_with_another_key() -> None:
    sealed = _outbound().pickle(PICKLE_KEY, seeded_random("p"))
    error = _refused(OutboundGroupSession.from_pickle, bytes(32), sealed)
    assert error.code == ErrorCode.BAD_MESSAGE
    inbound = InboundGroupSession.import_export(
        InboundGroupSession.from_session_key(_outbound().session_key).export_at(3)
    )
    assert not inbound.signed
    sealed = inbound.pickle(PICKLE_KEY, seeded_random("p"))
    assert _refused(OutboundGroupSession.from_pickle, PICKLE_KEY, sealed)
    assert _refused(InboundGroupSession.from_pickle, bytes(32), sealed)
    with pytest.raises(LocalProtocolError):
        inbound.pickle(b"short", seeded_random("p"))


# --- every parser: parsed, or our ProtocolError ---------------------------------------------


def _parsed_or_protocol_error(call: object, *args: object) -> None:
    with contextlib.suppress(ProtocolError):
        call(*args)  # type: ignore[operator]


@given(st.binary(max_size=300))
def test_any_bytes_are_a_message_or_bad_message(data: bytes) -> None:
    _parsed_or_protocol_error(MegolmMessage.from_bytes, data)


@given(st.text(max_size=400) | st.binary(max_size=300).map(b64encode))
def test_any_text_decrypts_or_is_refused(text: str) -> None:
    inbound = InboundGroupSession.from_session_key(_outbound().session_key)
    _parsed_or_protocol_error(inbound.decrypt, text)
    _parsed_or_protocol_error(InboundGroupSession.from_session_key, text)
    _parsed_or_protocol_error(InboundGroupSession.import_export, text)


@given(st.binary(min_size=EXPORT_BYTES, max_size=SESSION_KEY_BYTES + 1))
def test_any_key_sized_bytes_are_a_key_or_refused(data: bytes) -> None:
    for version in (b"\x01", b"\x02"):
        text = b64encode(version + data[1:])
        _parsed_or_protocol_error(InboundGroupSession.from_session_key, text)
        _parsed_or_protocol_error(InboundGroupSession.import_export, text)


@given(st.binary(max_size=400))
def test_any_sealed_bytes_unpickle_or_are_refused(data: bytes) -> None:
    _parsed_or_protocol_error(OutboundGroupSession.from_pickle, PICKLE_KEY, data)
    _parsed_or_protocol_error(InboundGroupSession.from_pickle, PICKLE_KEY, data)


@given(st.binary(max_size=300))
def test_any_sealed_state_unpickles_or_is_refused(state: bytes) -> None:
    """Authentic seals of arbitrary state: the layout checks, not the seal, must refuse."""
    from protocol.crypto.primitives import seal  # noqa: PLC0415

    for prefix in (b"", b"MO\x01", b"MI\x01\x00", b"MI\x01\x01"):
        sealed = seal(PICKLE_KEY, seeded_random("s"), prefix + state)
        _parsed_or_protocol_error(OutboundGroupSession.from_pickle, PICKLE_KEY, sealed)
        _parsed_or_protocol_error(InboundGroupSession.from_pickle, PICKLE_KEY, sealed)


@given(st.integers(0, 99), st.integers(0, 255))
def test_any_single_byte_change_to_a_message_is_refused(position: int, xor: int) -> None:
    out = _outbound()
    inbound = InboundGroupSession.from_session_key(out.session_key)
    raw = bytearray(b64decode(out.encrypt(b"sixteen bytes!!")))
    raw[position % len(raw)] ^= xor or 1
    assert _refused(inbound.decrypt, b64encode(bytes(raw))).code == ErrorCode.BAD_MESSAGE
