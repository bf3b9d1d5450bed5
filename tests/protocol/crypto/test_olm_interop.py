"""Olm against vodozemac 0.10.0, in both directions (spec/e2ee.md §2).

Each test runs a conversation between two ends, each either ours (``protocol.crypto``) or
vodozemac's, and compares what happens with what happens between two vodozemac ends: the
same messages decrypt, the same ones are refused. vodozemac never reveals a private key;
all it sees of ours is public keys and messages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import vodozemac as vz
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.crypto.olm_account import Account
from protocol.crypto.olm_messages import OlmMessage
from protocol.crypto.olm_session import MAX_MESSAGE_GAP, MAX_SKIPPED_MESSAGE_KEYS, Session
from protocol.errors import ErrorCode, ProtocolError

Wire = tuple[int, bytes]
"""A message as (type, raw bytes): what both implementations can take."""


class End:
    """One end of a session, hiding whose implementation it is."""

    kind: str

    def encrypt(self, plaintext: bytes) -> Wire:
        raise NotImplementedError

    def decrypt(self, message: Wire) -> bytes | None:
        """The plaintext, or None if the message was refused."""
        raise NotImplementedError

    @property
    def session_id(self) -> str:
        raise NotImplementedError


@dataclass
class OurEnd(End):
    session: Session
    kind: str = "ours"

    def encrypt(self, plaintext: bytes) -> Wire:
        message = self.session.encrypt(plaintext, os.urandom)
        return int(message.type), message.to_bytes()

    def decrypt(self, message: Wire) -> bytes | None:
        try:
            return self.session.decrypt(OlmMessage.from_bytes(*message))
        except ProtocolError as exc:
            assert exc.code == ErrorCode.BAD_MESSAGE
            return None

    @property
    def session_id(self) -> str:
        return self.session.session_id


@dataclass
class TheirEnd(End):
    session: vz.Session
    kind: str = "vodozemac"

    def encrypt(self, plaintext: bytes) -> Wire:
        return self.session.encrypt(plaintext).to_parts()

    def decrypt(self, message: Wire) -> bytes | None:
        try:
            return self.session.decrypt(vz.AnyOlmMessage.from_parts(*message))
        except ValueError:
            return None

    @property
    def session_id(self) -> str:
        return self.session.session_id


@dataclass
class Device:
    """An account of either kind, publishing keys as a node would serve them."""

    kind: str
    ours: Account | None = None
    theirs: vz.Account | None = None
    received: list[bytes] = field(default_factory=list)

    @classmethod
    def make(cls, kind: str) -> Device:
        if kind == "ours":
            return cls(kind, ours=Account.create(os.urandom))
        return cls(kind, theirs=vz.Account())

    @property
    def curve25519(self) -> str:
        if self.ours is not None:
            return self.ours.curve25519_key
        assert self.theirs is not None
        return self.theirs.curve25519_key.to_base64()

    def one_time_key(self) -> str:
        if self.ours is not None:
            self.ours.generate_one_time_keys(1, os.urandom)
            key = list(self.ours.one_time_keys.values())[-1]
            self.ours.mark_keys_as_published()
            return key
        assert self.theirs is not None
        self.theirs.generate_one_time_keys(1)
        (public,) = self.theirs.one_time_keys.values()
        self.theirs.mark_keys_as_published()
        return public.to_base64()

    def fallback_key(self) -> str:
        if self.ours is not None:
            self.ours.generate_fallback_key(os.urandom)
            (key,) = self.ours.fallback_key.values()
            self.ours.mark_keys_as_published()
            return key
        # vodozemac's stub lacks the fallback-key methods the binding has.
        theirs = cast(Any, self.theirs)
        theirs.generate_fallback_key()
        (public,) = theirs.fallback_key.values()
        theirs.mark_keys_as_published()
        return cast(str, public.to_base64())

    def outbound(self, identity_key: str, one_time_key: str) -> End:
        if self.ours is not None:
            return OurEnd(self.ours.create_outbound_session(identity_key, one_time_key, os.urandom))
        assert self.theirs is not None
        return TheirEnd(
            self.theirs.create_outbound_session(
                vz.Curve25519PublicKey.from_base64(identity_key),
                vz.Curve25519PublicKey.from_base64(one_time_key),
            )
        )

    def inbound(self, identity_key: str, message: Wire) -> tuple[End, bytes]:
        if self.ours is not None:
            session, plaintext = self.ours.create_inbound_session(
                identity_key, OlmMessage.from_bytes(*message)
            )
            return OurEnd(session), plaintext
        assert self.theirs is not None
        pre_key = vz.AnyOlmMessage.from_parts(*message).to_pre_key()
        assert pre_key is not None
        their_session, plaintext = self.theirs.create_inbound_session(
            vz.Curve25519PublicKey.from_base64(identity_key), pre_key
        )
        return TheirEnd(their_session), plaintext


MIXED = [("ours", "vodozemac"), ("vodozemac", "ours")]
ALL = [*MIXED, ("vodozemac", "vodozemac"), ("ours", "ours")]


def _pair(alice_kind: str, bob_kind: str, *, fallback: bool = False) -> tuple[End, End]:
    """Alice starts a session with Bob's published key; Bob accepts her first message."""
    alice, bob = Device.make(alice_kind), Device.make(bob_kind)
    key = bob.fallback_key() if fallback else bob.one_time_key()
    alice_end = alice.outbound(bob.curve25519, key)
    first = alice_end.encrypt(b"first")
    assert first[0] == 0
    bob_end, plaintext = bob.inbound(alice.curve25519, first)
    assert plaintext == b"first"
    assert alice_end.session_id == bob_end.session_id
    return alice_end, bob_end


