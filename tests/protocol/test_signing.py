"""Signing JSON agrees with the ``signedjson`` oracle in both directions."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import signedjson.key
import signedjson.sign
from hypothesis import given
from hypothesis import strategies as st

from protocol import (
    ErrorCode,
    LocalProtocolError,
    RemoteProtocolError,
    decode_verify_key,
    derive_key_id,
    encode_verify_key,
    parse_key_id,
    sign_json,
    signing_key_from_seed,
    verify_json,
)
from protocol.b64 import encode_base64
from tests.protocol.strategies import json_objects

seeds = st.binary(min_size=32, max_size=32)
key_ids = st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True)
entities = st.sampled_from(["a.example", "b.example:8448", "@alice:a.example", "[::1]"])


def _oracle_key(seed: bytes, key_id: str) -> Any:
    return signedjson.key.decode_signing_key_base64("ed25519", key_id, encode_base64(seed))


@given(json_objects, entities, key_ids, seeds)
def test_our_signatures_verify_with_the_oracle(
    obj: dict[str, Any], entity: str, key_id: str, seed: bytes
) -> None:
    obj.pop("signatures", None)
    signed = sign_json(obj, entity, key_id, signing_key_from_seed(seed))
    oracle_key = signedjson.key.get_verify_key(_oracle_key(seed, key_id))
    signedjson.sign.verify_signed_json(copy.deepcopy(signed), entity, oracle_key)


@given(json_objects, entities, key_ids, seeds)
def test_oracle_signatures_verify_with_ours_and_are_identical(
    obj: dict[str, Any], entity: str, key_id: str, seed: bytes
) -> None:
    obj.pop("signatures", None)
    oracle_signed = signedjson.sign.sign_json(copy.deepcopy(obj), entity, _oracle_key(seed, key_id))
    key = signing_key_from_seed(seed)
    verify_json(oracle_signed, entity, key_id, key.verify_key)
    assert sign_json(obj, entity, key_id, key) == oracle_signed


@given(json_objects, seeds)
def test_signing_does_not_mutate_its_input(obj: dict[str, Any], seed: bytes) -> None:
    obj.pop("signatures", None)
    before = copy.deepcopy(obj)
    sign_json(obj, "a.example", "k", signing_key_from_seed(seed))
    assert obj == before


def test_signatures_of_other_entities_are_kept() -> None:
    key_a, key_b = signing_key_from_seed(b"a" * 32), signing_key_from_seed(b"b" * 32)
    both = sign_json(sign_json({"x": 1}, "a.example", "1", key_a), "b.example", "2", key_b)
    assert set(both["signatures"]) == {"a.example", "b.example"}
    verify_json(both, "a.example", "1", key_a.verify_key)
    verify_json(both, "b.example", "2", key_b.verify_key)
    again = sign_json(both, "a.example", "3", key_b)
    assert set(again["signatures"]["a.example"]) == {"ed25519:1", "ed25519:3"}


def test_unsigned_is_outside_the_signature() -> None:
    key = signing_key_from_seed(b"k" * 32)
    signed = sign_json({"x": 1, "unsigned": {"age": 1}}, "a.example", "1", key)
    assert signed["unsigned"] == {"age": 1}
    verify_json({**signed, "unsigned": {"age": 999}}, "a.example", "1", key.verify_key)
    verify_json(
        {k: v for k, v in signed.items() if k != "unsigned"}, "a.example", "1", key.verify_key
    )


@given(json_objects, st.text(min_size=1, max_size=5))
def test_any_change_to_a_signed_object_fails_verification(obj: dict[str, Any], key: str) -> None:
    obj.pop("signatures", None)
    obj.pop("unsigned", None)
    signing_key = signing_key_from_seed(b"s" * 32)
    signed = sign_json(obj, "a.example", "1", signing_key)
    changed = {**signed, key: ["changed", signed.get(key)]}
    with pytest.raises(RemoteProtocolError) as caught:
        verify_json(changed, "a.example", "1", signing_key.verify_key)
    assert caught.value.code is ErrorCode.BAD_SIGNATURE


def test_missing_signatures_are_reported_as_missing() -> None:
    key = signing_key_from_seed(b"k" * 32)
    signed = sign_json({"x": 1}, "a.example", "1", key)
    for obj, entity, key_id in (
        ({"x": 1}, "a.example", "1"),
        (signed, "b.example", "1"),
        (signed, "a.example", "2"),
    ):
        with pytest.raises(RemoteProtocolError) as caught:
            verify_json(obj, entity, key_id, key.verify_key)
        assert caught.value.code is ErrorCode.MISSING_SIGNATURE


@given(st.dictionaries(st.text(max_size=5), st.text(max_size=90) | st.integers(), max_size=3))
def test_malformed_signature_sections_raise_only_protocol_errors(by_key: dict[str, Any]) -> None:
    key = signing_key_from_seed(b"k" * 32)
    obj = {"x": 1, "signatures": {"a.example": {**by_key}}}
    try:
        verify_json(obj, "a.example", "1", key.verify_key)
    except RemoteProtocolError as exc:
        assert exc.code in (ErrorCode.MISSING_SIGNATURE, ErrorCode.BAD_SIGNATURE)


def test_keys_encode_decode_and_have_derived_ids() -> None:
    key = signing_key_from_seed(bytes(range(32)))
    assert bytes(decode_verify_key(encode_verify_key(key.verify_key))) == bytes(key.verify_key)
    assert derive_key_id(key.verify_key) == derive_key_id(
        decode_verify_key(encode_verify_key(key.verify_key))
    )
    assert parse_key_id("ed25519:" + derive_key_id(key.verify_key))[0] == "ed25519"
    with pytest.raises(RemoteProtocolError):
        decode_verify_key(encode_base64(b"short"))
    with pytest.raises(LocalProtocolError):
        signing_key_from_seed(b"short")
    with pytest.raises(LocalProtocolError):
        sign_json({}, "a.example", "bad-id", key)
    with pytest.raises(RemoteProtocolError):
        parse_key_id("nocolon")
