"""Key objects (spec/federation.md §1): built, checked step by step, pinned, and fuzzed.

The vector file is checked here case by case with the details the conformance suite does
not see (what a valid object holds, who signed it), and against its generator, since
``tests/vectors/generate.py`` does not list it yet.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    ErrorCode,
    LocalProtocolError,
    RemoteProtocolError,
    derive_key_id,
    encode_base64,
    sign_json,
    signing_key_from_seed,
    verify_json,
)
from protocol.canonical_json import MAX_SAFE_INTEGER
from protocol.federation.keys import (
    KEY_OBJECT_MEMBERS,
    OldKey,
    ServerKeys,
    build_key_object,
    parse_key_object,
    pin,
)
from tests.conformance.vectors import case_ids, cases
from tests.protocol.strategies import big_integers, floats, json_text, json_values
from tests.vectors import server_keys as generator

SERVER = "a.example"
T0 = generator.T0
HOUR = generator.HOUR
PARSE_CODES = {"bad_key", "bad_identifier", "bad_base64", "missing_signature", "bad_signature"}


def _key(name: str) -> nacl.signing.SigningKey:
    return signing_key_from_seed(hashlib.sha256(name.encode()).digest())


A, B, C, D, E = (_key(name) for name in "ABCDE")


def _id(key: nacl.signing.SigningKey) -> str:
    return derive_key_id(key.verify_key)


def _code(obj: Any) -> str | None:
    try:
        parse_key_object(obj)
    except RemoteProtocolError as exc:
        return exc.code.value
    return None


def _rotated_twice(ts: int = T0) -> dict[str, Any]:
    """C is current; A and B were retired and co-sign (the node kept their seeds)."""
    return build_key_object(
        SERVER,
        ts,
        [C],
        [OldKey(A.verify_key, T0 - 2 * HOUR), OldKey(B.verify_key, T0 - HOUR)],
        co_signers=[A, B],
    )


# --- the vector file --------------------------------------------------------------------------


def test_vector_file_is_what_the_generator_makes() -> None:
    committed = generator.VECTORS_FILE.read_text(encoding="utf-8")
    assert committed == generator.render(), "run: python -m tests.vectors.server_keys"


@pytest.mark.parametrize(
    "case", cases("server_keys", "check"), ids=case_ids("server_keys", "check")
)
def test_each_check_of_section_1_1_gives_its_code(case: dict[str, Any]) -> None:
    assert _code(case["object"]) == case["error"]
    assert case["name"].startswith("valid") == (case["error"] is None)


def test_vectors_break_every_step_of_section_1_1_with_every_code_it_names() -> None:
    invalid = [c for c in cases("server_keys", "check") if c["error"] is not None]
    assert {c["name"].split(":")[0] for c in invalid} == {f"step {n}" for n in range(1, 5)}
    assert {c["error"] for c in invalid} == PARSE_CODES


# --- building ---------------------------------------------------------------------------------


def test_a_built_object_lists_the_keys_and_is_signed_by_current_keys_and_co_signers() -> None:
    obj = _rotated_twice()
    assert set(obj["verify_keys"]) == {f"ed25519:{_id(C)}"}
    assert obj["old_verify_keys"][f"ed25519:{_id(A)}"]["expired_ts"] == T0 - 2 * HOUR
    for key in (A, B, C):
        verify_json(obj, SERVER, _id(key), key.verify_key)
    keys = parse_key_object(obj)
    assert keys.signed_by == {_id(A), _id(B), _id(C)}
    assert keys.source == obj


def test_a_co_signer_need_not_be_listed() -> None:
    obj = build_key_object(SERVER, T0, [B], [], co_signers=[A])
    verify_json(obj, SERVER, _id(A), A.verify_key)
    assert parse_key_object(obj).signed_by == {_id(B)}  # §1.1 step 4 ignores A's signature


def test_a_co_signer_that_is_also_current_signs_once() -> None:
    obj = build_key_object(SERVER, T0, [A], [], co_signers=[A])
    assert list(obj["signatures"][SERVER]) == [f"ed25519:{_id(A)}"]


@pytest.mark.parametrize(
    ("server_name", "ts", "current", "old", "code"),
    [
        ("A.example", T0, [A], [], ErrorCode.BAD_IDENTIFIER),
        (SERVER, -1, [A], [], ErrorCode.BAD_KEY),
        (SERVER, MAX_SAFE_INTEGER + 1, [A], [], ErrorCode.BAD_KEY),
        (SERVER, True, [A], [], ErrorCode.BAD_KEY),
        (SERVER, T0, [], [], ErrorCode.BAD_KEY),
        (SERVER, T0, [A, B, C, D, E], [], ErrorCode.BAD_KEY),
        (SERVER, T0, [A, A], [], ErrorCode.BAD_KEY),
        (SERVER, T0, [A], [OldKey(A.verify_key, 0)], ErrorCode.BAD_KEY),
        (SERVER, T0, [A], [OldKey(B.verify_key, 0), OldKey(B.verify_key, 1)], ErrorCode.BAD_KEY),
        (SERVER, T0, [A], [OldKey(_key(str(n)).verify_key, n) for n in range(257)], "bad_key"),
    ],
)
def test_building_what_section_1_1_cannot_express_is_our_mistake(
    server_name: str, ts: int, current: list[Any], old: list[OldKey], code: str
) -> None:
    with pytest.raises(LocalProtocolError) as caught:
        build_key_object(server_name, ts, current, old)
    assert caught.value.code == code


@pytest.mark.parametrize("expired_ts", [-1, MAX_SAFE_INTEGER + 1, False])
def test_an_old_key_needs_a_time_of_the_data_model(expired_ts: int) -> None:
    with pytest.raises(LocalProtocolError):
        OldKey(A.verify_key, expired_ts)


seeds = st.binary(min_size=32, max_size=32)
timestamps = st.integers(min_value=0, max_value=MAX_SAFE_INTEGER)


@given(
    st.lists(seeds, min_size=1, max_size=4, unique=True),
    st.lists(st.tuples(seeds, timestamps), max_size=6, unique_by=lambda pair: pair[0]),
    timestamps,
)
def test_any_built_object_parses_back_to_what_was_built(
    current_seeds: list[bytes], old_seeds: list[tuple[bytes, int]], ts: int
) -> None:
    current = [signing_key_from_seed(seed) for seed in current_seeds]
    old_keys = [signing_key_from_seed(seed) for seed, _ in old_seeds]
    if {_id(k) for k in current} & {_id(k) for k in old_keys}:
        return  # the same seed drawn for both maps
    old = [
        OldKey(k.verify_key, expired) for k, (_, expired) in zip(old_keys, old_seeds, strict=True)
    ]
    keys = parse_key_object(build_key_object(SERVER, ts, current, old, co_signers=old_keys))
    assert (keys.server_name, keys.ts) == (SERVER, ts)
    assert dict(keys.verify_keys) == {_id(k): k.verify_key for k in current}
    expected_old = {derive_key_id(o.verify_key): (o.verify_key, o.expired_ts) for o in old}
    assert dict(keys.old_verify_keys) == expected_old
    assert keys.signed_by == {_id(k) for k in [*current, *old_keys]}


# --- checking ---------------------------------------------------------------------------------


def test_parsing_keeps_a_copy_of_the_object_as_received() -> None:
    obj = _rotated_twice()
    obj["signatures"]["b.example"] = {"ed25519:x": "relayed as is"}
    keys = parse_key_object(obj)
    obj["signatures"].clear()
    assert keys.source["signatures"]["b.example"] == {"ed25519:x": "relayed as is"}


def test_signed_by_names_only_keys_whose_signatures_verified() -> None:
    obj = build_key_object(SERVER, T0, [C], [OldKey(A.verify_key, T0)], co_signers=[])
    assert parse_key_object(obj).signed_by == {_id(C)}


def test_a_float_or_a_big_integer_time_is_bad_key() -> None:
    obj = _rotated_twice()
    assert _code({**obj, "ts": 1.0}) == "bad_key"
    assert _code({**obj, "ts": 2**64}) == "bad_key"
    old = copy.deepcopy(obj)
    old["old_verify_keys"][f"ed25519:{_id(A)}"]["expired_ts"] = float(T0)
    assert _code(old) == "bad_key"


def test_a_member_name_that_is_not_a_string_is_bad_key() -> None:
    obj = _rotated_twice()
    assert _code({**obj, "verify_keys": {1: {"key": "x"}}}) == "bad_key"


def test_when_two_step_3_faults_meet_verify_keys_is_checked_first() -> None:
    obj = _rotated_twice()
    broken = copy.deepcopy(obj)
    broken["verify_keys"][f"ed25519:{_id(C)}"]["key"] += "="  # bad_base64
    broken["old_verify_keys"][f"ed25519:{_id(A)}"]["expired_ts"] = -1  # bad_key
    assert _code(broken) == "bad_base64"


def test_every_current_key_must_sign_before_any_signature_is_verified() -> None:
    obj = build_key_object(SERVER, T0, [A, B], [])
    sigs = obj["signatures"][SERVER]
    broken = {**obj, "signatures": {SERVER: {f"ed25519:{_id(A)}": sigs[f"ed25519:{_id(B)}"]}}}
    assert _code(broken) == "missing_signature"


@pytest.mark.parametrize("raw", [b"\xff" * 32, bytes(32)], ids=["not a point", "small order"])
def test_a_key_that_is_no_valid_point_fails_to_verify_as_bad_signature(raw: bytes) -> None:
    """signing.md §2: such a key is not refused when decoded; it never verifies."""
    key_id = derive_key_id(nacl.signing.VerifyKey(raw))
    obj = {
        "server_name": SERVER,
        "ts": T0,
        "verify_keys": {f"ed25519:{key_id}": {"key": encode_base64(raw)}},
        "old_verify_keys": {},
        "signatures": {SERVER: {f"ed25519:{key_id}": encode_base64(bytes(64))}},
    }
    assert _code(obj) == "bad_signature"


# --- which keys verify an event (§1.3) ------------------------------------------------------


def test_an_old_key_verifies_events_made_before_it_was_retired_only() -> None:
    keys = parse_key_object(_rotated_twice())
    assert set(keys.keys_for_event(T0 - 2 * HOUR - 1)) == {_id(A), _id(B), _id(C)}
    assert set(keys.keys_for_event(T0 - 2 * HOUR)) == {_id(B), _id(C)}
    assert set(keys.keys_for_event(T0 - HOUR)) == {_id(C)}
    assert keys.keys_for_event(0)[_id(A)] == A.verify_key


@pytest.mark.parametrize(
    "case",
    cases("server_keys", "keys_for_event"),
    ids=case_ids("server_keys", "keys_for_event"),
)
def test_keys_for_event_vectors(case: dict[str, Any]) -> None:
    keys = parse_key_object(case["object"])
    assert sorted(keys.keys_for_event(case["origin_server_ts"])) == case["key_ids"]


def test_only_a_current_key_may_prove_a_link() -> None:
    keys = parse_key_object(_rotated_twice())
    assert keys.link_key(_id(C)) == C.verify_key
    assert keys.link_key(_id(A)) is None
    assert keys.link_key("nonsense") is None


# --- pinning (§1.2) -------------------------------------------------------------------------


def _parsed(obj: dict[str, Any]) -> ServerKeys:
    return parse_key_object(obj)


def test_the_first_object_is_pinned_on_trust() -> None:
    received = _parsed(build_key_object(SERVER, T0, [A], []))
    assert pin(None, received) is received


def test_an_object_no_newer_than_the_pin_changes_nothing() -> None:
    pinned = _parsed(build_key_object(SERVER, T0, [A], []))
    same_ts = _parsed(build_key_object(SERVER, T0, [E], []))
    older = _parsed(build_key_object(SERVER, T0 - 1, [A], []))
    assert pin(pinned, same_ts) is pinned
    assert pin(pinned, older) is pinned


def test_a_newer_object_co_signed_by_a_pinned_key_replaces_the_pin() -> None:
    pinned = _parsed(build_key_object(SERVER, T0 - 3 * HOUR, [A], []))
    received = _parsed(_rotated_twice())
    assert pin(pinned, received) is received


def test_a_newer_object_not_signed_by_a_pinned_key_is_unknown_key() -> None:
    pinned = _parsed(build_key_object(SERVER, T0 - 3 * HOUR, [A], []))
    takeover = _parsed(build_key_object(SERVER, T0, [E], [OldKey(A.verify_key, T0)]))
    with pytest.raises(RemoteProtocolError) as caught:
        pin(pinned, takeover)
    assert caught.value.code == ErrorCode.UNKNOWN_KEY


def test_a_pinned_key_id_is_not_trusted_without_its_key() -> None:
    """Derived ids are 32 bits: a new key under a pinned key's id proves nothing."""
    received = _parsed(build_key_object(SERVER, T0, [E], []))
    pinned = ServerKeys(
        server_name=SERVER,
        ts=T0 - 1,
        verify_keys={_id(E): A.verify_key},
        old_verify_keys={},
        signed_by=frozenset({_id(E)}),
        source={},
    )
    with pytest.raises(RemoteProtocolError) as caught:
        pin(pinned, received)
    assert caught.value.code == ErrorCode.UNKNOWN_KEY


