"""Olm accounts and sessions of our own (spec/e2ee.md §2): keys and their ids, the stock
of one-time keys, fallback keys, what a session refuses, and state sealed for storage."""

from __future__ import annotations

import hashlib
import json
import os

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.crypto.olm_account import MAX_STORED_ONE_TIME_KEYS, Account, key_id
from protocol.crypto.olm_messages import MessageType, OlmMessage
from protocol.crypto.olm_session import Session
from protocol.crypto.primitives import RandomBytes, b64decode, seal
from protocol.errors import ErrorCode, ProtocolError

PICKLE_KEY = bytes(range(32))


def _seeded(seed: str) -> RandomBytes:
    """A deterministic ``random_bytes``."""
    counter = iter(range(1 << 62))

    def random_bytes(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"{seed} {next(counter)}".encode()).digest()
        return out[:n]

    return random_bytes


def _pair() -> tuple[Account, Account, Session, Session]:
    alice, bob = Account.create(os.urandom), Account.create(os.urandom)
    bob.generate_one_time_keys(1, os.urandom)
    (key,) = bob.one_time_keys.values()
    alice_session = alice.create_outbound_session(bob.curve25519_key, key, os.urandom)
    first = alice_session.encrypt(b"first", os.urandom)
    bob_session, _ = bob.create_inbound_session(alice.curve25519_key, first)
    return alice, bob, alice_session, bob_session


def _code(call: object, *args: object) -> ErrorCode:
    with pytest.raises(ProtocolError) as caught:
        call(*args)  # type: ignore[operator]
    return ErrorCode(caught.value.code)


# --- keys ----------------------------------------------------------------------------------


def test_identity_keys_come_from_the_callers_randomness() -> None:
    one, two = Account.create(_seeded("a")), Account.create(_seeded("a"))
    assert one.identity_keys == two.identity_keys
    assert set(one.identity_keys) == {"curve25519", "ed25519"}
    assert one.identity_keys != Account.create(_seeded("b")).identity_keys


def test_signatures_verify_under_the_ed25519_identity_key() -> None:
    account = Account.create(os.urandom)
    signature = b64decode(account.sign(b"{}"))
    verify_key = nacl.signing.VerifyKey(b64decode(account.ed25519_key))
    assert verify_key.verify(b"{}", signature) == b"{}"


def test_one_time_key_ids_count_up_from_zero_as_8_big_endian_bytes() -> None:
    account = Account.create(os.urandom)
    account.generate_one_time_keys(3, os.urandom)
    assert list(account.one_time_keys) == ["AAAAAAAAAAA", "AAAAAAAAAAE", "AAAAAAAAAAI"]
    assert key_id(256) == "AAAAAAAAAQA"


def test_published_keys_are_no_longer_listed_but_still_usable() -> None:
    alice, bob = Account.create(os.urandom), Account.create(os.urandom)
    bob.generate_one_time_keys(2, os.urandom)
    bob.generate_fallback_key(os.urandom)
    keys = list(bob.one_time_keys.values())
    assert len(bob.fallback_key) == 1
    bob.mark_keys_as_published()
    assert bob.one_time_keys == {}
    assert bob.fallback_key == {}
    session = alice.create_outbound_session(bob.curve25519_key, keys[1], os.urandom)
    _, plaintext = bob.create_inbound_session(
        alice.curve25519_key, session.encrypt(b"x", os.urandom)
    )
    assert plaintext == b"x"
    assert bob.stored_one_time_key_count == 1


def test_the_stock_of_one_time_keys_is_bounded_and_the_oldest_go_first() -> None:
    account = Account.create(os.urandom)
    account.generate_one_time_keys(MAX_STORED_ONE_TIME_KEYS, os.urandom)
    oldest = account.one_time_keys["AAAAAAAAAAA"]
    account.mark_keys_as_published()
    dropped = account.generate_one_time_keys(2, os.urandom)
    assert len(dropped) == 2
    assert dropped[0] == oldest
    assert account.stored_one_time_key_count == MAX_STORED_ONE_TIME_KEYS
    assert list(account.one_time_keys) == [key_id(MAX_STORED_ONE_TIME_KEYS), key_id(5001)]


