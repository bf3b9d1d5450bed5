"""spec/vectors/olm.json, checked two ways: against our implementation step by step, and
against the same steps redone with ``cryptography`` and vodozemac alone, so that the file
does not merely repeat whatever our code does."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest
import vodozemac as vz
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from protocol.crypto.olm_messages import OlmMessage, PreKeyMessage, decode_olm_message
from protocol.crypto.olm_session import (
    advance_chain,
    advance_root,
    message_keys,
    shared_secret_inbound,
    shared_secret_outbound,
    split_shared_secret,
)
from protocol.crypto.primitives import b64decode, x25519_public
from tests.conformance.kith_adapter import ADAPTER
from tests.conformance.vectors import load

VECTORS = load("olm")
SCHEDULE = VECTORS["key_schedule"]


def _raw(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _dh(private_b64: str, public: bytes) -> bytes:
    key = X25519PrivateKey.from_private_bytes(_raw(private_b64))
    return key.exchange(X25519PublicKey.from_public_bytes(public))


def _pub(private_b64: str) -> bytes:
    return x25519_public(_raw(private_b64))


def _hkdf(secret: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(hashes.SHA256(), length, salt, info).derive(secret)


# --- independent of protocol.crypto ----------------------------------------------------------


def test_the_3dh_vector_redone_with_cryptography() -> None:
    case = SCHEDULE["three_dh"]
    bob_identity = _pub(case["bob_identity_private"])
    bob_one_time = _pub(case["bob_one_time_private"])
    secret = (
        _dh(case["alice_identity_private"], bob_one_time)
        + _dh(case["alice_base_private"], bob_identity)
        + _dh(case["alice_base_private"], bob_one_time)
    )
    assert secret.hex() == case["shared_secret"]
    out = _hkdf(secret, b"", b"OLM_ROOT", 64)
    assert (out[:32].hex(), out[32:].hex()) == (case["root_key"], case["chain_key"])
    ids = _pub(case["alice_identity_private"]) + _pub(case["alice_base_private"]) + bob_one_time
    digest = base64.b64encode(hashlib.sha256(ids).digest()).decode().rstrip("=")
    assert digest == case["session_id"]


def test_the_chain_and_message_keys_redone_with_the_standard_library() -> None:
    for step in SCHEDULE["chain"]:
        chain_key = bytes.fromhex(step["chain_key"])
        message_key = hmac.new(chain_key, b"\x01", "sha256").digest()
        assert message_key.hex() == step["message_key"]
        assert hmac.new(chain_key, b"\x02", "sha256").digest().hex() == step["next_chain_key"]
        out = _hkdf(message_key, b"\x00" * 32, b"OLM_KEYS", 80)
        assert out.hex() == step["aes_key"] + step["mac_key"] + step["iv"]


def test_the_root_ratchet_redone_with_cryptography() -> None:
    case = SCHEDULE["root_ratchet"]
    shared = _dh(case["ratchet_private"], _raw(case["their_ratchet_key"]))
    out = _hkdf(shared, bytes.fromhex(case["root_key"]), b"OLM_RATCHET", 64)
    assert out.hex() == case["next_root_key"] + case["chain_key"]


def test_the_first_message_opens_by_hand() -> None:
    """Bob's first message key is the chain's step 0: slice the message, check the MAC
    over everything before it, decrypt."""
    (step0, *_) = SCHEDULE["chain"]
    first = VECTORS["conversation"]["steps"][0]
    raw = _raw(first["body"])
    inner = raw[1 + 34 * 3 + 2 :]  # version, three keys with tag and length, tag, length
    assert raw[103] == 0x22
    assert raw[104] == len(inner)
    mac = hmac.new(bytes.fromhex(step0["mac_key"]), inner[:-8], "sha256").digest()[:8]
    assert mac == inner[-8:]
    ciphertext = inner[3 + 32 + 2 + 2 : -8]
    decryptor = Cipher(
        algorithms.AES(bytes.fromhex(step0["aes_key"])), modes.CBC(bytes.fromhex(step0["iv"]))
    ).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    plaintext = unpadder.update(padded) + unpadder.finalize()
    assert plaintext == first["plaintext"].encode()


@pytest.mark.parametrize("account", VECTORS["accounts"], ids=lambda a: str(a["name"]))
def test_vodozemac_verifies_the_accounts_signatures(account: dict[str, Any]) -> None:
    key = vz.Ed25519PublicKey.from_base64(account["identity_keys"]["ed25519"])
    signature = vz.Ed25519Signature.from_base64(account["signature"])
    key.verify_signature(account["signed"].encode(), signature)


def test_vodozemac_parses_every_valid_message_and_names_the_session() -> None:
    for case in VECTORS["decode"]:
        if "fields" not in case:
            continue
        message = vz.AnyOlmMessage.from_parts(case["type"], _raw(case["body"]))
        assert message.to_parts() == (case["type"], _raw(case["body"]))
    first = VECTORS["conversation"]["steps"][0]
    pre_key = vz.PreKeyMessage.from_base64(first["body"])
    assert pre_key.session_id() == SCHEDULE["three_dh"]["session_id"]


# --- our implementation, step by step ------------------------------------------------------


def test_our_key_schedule_gives_the_vectors() -> None:
    case = SCHEDULE["three_dh"]
    alice_identity, alice_base = (
        _raw(case[k]) for k in ("alice_identity_private", "alice_base_private")
    )
    bob_identity, bob_one_time = (
        _raw(case[k]) for k in ("bob_identity_private", "bob_one_time_private")
    )
    secret = shared_secret_outbound(
        alice_identity, alice_base, x25519_public(bob_identity), x25519_public(bob_one_time)
    )
    assert secret == shared_secret_inbound(
        bob_identity, bob_one_time, x25519_public(alice_identity), x25519_public(alice_base)
    )
    assert [k.hex() for k in split_shared_secret(secret)] == [case["root_key"], case["chain_key"]]
    for step in SCHEDULE["chain"]:
        message_key, next_chain_key = advance_chain(bytes.fromhex(step["chain_key"]))
        keys = message_keys(message_key)
        assert (message_key.hex(), next_chain_key.hex()) == (
            step["message_key"],
            step["next_chain_key"],
        )
        assert (keys.aes_key + keys.mac_key + keys.iv).hex() == step["aes_key"] + step[
            "mac_key"
        ] + step["iv"]
    ratchet = SCHEDULE["root_ratchet"]
    root, chain = advance_root(
        bytes.fromhex(ratchet["root_key"]),
        _raw(ratchet["ratchet_private"]),
        _raw(ratchet["their_ratchet_key"]),
    )
    assert (root.hex(), chain.hex()) == (ratchet["next_root_key"], ratchet["chain_key"])


def test_messages_in_the_conversation_carry_the_ratchet_keys_drawn() -> None:
    ratchet = b64decode(VECTORS["conversation"]["alice"]["ratchet_private"])
    current = {"alice": x25519_public(ratchet)}
    for step in VECTORS["conversation"]["steps"]:
        if "sender" not in step:
            continue
        if step["random"]:
            current[step["sender"]] = x25519_public(_raw(step["random"][0]))
        parsed = decode_olm_message(OlmMessage(step["type"], step["body"]))
        inner = parsed.message if isinstance(parsed, PreKeyMessage) else parsed
        assert inner.ratchet_key == current[step["sender"]]


def test_our_adapter_replays_the_conversation() -> None:
    """The conformance suite's check, run here too so a drift shows up next to the code."""
    case = VECTORS["conversation"]
    alice = {name: _raw(value) for name, value in case["alice"].items()}
    bob = {name: _raw(value) for name, value in case["bob"].items()}
    steps = [
        {**s, "plaintext": s["plaintext"].encode(), "random": [_raw(r) for r in s["random"]]}
        if "sender" in s
        else s
        for s in case["steps"]
    ]
    results = ADAPTER.olm_conversation(alice, bob, steps)
    sent = [r for r, s in zip(results, case["steps"], strict=True) if "sender" in s]
    assert [r["body"] for r in sent] == [s["body"] for s in case["steps"] if "sender" in s]
