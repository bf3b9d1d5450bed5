"""Every case of spec/vectors, checked against the implementation under test (``--impl``)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.conformance.adapter import ConformanceError, Implementation
from tests.conformance.vectors import case_ids, cases, load


def _raw(case: dict[str, Any]) -> bytes:
    return bytes.fromhex(case["input_hex"]) if "input_hex" in case else case["input"].encode()


# --- canonical JSON (spec/canonical-json.md) -----------------------------------------------


@pytest.mark.parametrize(
    "case", cases("canonical_json", "valid"), ids=case_ids("canonical_json", "valid")
)
def test_canonical_json_valid(impl: Implementation, case: dict[str, Any]) -> None:
    value = impl.decode_json(_raw(case))
    assert impl.encode_canonical_json(value) == case["canonical"].encode()
    assert impl.decode_json(case["canonical"].encode()) == value


@pytest.mark.parametrize(
    "case", cases("canonical_json", "invalid"), ids=case_ids("canonical_json", "invalid")
)
def test_canonical_json_invalid(impl: Implementation, case: dict[str, Any]) -> None:
    with pytest.raises(ConformanceError) as caught:
        impl.decode_json(_raw(case))
    assert caught.value.code == case["error"]


# --- identifiers (spec/ids.md) -------------------------------------------------------------

_IDS = [
    (kind, text, valid)
    for kind, lists in load("ids").items()
    for valid in (True, False)
    for text in lists["valid" if valid else "invalid"]
]


@pytest.mark.parametrize(
    ("kind", "text", "valid"), _IDS, ids=[f"{k}:{t[:40]}:{v}" for k, t, v in _IDS]
)
def test_identifier(impl: Implementation, kind: str, text: str, valid: bool) -> None:
    if valid:
        impl.check_identifier(kind, text)
        return
    with pytest.raises(ConformanceError) as caught:
        impl.check_identifier(kind, text)
    assert caught.value.code == "bad_identifier"


# --- base64 and signing (spec/signing.md) -------------------------------------------------


@pytest.mark.parametrize("alphabet", ["standard", "urlsafe"])
def test_base64(impl: Implementation, alphabet: str) -> None:
    urlsafe = alphabet == "urlsafe"
    for case in load("base64")[alphabet]["valid"]:
        data = bytes.fromhex(case["hex"])
        assert impl.encode_base64(data, urlsafe=urlsafe) == case["text"]
        assert impl.decode_base64(case["text"], urlsafe=urlsafe) == data
    for text in load("base64")[alphabet]["invalid"]:
        with pytest.raises(ConformanceError) as caught:
            impl.decode_base64(text, urlsafe=urlsafe)
        assert caught.value.code == "bad_base64", text


def _seed(seed_base64: str) -> bytes:
    """Seeds are stored as unpadded standard base64 (spec/signing.md §1)."""
    return base64.b64decode(seed_base64 + "=" * (-len(seed_base64) % 4))


@pytest.mark.parametrize("key", cases("signing", "keys"), ids=lambda k: str(k["key_id"]))
def test_keys_from_seeds(impl: Implementation, key: dict[str, str]) -> None:
    assert impl.public_key(_seed(key["seed"])) == key["public_key"]
    assert impl.derive_key_id(key["public_key"]) == key["key_id"]


@pytest.mark.parametrize("case", cases("signing", "sign"), ids=case_ids("signing", "sign"))
def test_sign_json(impl: Implementation, case: dict[str, Any]) -> None:
    signed = impl.sign_json(case["object"], case["entity"], case["key_id"], _seed(case["seed"]))
    assert signed == case["signed"]
    unsigned = {k: v for k, v in case["object"].items() if k not in ("signatures", "unsigned")}
    assert impl.encode_canonical_json(unsigned) == case["signed_bytes"].encode()


@pytest.mark.parametrize("case", cases("signing", "verify"), ids=case_ids("signing", "verify"))
def test_verify_json(impl: Implementation, case: dict[str, Any]) -> None:
    args = (case["object"], case["entity"], case["key_id"], case["public_key"])
    if case["error"] is None:
        impl.verify_json(*args)
        return
    with pytest.raises(ConformanceError) as caught:
        impl.verify_json(*args)
    assert caught.value.code == case["error"]


# --- events (spec/events.md) ---------------------------------------------------------------


@pytest.mark.parametrize("case", cases("events", "sign"), ids=case_ids("events", "sign"))
def test_sign_event(impl: Implementation, case: dict[str, Any]) -> None:
    assert impl.compute_content_hash(case["event"]) == case["content_hash"]
    signed = impl.sign_event(
        case["event"], case["server_name"], case["key_id"], _seed(case["seed"])
    )
    assert signed == case["signed"]
    assert impl.redact_event(signed) == case["redacted"]
    assert impl.compute_event_id(signed) == case["event_id"]


@pytest.mark.parametrize("case", cases("events", "redact"), ids=case_ids("events", "redact"))
def test_redact_event(impl: Implementation, case: dict[str, Any]) -> None:
    assert impl.redact_event(case["event"]) == case["redacted"]


@pytest.mark.parametrize("case", cases("events", "verify"), ids=case_ids("events", "verify"))
def test_verify_event(impl: Implementation, case: dict[str, Any]) -> None:
    if case["outcome"] in ("ok", "redacted"):
        outcome, event_id, kept = impl.verify_event(case["event"], case["keys"])
        assert (outcome, event_id) == (case["outcome"], case["event_id"])
        expected = case["event"] if outcome == "ok" else impl.redact_event(case["event"])
        assert kept == expected
        return
    with pytest.raises(ConformanceError) as caught:
        impl.verify_event(case["event"], case["keys"])
    assert caught.value.code == case["outcome"]


# --- rooms (spec/rooms.md, spec/state.md) ------------------------------------------------


@pytest.mark.parametrize("case", cases("auth", "cases"), ids=case_ids("auth", "cases"))
def test_authorize(impl: Implementation, case: dict[str, Any]) -> None:
    assert impl.authorize(case["event"], case["state"]) == case["outcome"]


@pytest.mark.parametrize("case", cases("resolution", "cases"), ids=case_ids("resolution", "cases"))
def test_resolve(impl: Implementation, case: dict[str, Any]) -> None:
    result = impl.resolve([(event_id, event) for event_id, event in case["events"]])
    assert result["verdicts"] == case["verdicts"]
    assert result["state"] == case["state"]
    assert result["timeline"] == case["timeline"]


# --- server keys (spec/federation.md §1) ------------------------------------------------------


@pytest.mark.parametrize("case", cases("server_keys", "make"), ids=case_ids("server_keys", "make"))
def test_make_key_object(impl: Implementation, case: dict[str, Any]) -> None:
    made = impl.make_key_object(
        case["server_name"],
        case["ts"],
        [_seed(seed) for seed in case["current"]],
        [(old["public_key"], old["expired_ts"]) for old in case["old"]],
        [_seed(seed) for seed in case["co_signers"]],
    )
    assert made == case["object"]


@pytest.mark.parametrize(
    "case", cases("server_keys", "check"), ids=case_ids("server_keys", "check")
)
def test_check_key_object(impl: Implementation, case: dict[str, Any]) -> None:
    if case["error"] is None:
        impl.check_key_object(case["object"])
        return
    with pytest.raises(ConformanceError) as caught:
        impl.check_key_object(case["object"])
    assert caught.value.code == case["error"]


@pytest.mark.parametrize(
    "case", cases("server_keys", "keys_for_event"), ids=case_ids("server_keys", "keys_for_event")
)
def test_keys_for_event(impl: Implementation, case: dict[str, Any]) -> None:
    assert impl.keys_for_event(case["object"], case["origin_server_ts"]) == case["key_ids"]


@pytest.mark.parametrize("case", cases("server_keys", "pin"), ids=case_ids("server_keys", "pin"))
def test_pin_key_object(impl: Implementation, case: dict[str, Any]) -> None:
    if case["error"] is None:
        kept = impl.pin_key_object(case["pinned"], case["received"])
        assert kept == case[case["kept"]]
        return
    with pytest.raises(ConformanceError) as caught:
        impl.pin_key_object(case["pinned"], case["received"])
    assert caught.value.code == case["error"]


# --- frames (spec/wire.md) -----------------------------------------------------------------


@pytest.mark.parametrize("case", cases("frames", "decode"), ids=case_ids("frames", "decode"))
def test_decode_frame(impl: Implementation, case: dict[str, Any]) -> None:
    if "frame" in case:
        frame = impl.decode_frame(case["input"], case["endpoint"], case["sender"])
        assert frame == case["frame"]
        return
    with pytest.raises(ConformanceError) as caught:
        impl.decode_frame(case["input"], case["endpoint"], case["sender"])
    error = caught.value
    assert (error.code, error.request_id, error.close_code) == (
        case["error"]["code"],
        case["error"]["request_id"],
        case["error"]["close_code"],
    )


# --- links (spec/federation.md §2.2) ---------------------------------------------------------


@pytest.mark.parametrize("case", cases("link", "statement"), ids=case_ids("link", "statement"))
def test_link_statement(impl: Implementation, case: dict[str, Any]) -> None:
    statement = impl.link_statement(case["roles"], case["signer"], case["ts"])
    assert statement == case["statement"].encode()


@pytest.mark.parametrize("case", cases("link", "make"), ids=case_ids("link", "make"))
def test_make_link_proof(impl: Implementation, case: dict[str, Any]) -> None:
    roles, signer, ts = case["roles"], case["signer"], case["ts"]
    assert impl.link_statement(roles, signer, ts) == case["statement"].encode()
    assert impl.make_link_proof(roles, signer, ts, _seed(case["seed"])) == case["proof"]


@pytest.mark.parametrize("case", cases("link", "check"), ids=case_ids("link", "check"))
def test_check_link_proof(impl: Implementation, case: dict[str, Any]) -> None:
    args = (case["proof"], case["roles"], case["signer"], case["keys"], case["now"])
    if case["error"] is None:
        impl.check_link_proof(*args)
        return
    with pytest.raises(ConformanceError) as caught:
        impl.check_link_proof(*args)
    assert caught.value.code == case["error"]


@pytest.mark.parametrize("case", cases("link", "nonce"), ids=case_ids("link", "nonce"))
def test_check_link_nonce(impl: Implementation, case: dict[str, Any]) -> None:
    if case["error"] is None:
        impl.check_link_nonce(case["nonce"])
        return
    with pytest.raises(ConformanceError) as caught:
        impl.check_link_nonce(case["nonce"])
    assert caught.value.code == case["error"]


# --- Megolm (spec/e2ee.md §3) ----------------------------------------------------------------


@pytest.mark.parametrize(
    "leg",
    load("megolm")["ratchet"]["advance"],
    ids=[f"{leg['from_index']}->{leg['to_index']}" for leg in load("megolm")["ratchet"]["advance"]],
)
def test_megolm_advance(impl: Implementation, leg: dict[str, Any]) -> None:
    start = bytes.fromhex(leg["from"])
    wound = impl.megolm_advance(start, leg["from_index"], leg["to_index"])
    assert wound.hex() == leg["to"]


def test_megolm_keys(impl: Implementation) -> None:
    for case in load("megolm")["keys"]:
        keys = impl.megolm_keys(bytes.fromhex(case["ratchet"]))
        assert [k.hex() for k in keys] == [case["aes_key"], case["mac_key"], case["iv"]]


@pytest.mark.parametrize("case", cases("megolm", "sessions"), ids=case_ids("megolm", "sessions"))
def test_megolm_session(impl: Implementation, case: dict[str, Any]) -> None:
    plaintexts = [bytes.fromhex(m["plaintext"]) for m in case["messages"]]
    ratchet, seed = bytes.fromhex(case["ratchet"]), _seed(case["signing_seed"])
    session_id, session_key, messages = impl.megolm_outbound(
        ratchet, case["index"], seed, plaintexts
    )
    assert (session_id, session_key) == (case["session_id"], case["session_key"])
    assert messages == [m["message"] for m in case["messages"]]
    results = impl.megolm_decrypt(session_key, False, messages)
    assert results == [
        {"plaintext": p, "index": m["index"], "replay": False}
        for p, m in zip(plaintexts, case["messages"], strict=True)
    ]
    for export in case["exports"]:
        assert impl.megolm_export(session_key, False, export["index"]) == export["export"]
        assert impl.megolm_import(export["export"], True) == export["index"]


@pytest.mark.parametrize("case", cases("megolm", "decrypt"), ids=case_ids("megolm", "decrypt"))
def test_megolm_decrypt(impl: Implementation, case: dict[str, Any]) -> None:
    is_export = "export" in case
    key = case["export"] if is_export else case["session_key"]
    results = impl.megolm_decrypt(key, is_export, [step["message"] for step in case["steps"]])
    expected = [
        {"error": step["error"]}
        if step["error"]
        else {
            "plaintext": bytes.fromhex(step["plaintext"]),
            "index": step["index"],
            "replay": step["replay"],
        }
        for step in case["steps"]
    ]
    assert results == expected


@pytest.mark.parametrize(
    "case", cases("megolm", "keys_and_exports"), ids=case_ids("megolm", "keys_and_exports")
)
def test_megolm_session_key_or_export(impl: Implementation, case: dict[str, Any]) -> None:
    is_export = case["kind"] == "export"
    if case["error"] is None:
        assert impl.megolm_import(case["key"], is_export) == case["first_known_index"]
        return
    with pytest.raises(ConformanceError) as caught:
        impl.megolm_import(case["key"], is_export)
    assert caught.value.code == case["error"]


# --- Olm (spec/e2ee.md §2) ---------------------------------------------------------------------


@pytest.mark.parametrize("account", cases("olm", "accounts"), ids=case_ids("olm", "accounts"))
def test_olm_identity_keys_and_signature(impl: Implementation, account: dict[str, Any]) -> None:
    seed = _seed(account["signing_seed"])
    keys = impl.olm_identity_keys(seed, _seed(account["identity_private"]))
    assert keys == account["identity_keys"]
    assert impl.olm_sign(seed, account["signed"].encode()) == account["signature"]


def test_olm_conversation(impl: Implementation) -> None:
    case = load("olm")["conversation"]
    alice = {name: _seed(value) for name, value in case["alice"].items()}
    bob = {name: _seed(value) for name, value in case["bob"].items()}
    steps = [
        {
            **step,
            "plaintext": step["plaintext"].encode(),
            "random": [_seed(r) for r in step["random"]],
        }
        if "sender" in step
        else {k: step[k] for k in ("receiver", "type", "body")}
        for step in case["steps"]
    ]
    expected = [
        {"type": step["type"], "body": step["body"]}
        if "sender" in step
        else {"error": step["error"]}
        if "error" in step
        else {"plaintext": step["plaintext"].encode()}
        for step in case["steps"]
    ]
    assert impl.olm_conversation(alice, bob, steps) == expected


@pytest.mark.parametrize("case", cases("olm", "decode"), ids=case_ids("olm", "decode"))
def test_olm_decode_message(impl: Implementation, case: dict[str, Any]) -> None:
    if "fields" in case:
        assert impl.olm_decode_message(case["type"], case["body"]) == case["fields"]
        return
    with pytest.raises(ConformanceError) as caught:
        impl.olm_decode_message(case["type"], case["body"])
    assert caught.value.code == case["error"]