def _outcome(alice_kind: str, bob_kind: str, script: list[tuple[str, Any]]) -> list[Any]:
    """Run ``script`` on a fresh pair: ("a"|"b", n) sends n messages from that end and
    keeps them; ("to_a"|"to_b", i) delivers kept message i. Returns what each delivery
    gave (plaintext or None) and the types of the messages sent."""
    alice, bob = _pair(alice_kind, bob_kind)
    ends = {"a": alice, "b": bob}
    kept: dict[str, list[Wire]] = {"a": [], "b": []}
    results: list[Any] = []
    for action, argument in script:
        if action in ends:
            for _ in range(argument):
                number = len(kept[action])
                message = ends[action].encrypt(f"{action}{number}".encode())
                kept[action].append(message)
                results.append(("sent", action, message[0]))
        else:
            sender = "b" if action == "to_a" else "a"
            receiver = ends["a" if action == "to_a" else "b"]
            results.append(("got", receiver.decrypt(kept[sender][argument])))
    return results


def _same_as_vodozemac(script: list[tuple[str, Any]]) -> list[Any]:
    expected = _outcome("vodozemac", "vodozemac", script)
    for alice_kind, bob_kind in [*MIXED, ("ours", "ours")]:
        assert _outcome(alice_kind, bob_kind, script) == expected, (alice_kind, bob_kind)
    return expected


# --- setting sessions up ---------------------------------------------------------------------


@pytest.mark.parametrize(("alice_kind", "bob_kind"), ALL)
def test_pre_key_messages_until_alice_hears_back_then_normal(
    alice_kind: str, bob_kind: str
) -> None:
    alice, bob = _pair(alice_kind, bob_kind)
    assert alice.encrypt(b"second")[0] == 0
    reply = bob.encrypt(b"reply")
    assert reply[0] == 1
    assert alice.decrypt(reply) == b"reply"
    assert alice.encrypt(b"third")[0] == 1


@pytest.mark.parametrize(("alice_kind", "bob_kind"), ALL)
def test_a_fallback_key_starts_sessions_and_is_not_used_up(alice_kind: str, bob_kind: str) -> None:
    bob = Device.make(bob_kind)
    key = bob.fallback_key()
    for n in range(2):
        alice = Device.make(alice_kind)
        alice_end = alice.outbound(bob.curve25519, key)
        bob_end, plaintext = bob.inbound(alice.curve25519, alice_end.encrypt(b"hi %d" % n))
        assert plaintext == b"hi %d" % n
        assert alice_end.decrypt(bob_end.encrypt(b"back")) == b"back"


