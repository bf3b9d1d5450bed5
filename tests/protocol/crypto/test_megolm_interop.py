"""Megolm against vodozemac (the Matrix reference implementation), both directions: what we
send it reads, what it sends we read, the ratchet bytes agree at every boundary, and what
either side tampers with, both sides refuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import vodozemac as vz

from protocol import ErrorCode
from protocol.crypto.megolm import InboundGroupSession, OutboundGroupSession
from protocol.crypto.megolm_formats import MegolmMessage
from protocol.crypto.megolm_ratchet import MAX_INDEX, Ratchet
from protocol.crypto.primitives import b64decode, b64encode
from protocol.errors import RemoteProtocolError
from tests.vectors.megolm import seeded_random

VECTORS = Path(__file__).resolve().parents[3] / "spec" / "vectors" / "megolm.json"
BOUNDARIES = [
    255,
    256,
    257,
    65_535,
    65_536,
    65_537,
    (1 << 24) - 1,
    1 << 24,
    (1 << 24) + 1,
    0x01_01_01_01,
    0xFF_FF_FF_00,
    MAX_INDEX - 2,
]


def _ours_at(index: int, label: str = "interop") -> tuple[OutboundGroupSession, str]:
    """Our outbound session wound to ``index``, and its session key at index 0."""
    random_bytes = seeded_random(label)
    ratchet, seed = Ratchet(random_bytes(128), 0), random_bytes(32)
    key_at_zero = OutboundGroupSession(ratchet, seed).session_key
    return OutboundGroupSession(ratchet.advance_to(index), seed), key_at_zero


def _vz_decrypt(session: vz.InboundGroupSession, message: str) -> tuple[bytes, int]:
    decrypted = session.decrypt(vz.MegolmMessage.from_base64(message))
    return bytes(decrypted.plaintext), int(decrypted.message_index)


def _vz_export(session: vz.InboundGroupSession, index: int) -> str:
    exported = session.export_at(index)
    assert exported is not None
    return exported.to_base64()


def _flip(message: str, position: int) -> str:
    raw = bytearray(b64decode(message))
    raw[position] ^= 0x01
    return b64encode(bytes(raw))


# --- our sender, their reader -----------------------------------------------------------------


def test_vodozemac_reads_our_messages_in_and_out_of_order() -> None:
    ours = OutboundGroupSession.create(seeded_random("send"))
    theirs = vz.InboundGroupSession(vz.SessionKey(ours.session_key))
    assert theirs.session_id == ours.session_id
    messages = [ours.encrypt(f"message {i}".encode()) for i in range(8)]
    for i in (0, 1, 7, 3, 2, 6, 5, 4):
        assert _vz_decrypt(theirs, messages[i]) == (f"message {i}".encode(), i)


@pytest.mark.parametrize("index", BOUNDARIES)
def test_vodozemac_follows_our_ratchet_across_boundaries(index: int) -> None:
    ours, key_at_zero = _ours_at(index)
    theirs = vz.InboundGroupSession(vz.SessionKey(key_at_zero))
    # vodozemac winds its own ratchet to our index, then steps once across it.
    assert _vz_decrypt(theirs, ours.encrypt(b"at")) == (b"at", index)
    assert _vz_decrypt(theirs, ours.encrypt(b"next")) == (b"next", index + 1)


def test_vodozemac_reads_a_session_key_of_ours_at_a_late_index() -> None:
    ours, _ = _ours_at(70_000)
    theirs = vz.InboundGroupSession(vz.SessionKey(ours.session_key))
    assert theirs.first_known_index == 70_000
    assert _vz_decrypt(theirs, ours.encrypt(b"late")) == (b"late", 70_000)


# --- their sender, our reader ----------------------------------------------------------------


def test_we_read_vodozemac_messages_in_and_out_of_order() -> None:
    theirs = vz.GroupSession()
    ours = InboundGroupSession.from_session_key(theirs.session_key.to_base64())
    assert ours.session_id == theirs.session_id
    assert ours.signed
    messages = [theirs.encrypt(f"message {i}".encode()).to_base64() for i in range(8)]
    for i in (3, 0, 7, 1, 2, 6, 4, 5):
        assert ours.decrypt(messages[i]) == (f"message {i}".encode(), i, False)
    assert ours.decrypt(messages[3]).replay


def test_their_messages_are_in_our_canonical_encoding() -> None:
    theirs = vz.GroupSession()
    for plaintext in (b"", b"x" * 200):
        raw = theirs.encrypt(plaintext).to_bytes()
        assert MegolmMessage.from_bytes(raw).to_bytes() == raw


@pytest.mark.parametrize("index", BOUNDARIES)
def test_our_ratchet_starts_from_theirs_and_steps_across_boundaries(index: int) -> None:
    """vodozemac winds to index - 1 and exports; we import and read index and index + 1."""
    ours_out, key_at_zero = _ours_at(index)
    theirs = vz.InboundGroupSession(vz.SessionKey(key_at_zero))
    ours = InboundGroupSession.import_export(_vz_export(theirs, index - 1))
    assert not ours.signed
    assert ours.first_known_index == index - 1
    assert ours.decrypt(ours_out.encrypt(b"at"))[:2] == (b"at", index)
    assert ours.decrypt(ours_out.encrypt(b"next"))[:2] == (b"next", index + 1)


@pytest.mark.parametrize("index", [0, 1, *BOUNDARIES, MAX_INDEX])
def test_exports_are_byte_for_byte_equal_both_ways(index: int) -> None:
    theirs_out = vz.GroupSession()
    theirs = vz.InboundGroupSession(theirs_out.session_key)
    ours = InboundGroupSession.from_session_key(theirs_out.session_key.to_base64())
    assert ours.export_at(index) == _vz_export(theirs, index)
    # and from our sender: vodozemac's ratchet bytes equal ours
    ours_out = OutboundGroupSession.create(seeded_random(f"export {index}"))
    ours_in = InboundGroupSession.from_session_key(ours_out.session_key)
    theirs_in = vz.InboundGroupSession(vz.SessionKey(ours_out.session_key))
    assert _vz_export(theirs_in, index) == ours_in.export_at(index)
    reimported = vz.InboundGroupSession.import_session(
        vz.ExportedSessionKey(ours_in.export_at(index))
    )
    assert reimported.first_known_index == index


# --- tampering: both sides refuse -----------------------------------------------------------


def _tampered(message: str) -> dict[str, str]:
    raw = b64decode(message)
    return {
        "MAC": _flip(message, -72),
        "signature": _flip(message, -1),
        "ciphertext": _flip(message, 8),
        "truncated": b64encode(raw[:-1]),
        "suffix only": b64encode(raw[-72:]),
    }


@pytest.mark.parametrize("what", ["MAC", "signature", "ciphertext", "truncated", "suffix only"])
def test_tampered_messages_are_refused_by_both(what: str) -> None:
    ours_out = OutboundGroupSession.create(seeded_random("tamper"))
    theirs_out = vz.GroupSession()
    for sender_key, message in (
        (ours_out.session_key, ours_out.encrypt(b"sixteen bytes!!!")),
        (theirs_out.session_key.to_base64(), theirs_out.encrypt(b"16 bytes").to_base64()),
    ):
        forged = _tampered(message)[what]
        with pytest.raises(RemoteProtocolError) as caught:
            InboundGroupSession.from_session_key(sender_key).decrypt(forged)
        assert caught.value.code == ErrorCode.BAD_MESSAGE
        theirs = vz.InboundGroupSession(vz.SessionKey(sender_key))
        with pytest.raises((vz.MegolmDecryptionException, vz.DecodeException)):
            _vz_decrypt(theirs, forged)


def test_tampered_session_keys_are_refused_by_both() -> None:
    for key in (OutboundGroupSession.create(seeded_random("k")).session_key,):
        raw = b64decode(key)
        for forged in (b64encode(raw[:-1] + bytes([raw[-1] ^ 1])), b64encode(raw[:-1])):
            with pytest.raises(RemoteProtocolError):
                InboundGroupSession.from_session_key(forged)
            with pytest.raises(vz.SessionKeyDecodeException):
                vz.InboundGroupSession(vz.SessionKey(forged))


# --- the vectors, read by vodozemac -----------------------------------------------------------


def _vectors() -> Any:
    return json.loads(VECTORS.read_text(encoding="utf-8"))


def test_vodozemac_reads_every_vector_session() -> None:
    for session in _vectors()["sessions"]:
        theirs = vz.InboundGroupSession(vz.SessionKey(session["session_key"]))
        assert theirs.session_id == session["session_id"]
        for message in session["messages"]:
            plaintext = bytes.fromhex(message["plaintext"])
            assert _vz_decrypt(theirs, message["message"]) == (plaintext, message["index"])
        for export in session["exports"]:
            assert _vz_export(theirs, export["index"]) == export["export"]


def test_vodozemac_agrees_with_every_vector_decryption_outcome() -> None:
    """Except the replay rule, which Megolm leaves to the application (§3.9): vodozemac reads
    a second message under a seen index, which we refuse."""
    for case in _vectors()["decrypt"]:
        if "export" in case:
            theirs = vz.InboundGroupSession.import_session(vz.ExportedSessionKey(case["export"]))
        else:
            theirs = vz.InboundGroupSession(vz.SessionKey(case["session_key"]))
        for step in case["steps"]:
            try:
                outcome: Any = _vz_decrypt(theirs, step["message"])
            except ValueError:
                outcome = None
            if step["error"] is None:
                assert outcome == (bytes.fromhex(step["plaintext"]), step["index"]), case["name"]
            elif "seen index" in case["name"]:
                assert outcome is not None
            else:
                assert outcome is None, case["name"]
