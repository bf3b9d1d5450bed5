"""Link statements, proofs and nonces (spec/federation.md §2.2), and their vectors."""

from __future__ import annotations

import copy
from typing import Any

import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import RemoteProtocolError, decode_base64, derive_key_id, signing_key_from_seed
from protocol.canonical_json import MAX_SAFE_INTEGER, decode_json
from protocol.federation.keys import parse_key_object
from protocol.federation.link import (
    MAX_CLOCK_SKEW_MS,
    NONCE_BYTES,
    LinkRoles,
    check_nonce,
    check_proof,
    encode_nonce,
    link_statement,
    make_proof,
)
from tests.conformance.vectors import case_ids, cases
from tests.protocol.strategies import big_integers, floats, json_text, json_values
from tests.vectors import link as generator
from tests.vectors import server_keys

PROOF_CODES = {"bad_params", "unknown_key", "bad_signature", "clock_skew"}
T0 = server_keys.T0
KEY = signing_key_from_seed(bytes(range(32)))
ROLES = generator.ROLES


def _roles(case: dict[str, Any]) -> LinkRoles:
    roles = case["roles"]
    return LinkRoles(
        roles["initiator"], roles["responder"], roles["initiator_nonce"], roles["responder_nonce"]
    )


def _only(key: nacl.signing.SigningKey) -> Any:
    """A ``link_key`` that knows ``key`` alone."""
    key_id = derive_key_id(key.verify_key)
    return lambda wanted: key.verify_key if wanted == key_id else None


def _code(proof: Any, roles: LinkRoles, signer: str, now: int) -> str | None:
    try:
        check_proof(proof, roles, signer, _only(KEY), now)
    except RemoteProtocolError as exc:
        return exc.code.value
    return None


# --- the vectors ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("link", "statement"), ids=case_ids("link", "statement"))
def test_statement_vectors(case: dict[str, Any]) -> None:
    statement = link_statement(_roles(case), case["signer"], case["ts"])
    assert statement == case["statement"].encode()
    assert decode_json(statement)["type"] == "kith.link.v1"


@pytest.mark.parametrize("case", cases("link", "make"), ids=case_ids("link", "make"))
def test_make_vectors(case: dict[str, Any]) -> None:
    key = signing_key_from_seed(decode_base64(case["seed"]))
    assert make_proof(_roles(case), case["signer"], case["ts"], key) == case["proof"]


@pytest.mark.parametrize("case", cases("link", "check"), ids=case_ids("link", "check"))
def test_check_vectors(case: dict[str, Any]) -> None:
    link_key = parse_key_object(case["keys"]).link_key
    try:
        check_proof(case["proof"], _roles(case), case["signer"], link_key, case["now"])
    except RemoteProtocolError as exc:
        code: str | None = exc.code.value
    else:
        code = None
    assert code == case["error"]


@pytest.mark.parametrize("case", cases("link", "nonce"), ids=case_ids("link", "nonce"))
def test_nonce_vectors(case: dict[str, Any]) -> None:
    if case["error"] is None:
        assert check_nonce(case["nonce"]) == case["nonce"]
        return
    with pytest.raises(RemoteProtocolError) as caught:
        check_nonce(case["nonce"])
    assert caught.value.code == case["error"]


def test_check_vectors_give_every_code_of_section_2_2_and_accept_both_directions() -> None:
    checks = cases("link", "check")
    assert {c["error"] for c in checks} == {None} | PROOF_CODES
    valid_signers = {c["signer"] for c in checks if c["error"] is None}
    assert valid_signers == {c["roles"]["initiator"] for c in checks} | {
        c["roles"]["responder"] for c in checks
    }


# --- statements and proofs -------------------------------------------------------------------


def test_each_end_signs_its_own_statement() -> None:
    by_initiator = link_statement(ROLES, ROLES.initiator, T0)
    by_responder = link_statement(ROLES, ROLES.responder, T0)
    assert by_initiator != by_responder
    assert decode_json(by_initiator)["signer"] == ROLES.initiator