@pytest.mark.parametrize(("alice_kind", "bob_kind"), MIXED)
def test_a_one_time_key_starts_one_session_only(alice_kind: str, bob_kind: str) -> None:
    alice, bob = Device.make(alice_kind), Device.make(bob_kind)
    key = bob.one_time_key()
    first = alice.outbound(bob.curve25519, key).encrypt(b"one")
    bob.inbound(alice.curve25519, first)
    again = alice.outbound(bob.curve25519, key).encrypt(b"two")
    with pytest.raises((ProtocolError, ValueError)):
        bob.inbound(alice.curve25519, again)


# --- conversations -----------------------------------------------------------------------------


@pytest.mark.parametrize(("alice_kind", "bob_kind"), MIXED)
def test_many_ratchet_turns_back_and_forth(alice_kind: str, bob_kind: str) -> None:
    alice, bob = _pair(alice_kind, bob_kind)
    for turn in range(40):
        for n in range(turn % 4 + 1):
            text = f"turn {turn} message {n} from alice".encode()
            assert bob.decrypt(alice.encrypt(text)) == text
        for n in range(turn % 3 + 1):
            text = f"turn {turn} message {n} from bob".encode() * (turn % 5)
            assert alice.decrypt(bob.encrypt(text)) == text


def test_out_of_order_messages_within_a_chain() -> None:
    order = [5, 0, 9, 3, 1, 8, 2, 7, 4, 6]
    expected = _same_as_vodozemac([("a", 10), *[("to_b", i) for i in order]])
    assert [r[1] for r in expected if r[0] == "got"] == [f"a{i}".encode() for i in order]


def test_out_of_order_messages_across_ratchet_turns() -> None:
    script: list[tuple[str, Any]] = [
        ("a", 3),
        ("to_b", 2),
        ("b", 2),
        ("to_a", 1),
        ("a", 2),
        ("to_b", 4),
        ("to_b", 0),
        ("to_a", 0),
        ("b", 1),
        ("to_b", 3),
        ("to_a", 2),
        ("to_b", 1),
    ]
    expected = _same_as_vodozemac(script)
    assert None not in [r[1] for r in expected if r[0] == "got"]


def test_only_the_last_40_skipped_message_keys_are_kept() -> None:
    count = MAX_SKIPPED_MESSAGE_KEYS + 5
    script = [("a", count + 1), ("to_b", count), *[("to_b", i) for i in range(count)]]
    got = [r[1] for r in _same_as_vodozemac(script) if r[0] == "got"]
    assert got[0] is not None
    assert got[1:6] == [None] * 5
    assert None not in got[6:]


def test_a_message_is_decrypted_once() -> None:
    script: list[tuple[str, Any]] = [("a", 2), ("to_b", 1), ("to_b", 1), ("to_b", 0), ("to_b", 0)]
    got = [r[1] for r in _same_as_vodozemac(script) if r[0] == "got"]
    assert got == [b"a1", None, b"a0", None]


@pytest.mark.parametrize("turns", [3, 4, 5])
def test_messages_of_old_chains_decrypt_while_their_chain_is_among_the_last_five(
    turns: int,
) -> None:
    # Bob's messages 0 go out on his first chain; then the ratchet turns ``turns`` times
    # more each way; then message 0 arrives at Alice.
    script: list[tuple[str, Any]] = [("b", 2), ("to_a", 1)]
    for turn in range(turns):
        script += [("a", 1), ("to_b", turn), ("b", 1), ("to_a", 2 + turn)]
    script.append(("to_a", 0))
    last = _same_as_vodozemac(script)[-1]
    assert last == ("got", b"b0" if turns < 5 else None)


@pytest.mark.slow
def test_the_gap_limit() -> None:
    script = [("a", MAX_MESSAGE_GAP + 3), ("to_b", MAX_MESSAGE_GAP + 1)]
    assert _same_as_vodozemac(script)[-1] == ("got", None)
    script = [("a", MAX_MESSAGE_GAP + 3), ("to_b", MAX_MESSAGE_GAP)]
    assert _same_as_vodozemac(script)[-1][1] is not None


