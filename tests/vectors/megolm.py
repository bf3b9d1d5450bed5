"""Vectors for spec/e2ee.md §3 (Megolm), made from fixed randomness.

Every random input is drawn from :func:`seeded_random`: SHA-256 of ``"<label> <n>"`` for
n = 1, 2, …, concatenated and cut to length. Ed25519 signing, AES-CBC with a derived IV
and HMAC are deterministic, so the file is the same on every run;
``tests/vectors/generate.py`` lists :func:`megolm_vectors` under ``megolm.json``.

Byte strings are hex, except keys, messages and seeds, which are unpadded base64 as they
travel.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

from nacl.signing import SigningKey

from protocol.crypto.megolm import InboundGroupSession, OutboundGroupSession
from protocol.crypto.megolm_formats import MegolmMessage
from protocol.crypto.megolm_ratchet import MAX_INDEX, RATCHET_BYTES, Ratchet
from protocol.crypto.primitives import (
    KEY_BYTES,
    RandomBytes,
    b64decode,
    b64encode,
    encode_varint,
    hmac_sha256,
)
from protocol.errors import RemoteProtocolError


def seeded_random(label: str) -> RandomBytes:
    """A deterministic ``random_bytes`` for vectors and tests."""
    counter = itertools.count(1)

    def random_bytes(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"{label} {next(counter)}".encode()).digest()
        return out[:n]

    return random_bytes


_RANDOM = seeded_random("kith megolm vector")
RATCHET0 = _RANDOM(RATCHET_BYTES)
SEED = _RANDOM(KEY_BYTES)
OTHER_SEED = _RANDOM(KEY_BYTES)

# Boundaries of every part, and both sides of them (§3.3).
INDICES = [
    1,
    2,
    255,
    256,
    257,
    511,
    512,
    65_535,
    65_536,
    65_537,
    (1 << 24) - 1,
    1 << 24,
    (1 << 24) + 1,
    0x01_01_01_01,
    0x7F_FF_FF_FF,
    MAX_INDEX,
]
# Windings that do not start at zero: within a period, across one, across several.
LEGS = [
    (5, 9),
    (250, 260),
    (0x1FF, 0x200),
    (0x1_05, 0x2_03),
    (0xFF_FF, 0x1_00_00),
    (0x12_34_56, 0x12_35_00),
    (0x00_FF_FF_FF, 0x01_00_00_00),
    (0x01_02_03_04, 0xFE_01_02_03),
    (MAX_INDEX - 1, MAX_INDEX),
]


def _ratchet_vectors() -> dict[str, Any]:
    base = Ratchet(RATCHET0, 0)
    legs = []
    for start, target in [(0, index) for index in INDICES] + LEGS:
        at_start = base.advance_to(start)
        legs.append(
            {
                "from_index": start,
                "from": at_start.data.hex(),
                "to_index": target,
                "to": at_start.advance_to(target).data.hex(),
            }
        )
    return {"initial": RATCHET0.hex(), "advance": legs}


def _keys_vectors() -> list[dict[str, Any]]:
    out = []
    for index in (0, 1, 256, MAX_INDEX):
        ratchet = Ratchet(RATCHET0, 0).advance_to(index)
        keys = ratchet.keys()
        out.append(
            {
                "ratchet": ratchet.data.hex(),
                "aes_key": keys.aes_key.hex(),
                "mac_key": keys.mac_key.hex(),
                "iv": keys.iv.hex(),
            }
        )
    return out


PLAINTEXTS = [
    b"",
    b"hello",
    b"sixteen bytes!!!",
    "h\u00e9llo \U0001f600".encode(),
    bytes(range(40)),
]


def _session_vectors() -> list[dict[str, Any]]:
    out = []
    for start in (0, 255, 65_535, (1 << 24) - 1):
        ratchet = Ratchet(RATCHET0, 0).advance_to(start)
        session = OutboundGroupSession(ratchet, SEED)
        session_key = session.session_key
        messages = [
            {"index": session.message_index, "plaintext": p.hex(), "message": session.encrypt(p)}
            for p in PLAINTEXTS[:3]
        ]
        inbound = InboundGroupSession.from_session_key(session_key)
        out.append(
            {
                "name": f"a session starting at {start}",
                "ratchet": ratchet.data.hex(),
                "index": start,
                "signing_seed": b64encode(SEED),
                "session_id": session.session_id,
                "session_key": session_key,
                "messages": messages,
                "exports": [
                    {"index": i, "export": inbound.export_at(i)} for i in (start, start + 2)
                ],
            }
        )
    return out


# --- decryption and refusals --------------------------------------------------------------


def _outbound(index: int = 0, seed: bytes = SEED) -> OutboundGroupSession:
    return OutboundGroupSession(Ratchet(RATCHET0, 0).advance_to(index), seed)


def _signed(body: bytes, mac_key: bytes, seed: bytes = SEED) -> str:
    """A message of any body, MAC'd and signed over exactly these bytes."""
    mac = hmac_sha256(mac_key, body)[:8]
    return b64encode(body + mac + SigningKey(seed).sign(body + mac).signature)


def _flip(message: str, position: int) -> str:
    raw = bytearray(b64decode(message))
    raw[position] ^= 0x01
    return b64encode(bytes(raw))


