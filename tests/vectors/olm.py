"""Vectors for spec/e2ee.md §2 (Olm), made from fixed randomness.

Every key is SHA-256 of ``"kith olm vector <label>"``: the Ed25519 seeds and Curve25519
private keys of Alice and Bob, Bob's one-time key, Alice's base key and each ratchet key.
Olm draws no other randomness (AES-CBC's IV is derived), so the file is the same on every
run; ``tests/vectors/generate.py`` lists :func:`olm_vectors` under ``olm.json``.

Byte strings are hex, except keys, messages and seeds, which are unpadded base64 as they
travel.
"""

from __future__ import annotations

import hashlib
from typing import Any

from protocol.crypto.olm_account import Account, key_id
from protocol.crypto.olm_messages import (
    MessageType,
    NormalMessage,
    OlmMessage,
    PreKeyMessage,
    decode_olm_message,
)
from protocol.crypto.olm_session import (
    Session,
    advance_chain,
    advance_root,
    message_keys,
    shared_secret_inbound,
    shared_secret_outbound,
    split_shared_secret,
)
from protocol.crypto.primitives import RandomBytes, b64encode, x25519_public
from protocol.errors import ProtocolError


def key(label: str) -> bytes:
    """The fixed 32 "random" bytes named ``label``."""
    return hashlib.sha256(f"kith olm vector {label}".encode()).digest()


def queue(*chunks: bytes) -> RandomBytes:
    """A ``random_bytes`` that hands out exactly ``chunks``, in order."""
    pending = list(chunks)

    def random_bytes(n: int) -> bytes:
        chunk = pending.pop(0)
        assert len(chunk) == n, "the vectors draw 32-byte keys only"
        return chunk

    return random_bytes


ALICE = {"signing_seed": key("alice signing"), "identity_private": key("alice identity")}
BOB = {"signing_seed": key("bob signing"), "identity_private": key("bob identity")}
BOB_ONE_TIME = key("bob one-time 0")
BOB_FALLBACK = key("bob fallback 0")
ALICE_BASE = key("alice base")
ALICE_RATCHET0 = key("alice ratchet 0")


def _b64(data: bytes) -> str:
    return b64encode(data)


def _account(keys: dict[str, bytes]) -> Account:
    return Account(keys["signing_seed"], keys["identity_private"])


def _public(private: bytes) -> str:
    return _b64(x25519_public(private))


# --- accounts ------------------------------------------------------------------------------


def _account_vectors() -> list[dict[str, Any]]:
    out = []
    for name, keys in (("alice", ALICE), ("bob", BOB)):
        account = _account(keys)
        entry: dict[str, Any] = {
            "name": name,
            "signing_seed": _b64(keys["signing_seed"]),
            "identity_private": _b64(keys["identity_private"]),
            "identity_keys": account.identity_keys,
            "signed": "{}",
            "signature": account.sign(b"{}"),
        }
        if name == "bob":
            privates = [BOB_ONE_TIME, key("bob one-time 1")]
            account.generate_one_time_keys(2, queue(*privates))
            account.generate_fallback_key(queue(BOB_FALLBACK))
            assert list(account.one_time_keys) == [key_id(0), key_id(1)]
            entry["one_time_keys"] = [
                {"key_id": key_id(n), "private": _b64(p), "public": _public(p)}
                for n, p in enumerate(privates)
            ]
            entry["fallback_key"] = {
                "key_id": key_id(0),
                "private": _b64(BOB_FALLBACK),
                "public": _public(BOB_FALLBACK),
            }
        out.append(entry)
    return out


# --- the key schedule ----------------------------------------------------------------------