@pytest.mark.parametrize(("alice_kind", "bob_kind"), MIXED)
def test_the_gap_limit_between_implementations(alice_kind: str, bob_kind: str) -> None:
    alice, bob = _pair(alice_kind, bob_kind)
    sent = [alice.encrypt(b"m%d" % n) for n in range(MAX_MESSAGE_GAP + 3)]
    # Bob has used index 0 (the first message), so index 2001 is a gap of exactly 2000.
    assert bob.decrypt(sent[MAX_MESSAGE_GAP + 1]) is None
    assert bob.decrypt(sent[MAX_MESSAGE_GAP]) == b"m%d" % MAX_MESSAGE_GAP


# --- refusals -------------------------------------------------------------------------------


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


@pytest.mark.parametrize(("alice_kind", "bob_kind"), MIXED)
def test_tampered_or_truncated_messages_are_refused_and_change_nothing(
    alice_kind: str, bob_kind: str
) -> None:
    alice, bob = _pair(alice_kind, bob_kind)
    for sender, receiver in [(alice, bob), (bob, alice), (alice, bob)]:
        kind, raw = sender.encrypt(b"the real one")
        for bad in [
            _flip(raw, len(raw) - 1),  # the MAC
            _flip(raw, len(raw) - 12),  # the ciphertext
            raw[:-1],
            raw[:-8],
            raw[: len(raw) // 2],
            raw + b"\x00",
        ]:
            assert receiver.decrypt((kind, bad)) is None
        assert receiver.decrypt((kind, raw)) == b"the real one"


def test_a_pre_key_message_for_another_identity_key_starts_nothing() -> None:
    bob, alice, mallory = Device.make("ours"), Device.make("vodozemac"), Device.make("vodozemac")
    first = alice.outbound(bob.curve25519, bob.one_time_key()).encrypt(b"hi")
    with pytest.raises(ProtocolError) as caught:
        bob.inbound(mallory.curve25519, first)
    assert caught.value.code == ErrorCode.BAD_MESSAGE
    assert bob.inbound(alice.curve25519, first)[1] == b"hi"


def test_a_pre_key_message_that_does_not_decrypt_keeps_the_one_time_key() -> None:
    bob, alice = Device.make("ours"), Device.make("vodozemac")
    kind, raw = alice.outbound(bob.curve25519, bob.one_time_key()).encrypt(b"hi")
    with pytest.raises(ProtocolError):
        bob.inbound(alice.curve25519, (kind, _flip(raw, len(raw) - 1)))
    assert bob.inbound(alice.curve25519, (kind, raw))[1] == b"hi"


# --- storage ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("alice_kind", "bob_kind"), MIXED)
def test_sessions_carry_on_after_a_pickle_round_trip(alice_kind: str, bob_kind: str) -> None:
    alice, bob = _pair(alice_kind, bob_kind)
    key = os.urandom(32)
    for _ in range(3):
        for end in (alice, bob):
            if isinstance(end, OurEnd):
                end.session = Session.from_pickle(key, end.session.pickle(key, os.urandom))
        assert bob.decrypt(alice.encrypt(b"to bob")) == b"to bob"
        assert alice.decrypt(bob.encrypt(b"to alice")) == b"to alice"


# --- any order of sends and deliveries ----------------------------------------------------------

_ACTIONS = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(1, 3))
    | st.tuples(st.sampled_from(["to_a", "to_b"]), st.integers(0, 1000)),
    max_size=24,
)


def _playable(actions: list[tuple[str, int]]) -> list[tuple[str, Any]]:
    """``actions`` with each delivery pointed at a message actually sent by then."""
    sent = {"a": 0, "b": 0}
    script: list[tuple[str, Any]] = []
    for action, number in actions:
        if action in sent:
            sent[action] += number
            script.append((action, number))
            continue
        sender = "b" if action == "to_a" else "a"
        if sent[sender]:
            script.append((action, number % sent[sender]))
    return script


@settings(max_examples=40, deadline=None)
@given(_ACTIONS)
def test_any_schedule_ends_as_it_does_between_two_vodozemac_ends(
    actions: list[tuple[str, int]],
) -> None:
    _same_as_vodozemac(_playable(actions))