def _decrypt_cases() -> list[tuple[str, str, bool, list[str]]]:
    """(name, key, the key is an export, messages in the order they arrive)."""
    out = _outbound()
    key = out.session_key
    m = [out.encrypt(p) for p in PLAINTEXTS]
    late = _outbound(3)
    late_key = late.session_key
    export_4 = InboundGroupSession.from_session_key(key).export_at(4)
    twin = _outbound()
    mac_key0 = Ratchet(RATCHET0, 0).keys().mac_key
    zeros = bytes(16)
    far = _outbound(0x01_00_00_00 + 5)
    far_message = far.encrypt(b"far")
    return [
        ("in order", key, False, m[:3]),
        ("out of order", key, False, [m[4], m[1], m[3], m[0]]),
        ("a jump across every part's boundary", key, False, [far_message, m[0]]),
        ("the same message again is a replay", key, False, [m[0], m[1], m[0]]),
        (
            "another message under a seen index is refused",
            key,
            False,
            [m[0], twin.encrypt(b"not hello")],
        ),
        ("from an export at index 4", export_4, True, [m[4], m[3]]),
        ("below the first known index", late_key, False, [m[2], late.encrypt(b"late")]),
        ("a flipped MAC byte", key, False, [_flip(m[1], -72)]),
        ("a flipped signature byte", key, False, [_flip(m[1], -1)]),
        ("a flipped ciphertext byte", key, False, [_flip(m[1], 8)]),
        ("signed by another key", key, False, [_outbound(seed=OTHER_SEED).encrypt(b"x")]),
        ("truncated by one byte", key, False, [b64encode(b64decode(m[1])[:-1])]),
        ("only the suffix", key, False, [b64encode(b64decode(m[1])[-73:])]),
        ("empty", key, False, [""]),
        ("not base64", key, False, ["!!"]),
        (
            "a MAC under the wrong key, signed",
            key,
            False,
            [_signed(MegolmMessage.body(0, zeros), bytes(32))],
        ),
        (
            "a non-minimal index, MAC'd and signed as sent",
            key,
            False,
            [_signed(b"\x03\x08\x80\x00\x12\x10" + zeros, mac_key0)],
        ),
        (
            "fields in the wrong order, MAC'd and signed as sent",
            key,
            False,
            [_signed(b"\x03\x12\x10" + zeros + b"\x08\x00", mac_key0)],
        ),
        (
            "an unknown field, MAC'd and signed as sent",
            key,
            False,
            [_signed(MegolmMessage.body(0, zeros) + b"\x18\x01", mac_key0)],
        ),
        (
            "version 4, MAC'd and signed as sent",
            key,
            False,
            [_signed(b"\x04" + MegolmMessage.body(0, zeros)[1:], mac_key0)],
        ),
        (
            "an index above 2^32-1",
            key,
            False,
            [_signed(b"\x03\x08" + encode_varint(1 << 32) + b"\x12\x10" + zeros, mac_key0)],
        ),
    ]


def _step(session: InboundGroupSession, message: str) -> dict[str, Any]:
    try:
        result = session.decrypt(message)
    except RemoteProtocolError as exc:
        return {"message": message, "error": exc.code.value}
    return {
        "message": message,
        "error": None,
        "plaintext": result.plaintext.hex(),
        "index": result.message_index,
        "replay": result.replay,
    }


def _decrypt_vectors() -> list[dict[str, Any]]:
    out = []
    for name, key, is_export, messages in _decrypt_cases():
        session = (
            InboundGroupSession.import_export(key)
            if is_export
            else InboundGroupSession.from_session_key(key)
        )
        steps = [_step(session, message) for message in messages]
        entry = {"name": name, "export" if is_export else "session_key": key, "steps": steps}
        out.append(entry)
    return out


def _key_cases() -> list[tuple[str, str, bool]]:
    """(name, text, the text is offered as an export)."""
    out = _outbound(7)
    key = b64decode(out.session_key)
    export = b64decode(InboundGroupSession.from_session_key(out.session_key).export_at(9))
    flipped = bytes([key[-1] ^ 1])
    off_curve = (2).to_bytes(32, "little")  # no point has y = 2
    small_order = bytes(32)  # y = 0: a point of order 4
    return [
        ("a session key", b64encode(key), False),
        ("an export", b64encode(export), True),
        ("a session key with a flipped signature byte", b64encode(key[:-1] + flipped), False),
        ("a session key with a changed index", b64encode(key[:4] + b"\x08" + key[5:]), False),
        ("a session key one byte short", b64encode(key[:-1]), False),
        ("a session key one byte long", b64encode(key + b"\x00"), False),
        ("a session key offered as an export", b64encode(key), True),
        ("an export offered as a session key", b64encode(export), False),
        ("an export one byte short", b64encode(export[:-1]), True),
        ("an export of version 2", b64encode(b"\x02" + export[1:]), True),
        ("an export with a key not on the curve", b64encode(export[:133] + off_curve), True),
        ("an export with a key of small order", b64encode(export[:133] + small_order), True),
        ("not base64", "@@@", True),
    ]


def _key_vectors() -> list[dict[str, Any]]:
    out = []
    for name, text, is_export in _key_cases():
        parse = (
            InboundGroupSession.import_export if is_export else InboundGroupSession.from_session_key
        )
        try:
            session = parse(text)
        except RemoteProtocolError as exc:
            result: dict[str, Any] = {"error": exc.code.value}
        else:
            result = {"error": None, "first_known_index": session.first_known_index}
        out.append({"name": name, "kind": "export" if is_export else "session_key", "key": text})
        out[-1].update(result)
    return out


def megolm_vectors() -> dict[str, Any]:
    """Every section of spec/vectors/megolm.json."""
    return {
        "ratchet": _ratchet_vectors(),
        "keys": _keys_vectors(),
        "sessions": _session_vectors(),
        "decrypt": _decrypt_vectors(),
        "keys_and_exports": _key_vectors(),
    }