def _schedule_vectors() -> dict[str, Any]:
    bob_identity = x25519_public(BOB["identity_private"])
    bob_one_time = x25519_public(BOB_ONE_TIME)
    alice_identity = x25519_public(ALICE["identity_private"])
    alice_base = x25519_public(ALICE_BASE)
    secret = shared_secret_outbound(
        ALICE["identity_private"], ALICE_BASE, bob_identity, bob_one_time
    )
    assert secret == shared_secret_inbound(
        BOB["identity_private"], BOB_ONE_TIME, alice_identity, alice_base
    )
    root_key, chain_key = split_shared_secret(secret)
    session_id = _b64(hashlib.sha256(alice_identity + alice_base + bob_one_time).digest())

    steps = []
    current = chain_key
    for index in range(3):
        message_key, next_chain_key = advance_chain(current)
        expanded = message_keys(message_key)
        steps.append(
            {
                "index": index,
                "chain_key": current.hex(),
                "message_key": message_key.hex(),
                "next_chain_key": next_chain_key.hex(),
                "aes_key": expanded.aes_key.hex(),
                "mac_key": expanded.mac_key.hex(),
                "iv": expanded.iv.hex(),
            }
        )
        current = next_chain_key

    bob_ratchet1 = key("bob ratchet 1")
    new_root, new_chain = advance_root(root_key, bob_ratchet1, x25519_public(ALICE_RATCHET0))
    assert (new_root, new_chain) == advance_root(
        root_key, ALICE_RATCHET0, x25519_public(bob_ratchet1)
    )
    return {
        "three_dh": {
            "alice_identity_private": _b64(ALICE["identity_private"]),
            "alice_base_private": _b64(ALICE_BASE),
            "bob_identity_private": _b64(BOB["identity_private"]),
            "bob_one_time_private": _b64(BOB_ONE_TIME),
            "shared_secret": secret.hex(),
            "root_key": root_key.hex(),
            "chain_key": chain_key.hex(),
            "session_id": session_id,
        },
        "chain": steps,
        "root_ratchet": {
            "root_key": root_key.hex(),
            "ratchet_private": _b64(bob_ratchet1),
            "their_ratchet_key": _public(ALICE_RATCHET0),
            "next_root_key": new_root.hex(),
            "chain_key": new_chain.hex(),
        },
    }


# --- a conversation ------------------------------------------------------------------------

Script = list[tuple[str, Any]]
# ("alice" | "bob", plaintext): a send; ("to_alice" | "to_bob", n): deliver send n;
# ("tamper_to_bob", n): deliver send n with the last MAC byte flipped.
SCRIPT: Script = [
    ("alice", "Hello, Bob."),
    ("alice", "Are you there?"),
    ("to_bob", 1),  # the second pre-key message starts Bob's session
    ("to_bob", 0),  # and the first arrives late
    ("bob", "Yes."),
    ("bob", "Still here."),
    ("to_alice", 3),
    ("to_bob", 0),  # a replay
    ("to_alice", 2),
    ("alice", "Good."),
    ("alice", ""),
    ("tamper_to_bob", 4),
    ("to_bob", 4),
    ("bob", "One"),
    ("bob", "Two"),
    ("bob", "Three " * 10),
    ("to_alice", 8),
    ("alice", "Got three."),
    ("to_bob", 9),
    ("to_alice", 6),
    ("to_alice", 7),
    ("to_bob", 5),  # the empty message, from Alice's previous chain
]


def _flip_mac(message: OlmMessage) -> OlmMessage:
    raw = message.to_bytes()
    return OlmMessage.from_bytes(message.type, raw[:-1] + bytes([raw[-1] ^ 1]))


def _conversation_vectors() -> dict[str, Any]:
    alice, bob = _account(ALICE), _account(BOB)
    bob.generate_one_time_keys(1, queue(BOB_ONE_TIME))
    (one_time,) = bob.one_time_keys.values()
    sessions: dict[str, Session | None] = {
        "alice": alice.create_outbound_session(
            bob.curve25519_key, one_time, queue(ALICE_BASE, ALICE_RATCHET0)
        ),
        "bob": None,
    }
    ratchets = {"alice": 0, "bob": 0}
    sent: list[OlmMessage] = []
    steps: list[dict[str, Any]] = []
    for action, argument in SCRIPT:
        if action in sessions:
            session = sessions[action]
            assert session is not None
            drawn: list[bytes] = []

            def draw(n: int, who: str = action, drawn: list[bytes] = drawn) -> bytes:
                ratchets[who] += 1
                drawn.append(key(f"{who} ratchet {ratchets[who]}"))
                return drawn[-1][:n]

            message = session.encrypt(argument.encode(), draw)
            sent.append(message)
            steps.append(
                {
                    "sender": action,
                    "plaintext": argument,
                    "random": [_b64(chunk) for chunk in drawn],
                    "type": int(message.type),
                    "body": message.body,
                }
            )
            continue
        receiver = action.rpartition("_")[2]
        message = _flip_mac(sent[argument]) if action.startswith("tamper") else sent[argument]
        step: dict[str, Any] = {"receiver": receiver, "type": int(message.type)}
        step["body"] = message.body
        try:
            current = sessions[receiver]
            if current is None:
                current, plaintext = bob.create_inbound_session(alice.curve25519_key, message)
                sessions[receiver] = current
            else:
                plaintext = current.decrypt(message)
            step["plaintext"] = plaintext.decode()
        except ProtocolError as exc:
            step["error"] = exc.code.value
        steps.append(step)
    return {
        "alice": {
            "signing_seed": _b64(ALICE["signing_seed"]),
            "identity_private": _b64(ALICE["identity_private"]),
            "base_private": _b64(ALICE_BASE),
            "ratchet_private": _b64(ALICE_RATCHET0),
        },
        "bob": {
            "signing_seed": _b64(BOB["signing_seed"]),
            "identity_private": _b64(BOB["identity_private"]),
            "one_time_private": _b64(BOB_ONE_TIME),
        },
        "steps": steps,
    }