def test_objects_of_two_servers_do_not_pin_over_each_other() -> None:
    pinned = _parsed(build_key_object(SERVER, T0 - 1, [A], []))
    other = _parsed(build_key_object("b.example", T0, [A], []))
    with pytest.raises(RemoteProtocolError) as caught:
        pin(pinned, other)
    assert caught.value.code == ErrorCode.BAD_KEY


@pytest.mark.parametrize("case", cases("server_keys", "pin"), ids=case_ids("server_keys", "pin"))
def test_pin_vectors(case: dict[str, Any]) -> None:
    pinned = None if case["pinned"] is None else _parsed(case["pinned"])
    received = _parsed(case["received"])
    if case["error"] is not None:
        with pytest.raises(RemoteProtocolError) as caught:
            pin(pinned, received)
        assert caught.value.code == case["error"]
        return
    kept = pin(pinned, received)
    assert kept is (received if case["kept"] == "received" else pinned)


# --- any input is parsed or refused with a code of §1.1 ------------------------------------

odd_values: st.SearchStrategy[Any] = st.recursive(
    json_values | floats | big_integers | st.binary(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(json_text, children, max_size=4)
        | st.dictionaries(st.integers() | st.none(), children, max_size=2)
    ),
    max_leaves=20,
)


def _parsed_or_refused(obj: Any) -> None:
    try:
        parse_key_object(obj)
    except RemoteProtocolError as exc:
        assert exc.code.value in PARSE_CODES, exc