def test_the_account_keeps_the_current_and_the_previous_fallback_key() -> None:
    account = Account.create(os.urandom)
    assert account.generate_fallback_key(os.urandom) is None
    (first,) = account.fallback_key.values()
    assert list(account.fallback_key) == ["AAAAAAAAAAA"]
    assert account.generate_fallback_key(os.urandom) is None
    assert list(account.fallback_key) == ["AAAAAAAAAAE"]
    assert account.generate_fallback_key(os.urandom) == first
    assert account.forget_fallback_key() is True
    assert account.forget_fallback_key() is False


# --- sessions refuse -----------------------------------------------------------------------


def test_session_ids_name_the_three_keys_that_set_it_up() -> None:
    _, _, alice_session, bob_session = _pair()
    keys = alice_session.keys
    digest = hashlib.sha256(keys.identity_key + keys.base_key + keys.one_time_key).digest()
    assert alice_session.session_id == bob_session.session_id
    assert b64decode(alice_session.session_id) == digest


def test_matches_recognises_the_sessions_own_pre_key_messages_only() -> None:
    _, _, alice_session, bob_session = _pair()
    _, _, other, _ = _pair()
    message = alice_session.encrypt(b"again", os.urandom)
    assert bob_session.matches(message)
    assert not bob_session.matches(other.encrypt(b"x", os.urandom))
    assert not alice_session.matches(bob_session.encrypt(b"normal", os.urandom))
    with pytest.raises(ProtocolError):
        bob_session.decrypt(other.encrypt(b"x", os.urandom))


def test_a_forged_message_changes_nothing() -> None:
    _, _, alice_session, bob_session = _pair()
    good = bob_session.encrypt(b"real", os.urandom)
    raw = good.to_bytes()
    forged = OlmMessage(good.type, OlmMessage.from_bytes(1, raw[:-1] + bytes([raw[-1] ^ 1])).body)
    before = alice_session.to_state()
    assert _code(alice_session.decrypt, forged) == ErrorCode.BAD_MESSAGE
    assert alice_session.to_state() == before
    assert alice_session.decrypt(good) == b"real"


def test_a_normal_message_does_not_start_a_session() -> None:
    _, bob, _, bob_session = _pair()
    normal = bob_session.encrypt(b"x", os.urandom)
    assert normal.type is MessageType.NORMAL
    assert _code(bob.create_inbound_session, bob.curve25519_key, normal) == ErrorCode.BAD_MESSAGE


def test_an_unknown_one_time_key_starts_nothing() -> None:
    alice, bob = Account.create(os.urandom), Account.create(os.urandom)
    stranger = Account.create(os.urandom)
    stranger.generate_one_time_keys(1, os.urandom)
    (key,) = stranger.one_time_keys.values()
    message = alice.create_outbound_session(bob.curve25519_key, key, os.urandom).encrypt(
        b"x", os.urandom
    )
    assert _code(bob.create_inbound_session, alice.curve25519_key, message) == (
        ErrorCode.BAD_MESSAGE
    )


@pytest.mark.parametrize(
    ("identity", "one_time", "code"),
    [
        ("AAAA", "A" * 43, ErrorCode.BAD_KEY),
        ("A" * 43, "not base64!", ErrorCode.BAD_BASE64),
        ("A" * 43, "A" * 43, ErrorCode.BAD_MESSAGE),  # all zeros: a low-order point
    ],
)
def test_bad_published_keys_are_refused(identity: str, one_time: str, code: ErrorCode) -> None:
    alice = Account.create(os.urandom)
    assert _code(alice.create_outbound_session, identity, one_time, os.urandom) == code


# --- storage -------------------------------------------------------------------------------


def test_an_account_survives_a_pickle_round_trip() -> None:
    alice, bob = Account.create(os.urandom), Account.create(os.urandom)
    bob.generate_one_time_keys(3, os.urandom)
    bob.generate_fallback_key(os.urandom)
    bob.generate_fallback_key(os.urandom)
    keys = list(bob.one_time_keys.values())
    bob.mark_keys_as_published()
    bob.generate_one_time_keys(1, os.urandom)
    restored = Account.from_pickle(PICKLE_KEY, bob.pickle(PICKLE_KEY, os.urandom))
    assert restored.identity_keys == bob.identity_keys
    assert restored.one_time_keys == bob.one_time_keys
    assert restored.fallback_key == bob.fallback_key == {}
    assert restored.stored_one_time_key_count == 4
    session = alice.create_outbound_session(bob.curve25519_key, keys[2], os.urandom)
    _, plaintext = restored.create_inbound_session(
        alice.curve25519_key, session.encrypt(b"x", os.urandom)
    )
    assert plaintext == b"x"
    restored.generate_one_time_keys(1, os.urandom)
    assert list(restored.one_time_keys) == [key_id(3), key_id(4)]