# --- decoding messages ---------------------------------------------------------------------


def _fields(message: NormalMessage | PreKeyMessage) -> dict[str, Any]:
    if isinstance(message, PreKeyMessage):
        return {
            "one_time_key": _b64(message.one_time_key),
            "base_key": _b64(message.base_key),
            "identity_key": _b64(message.identity_key),
            "message": _fields(message.message),
        }
    return {
        "ratchet_key": _b64(message.ratchet_key),
        "chain_index": message.chain_index,
        "ciphertext": message.ciphertext.hex(),
        "mac": message.mac.hex(),
    }


def _decode_cases() -> list[tuple[str, int, bytes | str]]:
    k1, k2, k3 = (x25519_public(key(f"decode {n}")) for n in range(3))
    inner = NormalMessage(k1, 5, bytes(range(16)), bytes(range(8)))
    normal = inner.to_bytes()
    pre_key = PreKeyMessage(k2, k3, k1, inner).to_bytes()
    after_key = 3 + 32
    zero_index = NormalMessage(k1, 0, b"c" * 16, b"m" * 8).to_bytes()
    two_byte_index = NormalMessage(k1, 300, b"c" * 32, b"m" * 8).to_bytes()
    return [
        ("valid: a normal message", 1, normal),
        ("valid: chain index 0 is written out", 1, zero_index),
        ("valid: a two-byte chain index", 1, two_byte_index),
        ("valid: a pre-key message", 0, pre_key),
        ("a normal message's body sent as type 0", 0, normal),
        ("a pre-key message sent as type 1", 1, pre_key),
        ("version 4 (untruncated MAC)", 1, b"\x04" + normal[1:] + bytes(24)),
        ("version 2", 1, b"\x02" + normal[1:]),
        ("empty", 1, b""),
        ("only the MAC", 1, normal[-8:]),
        ("the MAC cut short", 1, normal[:-1]),
        ("a byte after the MAC", 1, normal + b"\x00"),
        ("chain index before the ratchet key", 1,
         b"\x03\x10\x05\x0a\x20" + k1 + normal[after_key + 2 :]),
        ("chain index missing", 1, normal[:after_key] + normal[after_key + 2 :]),
        ("a non-minimal chain index", 1,
         normal[:after_key] + b"\x10\x85\x00" + normal[after_key + 2 :]),
        ("a chain index above 2^64-1", 1,
         normal[:after_key] + b"\x10" + b"\xff" * 9 + b"\x02" + normal[after_key + 2 :]),
        ("an unknown field", 1, inner.mac_input() + b"\x28\x00" + inner.mac),
        ("a 33-byte ratchet key", 1, b"\x03\x0a\x21" + k1 + b"\x00" + normal[after_key:]),
        ("empty ciphertext", 1, NormalMessage(k1, 0, b"", b"m" * 8).to_bytes()),
        ("ciphertext length past the end", 1,
         normal[: after_key + 3] + b"\x40" + normal[after_key + 4 :]),
        ("pre-key: base key before one-time key", 0,
         pre_key[:1] + pre_key[35:69] + pre_key[1:35] + pre_key[69:]),
        ("pre-key: identity key missing", 0, pre_key[:69] + pre_key[103:]),
        ("pre-key: inner message cut short", 0, pre_key[:-1]),
        ("pre-key: a byte after the inner message", 0, pre_key + b"\x00"),
        ("pre-key: a bad inner message", 0,
         pre_key[:103] + bytes([0x22, len(normal) - 1]) + normal[:-1]),
        ("not base64", 1, "AwoG!"),
        ("the URL-safe alphabet", 1, _b64(normal).replace("+", "-").replace("/", "_") + "-_"),
    ]  # fmt: skip


def _decode_vectors() -> list[dict[str, Any]]:
    out = []
    for name, message_type, data in _decode_cases():
        body = data if isinstance(data, str) else _b64(data)
        entry: dict[str, Any] = {"name": name, "type": message_type, "body": body}
        try:
            entry["fields"] = _fields(
                decode_olm_message(OlmMessage(MessageType(message_type), body))
            )
        except ProtocolError as exc:
            entry["error"] = exc.code.value
        assert ("fields" in entry) == name.startswith("valid"), name
        out.append(entry)
    return out


def olm_vectors() -> dict[str, Any]:
    """Every section of spec/vectors/olm.json."""
    return {
        "accounts": _account_vectors(),
        "key_schedule": _schedule_vectors(),
        "conversation": _conversation_vectors(),
        "decode": _decode_vectors(),
    }