@given(odd_values)
def test_any_value_is_parsed_or_refused(value: Any) -> None:
    _parsed_or_refused(value)


@given(st.fixed_dictionaries(dict.fromkeys(sorted(KEY_OBJECT_MEMBERS), odd_values)))
def test_any_object_with_the_right_members_is_parsed_or_refused(obj: dict[str, Any]) -> None:
    _parsed_or_refused(obj)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a member of a nested object, the object itself included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    return found


@settings(max_examples=300)
@given(st.data(), st.sampled_from(["replace", "delete", "add"]), odd_values, json_text)
def test_any_mutation_of_a_valid_object_is_parsed_or_refused(
    data: st.DataObject, how: str, value: Any, name: str
) -> None:
    obj = copy.deepcopy(_rotated_twice())
    path = data.draw(st.sampled_from(_paths(obj)))
    parent: Any = obj
    for step in path[:-1]:
        parent = parent[step]
    if not path:
        _parsed_or_refused(value)
        return
    if how == "replace":
        parent[path[-1]] = value
    elif how == "delete":
        del parent[path[-1]]
    elif isinstance(parent[path[-1]], dict):
        parent[path[-1]][name] = value
    _parsed_or_refused(obj)


@given(timestamps)
def test_changing_any_signed_member_breaks_the_signature(ts: int) -> None:
    obj = _rotated_twice()
    if ts != obj["ts"]:
        assert _code({**obj, "ts": ts}) == "bad_signature"


@given(st.dictionaries(json_text, odd_values, max_size=3))
def test_signatures_of_other_entities_never_matter(others: dict[str, Any]) -> None:
    obj = _rotated_twice()
    others.pop(SERVER, None)
    signed = {**obj, "signatures": {**others, SERVER: obj["signatures"][SERVER]}}
    assert _code(signed) is None
    resigned = sign_json(obj, "b.example", _id(E), E)
    assert parse_key_object(resigned).signed_by == {_id(A), _id(B), _id(C)}
