"""Device keys as nodes check them (spec/client.md §9, spec/federation.md §10): identity key
objects and signed one-time keys made by a real Olm account, what breaks them, and the
parsers of params and of other nodes' answers — every input parsed or refused with one of
the protocol's own errors."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import ErrorCode, ProtocolError, RemoteProtocolError
from protocol.device_keys import (
    check_claim_request,
    check_device_keys,
    check_one_time_keys,
    fit_answer,
    parse_claim_answer,
    parse_query_answer,
)
from protocol.federation.ephemeral import parse_edu
from tests.node.key_material import device_keys, fallback_key, new_account, one_time_keys
from tests.protocol.strategies import json_objects, json_values

ALICE = "@alice:a.test"
DEVICE = "PHONE"
ACCOUNT = new_account()
KEYS = device_keys(ACCOUNT, ALICE, DEVICE)
ONE_TIME = one_time_keys(ACCOUNT, ALICE, DEVICE, 2)
FALLBACK = fallback_key(ACCOUNT, ALICE, DEVICE)
ONE_TIME_VALUE = next(iter(ONE_TIME.values()))


def test_a_devices_own_keys_check_out() -> None:
    checked = check_device_keys(KEYS, ALICE, DEVICE)
    assert (checked.curve25519, checked.ed25519) == (ACCOUNT.curve25519_key, ACCOUNT.ed25519_key)
    assert checked.obj == KEYS
    assert check_one_time_keys(ONE_TIME, checked) == ONE_TIME
    assert check_one_time_keys(FALLBACK, checked, fallback=True) == FALLBACK
    with_unsigned = {**KEYS, "unsigned": {"device_display_name": "phone"}}
    assert check_device_keys(with_unsigned).device_id == DEVICE


def _keys_with(**change: Any) -> dict[str, Any]:
    return {**KEYS, **change}


@pytest.mark.parametrize(
    ("obj", "code"),
    [
        (_keys_with(user_id="@bob:a.test"), ErrorCode.FORBIDDEN),
        (_keys_with(algorithms=["x"]), ErrorCode.BAD_SIGNATURE),
        ({k: v for k, v in KEYS.items() if k != "signatures"}, ErrorCode.MISSING_SIGNATURE),
        (_keys_with(keys={**KEYS["keys"], f"ed25519:{DEVICE}": "AAAA"}), ErrorCode.BAD_KEY),
        (_keys_with(keys={**KEYS["keys"], f"ed25519:{DEVICE}": "!!"}), ErrorCode.BAD_BASE64),
        (_keys_with(keys={"curve25519:OTHER": "x"}), ErrorCode.BAD_PARAMS),
        (_keys_with(algorithms=[]), ErrorCode.BAD_PARAMS),
        (_keys_with(extra=1), ErrorCode.BAD_PARAMS),
        (_keys_with(unsigned={"pad": "x" * 5000}), ErrorCode.TOO_LARGE),
        ([], ErrorCode.BAD_PARAMS),
    ],
)
def test_broken_identity_keys_are_refused_with_their_code(obj: Any, code: ErrorCode) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        check_device_keys(obj, ALICE, DEVICE)
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("keys", "fallback", "code"),
    [
        (one_time_keys(new_account(), ALICE, DEVICE, 1), False, ErrorCode.BAD_SIGNATURE),
        ({"curve25519:AAAA": next(iter(ONE_TIME.values()))}, False, ErrorCode.BAD_PARAMS),
        ({"signed_curve25519:no spaces": {}}, False, ErrorCode.BAD_PARAMS),
        (ONE_TIME, True, ErrorCode.BAD_PARAMS),  # two keys, and not marked fallback
        ({"signed_curve25519:A": {"key": ACCOUNT.curve25519_key}}, False, ErrorCode.BAD_PARAMS),
    ],
)
def test_broken_one_time_keys_are_refused(keys: Any, fallback: bool, code: ErrorCode) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        check_one_time_keys(keys, check_device_keys(KEYS), fallback=fallback)
    assert caught.value.code == code


def test_answers_keep_only_what_was_asked_of_that_server() -> None:
    bob_keys = device_keys(new_account(), "@bob:a.test", "LAPTOP")
    answer = {
        "devices": {
            ALICE: {DEVICE: KEYS, "OTHER": KEYS},  # OTHER: the object names another device
            "@bob:a.test": {"LAPTOP": bob_keys},  # not asked for
            "@carol:c.test": {},
        }
    }
    assert parse_query_answer(answer, "a.test", frozenset({ALICE})) == {ALICE: {DEVICE: KEYS}}
    assert parse_query_answer(answer, "c.test", frozenset({ALICE})) == {}
    [(name, key)] = list(ONE_TIME.items())[:1]
    claimed = {"one_time_keys": {ALICE: {DEVICE: {name: key}, "X": {name: key}}}}
    wanted = {ALICE: {DEVICE: "signed_curve25519"}}
    assert parse_claim_answer(claimed, "a.test", wanted) == {ALICE: {DEVICE: {name: key}}}
    other_algorithm = {ALICE: {DEVICE: "curve25519"}}
    assert parse_claim_answer(claimed, "a.test", other_algorithm) == {}
    with pytest.raises(RemoteProtocolError):
        parse_query_answer({"devices": []}, "a.test", frozenset({ALICE}))


def test_an_answer_keeps_whole_users_within_its_budget() -> None:
    devices = {f"@u{n}:a.test": {DEVICE: KEYS} for n in range(5)}
    kept, left = fit_answer(devices, 1500)
    assert list(kept) + left == list(devices)
    assert 0 < len(kept) < 5
    assert fit_answer(devices, 10**6) == (devices, [])


def test_claim_requests_are_bounded() -> None:
    check_claim_request({ALICE: {DEVICE: "signed_curve25519"}})
    many = {f"@u{n}:a.test": {"D": "signed_curve25519"} for n in range(1001)}
    with pytest.raises(RemoteProtocolError) as caught:
        check_claim_request(many)
    assert caught.value.code == ErrorCode.TOO_LARGE


def test_a_device_list_update_edu_names_its_user() -> None:
    edu = parse_edu({"type": "device_list_update", "content": {"user_id": ALICE}})
    assert (edu.type, edu.actor) == ("device_list_update", ALICE)
    with pytest.raises(ProtocolError):
        parse_edu({"type": "device_list_update", "content": {"user_id": ALICE, "x": 1}})


_keys_like = st.builds(lambda extra: {**KEYS, **extra}, json_objects) | st.builds(
    lambda keys: {**KEYS, "keys": keys}, json_objects
)
_one_time_like = st.dictionaries(
    st.sampled_from(["signed_curve25519:AAAA", "x:y", "signed_curve25519:"]) | st.text(max_size=8),
    json_values | json_objects | st.builds(lambda extra: {**ONE_TIME_VALUE, **extra}, json_objects),
    max_size=3,
)


@given(json_values | json_objects | _keys_like)
def test_any_identity_keys_are_checked_or_refused_with_a_protocol_error(item: Any) -> None:
    with contextlib.suppress(RemoteProtocolError):
        check_device_keys(item, ALICE, DEVICE)


@given(json_values | json_objects | _one_time_like, st.booleans())
def test_any_one_time_keys_are_checked_or_refused(item: Any, fallback: bool) -> None:
    with contextlib.suppress(RemoteProtocolError):
        check_one_time_keys(item, check_device_keys(KEYS), fallback=fallback)


@given(json_values | json_objects)
def test_any_claim_request_is_checked_or_refused(item: Any) -> None:
    with contextlib.suppress(RemoteProtocolError):
        check_claim_request(item)


_answer_like = st.builds(
    lambda inner, extra: {"devices": {ALICE: {DEVICE: {**KEYS, **extra}, "X": inner}}},
    json_values | json_objects,
    json_objects,
) | st.builds(lambda inner: {"one_time_keys": {ALICE: {DEVICE: inner}}}, json_values | json_objects)


@given(json_values | json_objects | _answer_like)
def test_any_answer_is_parsed_or_refused_with_a_protocol_error(item: Any) -> None:
    with contextlib.suppress(RemoteProtocolError):
        parse_query_answer(item, "a.test", frozenset({ALICE}))
    with contextlib.suppress(RemoteProtocolError):
        parse_claim_answer(item, "a.test", {ALICE: {DEVICE: "signed_curve25519"}})