def test_a_proof_checks_at_the_edges_of_the_allowed_skew_only() -> None:
    proof = make_proof(ROLES, ROLES.responder, T0, KEY)
    for now in (T0 - MAX_CLOCK_SKEW_MS, T0, T0 + MAX_CLOCK_SKEW_MS):
        assert _code(proof, ROLES, ROLES.responder, now) is None
    for now in (T0 - MAX_CLOCK_SKEW_MS - 1, T0 + MAX_CLOCK_SKEW_MS + 1):
        assert _code(proof, ROLES, ROLES.responder, now) == "clock_skew"


def test_a_proof_is_not_changed_by_checking_it() -> None:
    proof = make_proof(ROLES, ROLES.initiator, T0, KEY)
    kept = copy.deepcopy(proof)
    check_proof(proof, ROLES, ROLES.initiator, _only(KEY), T0)
    assert proof == kept


server_names = st.sampled_from(["a.example", "b.example", "[::1]:7447", "kith.example.org:1"])
nonces = st.binary(min_size=NONCE_BYTES, max_size=NONCE_BYTES).map(encode_nonce)
link_roles = st.builds(LinkRoles, server_names, server_names, nonces, nonces)
timestamps = st.integers(min_value=0, max_value=MAX_SAFE_INTEGER)


@given(link_roles, st.booleans(), timestamps)
def test_any_proof_made_checks_at_its_own_time(
    roles: LinkRoles, by_initiator: bool, ts: int
) -> None:
    signer = roles.initiator if by_initiator else roles.responder
    proof = make_proof(roles, signer, ts, KEY)
    assert _code(proof, roles, signer, ts) is None


@given(link_roles, link_roles, st.booleans(), timestamps)
def test_a_proof_made_for_other_roles_never_checks(
    made_for: LinkRoles, checked_as: LinkRoles, by_initiator: bool, ts: int
) -> None:
    signer = made_for.initiator if by_initiator else made_for.responder
    proof = make_proof(made_for, signer, ts, KEY)
    for other_signer in (checked_as.initiator, checked_as.responder):
        if (checked_as, other_signer) != (made_for, signer):
            assert _code(proof, checked_as, other_signer, ts) == "bad_signature"


# --- any input is checked or refused with a code of §2.2 --------------------------------------

odd_values: st.SearchStrategy[Any] = st.recursive(
    json_values | floats | big_integers | st.binary(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(json_text, children, max_size=3)
    ),
    max_leaves=10,
)
proof_members = st.fixed_dictionaries(
    {},
    optional={
        "ts": odd_values | big_integers | timestamps,
        "key_id": odd_values | st.just("ed25519:") | st.just("ed25519:k56475aa7"),
        "signature": odd_values | st.text(alphabet="AB+/=!", max_size=90),
    },
)


@given(odd_values | proof_members, st.integers(min_value=0, max_value=MAX_SAFE_INTEGER))
def test_any_proof_is_accepted_or_refused_with_a_code_of_section_2_2(proof: Any, now: int) -> None:
    code = _code(proof, ROLES, ROLES.responder, now)
    assert code is None or code in PROOF_CODES


@given(odd_values | st.text(max_size=50) | nonces)
def test_any_nonce_is_accepted_or_bad_params(nonce: Any) -> None:
    try:
        assert check_nonce(nonce) == nonce
    except RemoteProtocolError as exc:
        assert exc.code.value == "bad_params"


@given(st.binary(min_size=NONCE_BYTES, max_size=NONCE_BYTES))
def test_an_encoded_nonce_is_a_nonce(raw: bytes) -> None:
    assert check_nonce(encode_nonce(raw)) == encode_nonce(raw)


@pytest.mark.parametrize("size", [0, NONCE_BYTES - 1, NONCE_BYTES + 1])
def test_encoding_a_nonce_of_another_size_is_our_mistake(size: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        encode_nonce(bytes(size))