def test_state_sealed_under_one_key_does_not_open_under_another() -> None:
    _, _, session, _ = _pair()
    sealed = session.pickle(PICKLE_KEY, os.urandom)
    assert _code(Session.from_pickle, bytes(32), sealed) == ErrorCode.BAD_MESSAGE
    assert _code(Account.from_pickle, PICKLE_KEY, sealed) == ErrorCode.BAD_MESSAGE


@settings(max_examples=50)
@given(st.binary(max_size=200))
def test_any_bytes_unpickle_or_are_bad_message(data: bytes) -> None:
    for restore in (Account.from_pickle, Session.from_pickle):
        assert _code(restore, PICKLE_KEY, data) == ErrorCode.BAD_MESSAGE


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 2**64) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.data())
def test_any_sealed_json_unpickles_or_is_bad_message(data: st.DataObject) -> None:
    """Sealed under the right key, but not state we wrote: read field by field, refused."""
    _, _, session, _ = _pair()
    valid = {"format": 1, "kind": "olm session", "state": session.to_state()}
    document = data.draw(_JSON | _variations(valid))
    sealed = seal(PICKLE_KEY, os.urandom, json.dumps(document).encode())
    try:
        Session.from_pickle(PICKLE_KEY, sealed)
    except ProtocolError as exc:
        assert exc.code == ErrorCode.BAD_MESSAGE


def _variations(valid: dict[str, object]) -> st.SearchStrategy[object]:
    """``valid`` with one field of its state replaced by some other JSON value."""
    state = valid["state"]
    assert isinstance(state, dict)
    return st.tuples(st.sampled_from(sorted(state)), _JSON).map(
        lambda t: {**valid, "state": {**state, t[0]: t[1]}}
    )


def _near_misses(valid: OlmMessage) -> st.SearchStrategy[OlmMessage]:
    """``valid`` with a byte changed, cut short or extended, under either type."""
    raw = valid.to_bytes()
    changed = st.tuples(st.integers(0, len(raw) - 1), st.integers(1, 255)).map(
        lambda t: raw[: t[0]] + bytes([raw[t[0]] ^ t[1]]) + raw[t[0] + 1 :]
    )
    cut = st.integers(0, len(raw) - 1).map(lambda n: raw[:n])
    extended = st.binary(min_size=1, max_size=8).map(lambda tail: raw + tail)
    return st.tuples(st.sampled_from([0, 1]), changed | cut | extended | st.binary()).map(
        lambda t: OlmMessage.from_bytes(*t)
    )


@settings(max_examples=60)
@given(st.data())
def test_anything_but_the_real_message_is_refused_and_changes_nothing(data: st.DataObject) -> None:
    _, _, alice_session, bob_session = _pair()
    for sender, receiver in [(bob_session, alice_session), (alice_session, bob_session)]:
        valid = sender.encrypt(b"real", os.urandom)
        bad = data.draw(
            _near_misses(valid)
            | st.text(max_size=80).map(lambda t: OlmMessage(MessageType.NORMAL, t))
        )
        before = receiver.to_state()
        try:
            receiver.decrypt(bad)
        except ProtocolError as exc:
            assert exc.code in (ErrorCode.BAD_MESSAGE, ErrorCode.BAD_BASE64)
            assert receiver.to_state() == before
        else:
            assert bad.to_bytes() == valid.to_bytes()
        assert receiver.decrypt(valid) == b"real"


@settings(max_examples=40)
@given(st.data())
def test_any_would_be_pre_key_message_starts_a_session_or_is_refused(
    data: st.DataObject,
) -> None:
    alice, bob = Account.create(os.urandom), Account.create(os.urandom)
    bob.generate_one_time_keys(1, os.urandom)
    (key,) = bob.one_time_keys.values()
    valid = alice.create_outbound_session(bob.curve25519_key, key, os.urandom).encrypt(
        b"x", os.urandom
    )
    bad = data.draw(_near_misses(valid))
    try:
        bob.create_inbound_session(alice.curve25519_key, bad)
    except ProtocolError as exc:
        assert exc.code in (ErrorCode.BAD_MESSAGE, ErrorCode.BAD_BASE64)
        assert bob.stored_one_time_key_count == 1
    else:
        assert bad.to_bytes() == valid.to_bytes()
