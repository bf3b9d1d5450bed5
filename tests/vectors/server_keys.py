"""Vectors for spec/federation.md §1: key objects, the keys that verify an event, pinning.

Everything is made from fixed seeds, listed in the file's ``keys`` section: ``A``, ``B`` and
``C`` are the seeds of spec/vectors/signing.json, ``D``..``F`` are SHA-256 of
``"kith test vector seed <letter>"``, and ``old0``..``old256`` SHA-256 of
``"kith test vector old key <n>"``. Ed25519 signing is deterministic, so the file is the
same on every run. ``tests/vectors/generate.py`` lists :func:`server_keys_vectors` under
``server_keys.json``, and ``tests/protocol/test_vectors_are_current.py`` checks that the
file is current.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from protocol import encode_base64, encode_verify_key, sign_json
from protocol.canonical_json import MAX_SAFE_INTEGER, JsonObject
from protocol.errors import ProtocolError
from protocol.federation.keys import (
    MAX_OLD_KEYS,
    OldKey,
    build_key_object,
    parse_key_object,
    pin,
)
from protocol.signing import derive_key_id, signing_key_from_seed

VECTORS_FILE = Path(__file__).resolve().parents[2] / "spec" / "vectors" / "server_keys.json"

SERVER = "a.example"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000

SEEDS: dict[str, bytes] = {
    "A": bytes(range(32)),
    **{
        letter: hashlib.sha256(f"kith test vector seed {letter}".encode()).digest()
        for letter in "BCDEF"
    },
    **{
        f"old{n}": hashlib.sha256(f"kith test vector old key {n}".encode()).digest()
        for n in range(MAX_OLD_KEYS + 1)
    },
}
KEYS = {name: signing_key_from_seed(seed) for name, seed in SEEDS.items()}


def _id(name: str) -> str:
    return derive_key_id(KEYS[name].verify_key)


def _qid(name: str) -> str:
    return "ed25519:" + _id(name)


def _pub(name: str) -> str:
    return encode_verify_key(KEYS[name].verify_key)


def _make(
    current: Sequence[str],
    old: Sequence[tuple[str, int]] = (),
    co_signers: Sequence[str] = (),
    *,
    ts: int = T0,
    server_name: str = SERVER,
) -> JsonObject:
    return build_key_object(
        server_name,
        ts,
        [KEYS[n] for n in current],
        [OldKey(KEYS[n].verify_key, expired) for n, expired in old],
        co_signers=[KEYS[n] for n in co_signers],
    )


def _resign(obj: JsonObject, signers: list[tuple[str, str]]) -> JsonObject:
    """``obj`` with its signatures replaced by ones from (seed name, qualified id) pairs."""
    bare = {k: v for k, v in obj.items() if k != "signatures"}
    for name, qualified in signers:
        bare = sign_json(bare, obj["server_name"], qualified.partition(":")[2], KEYS[name])
    return bare


def _error_code(obj: Any) -> str | None:
    """The code :func:`parse_key_object` refuses ``obj`` with, or ``None`` if it is valid."""
    try:
        parse_key_object(obj)
    except ProtocolError as exc:
        return exc.code.value
    return None


# --- building (§1.1, §1.4) ----------------------------------------------------------------

MAKE: list[tuple[str, list[str], list[tuple[str, int]], list[str]]] = [
    ("one key", ["A"], [], []),
    ("two current keys", ["A", "B"], [], []),
    ("after one rotation: co-signed by the retired key", ["B"], [("A", T0 - HOUR)], ["A"]),
    (
        "after two rotations: co-signed by both retired keys",
        ["C"],
        [("A", T0 - 2 * HOUR), ("B", T0 - HOUR)],
        ["A", "B"],
    ),
    ("old keys without their seeds", ["C"], [("A", T0 - 2 * HOUR), ("B", T0 - HOUR)], []),
]


def _make_vectors() -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "server_name": SERVER,
            "ts": T0,
            "current": [encode_base64(SEEDS[n]) for n in current],
            "old": [{"public_key": _pub(n), "expired_ts": expired} for n, expired in old],
            "co_signers": [encode_base64(SEEDS[n]) for n in co_signers],
            "object": _make(current, old, co_signers),
        }
        for name, current, old, co_signers in MAKE
    ]


# --- checking (§1.1) ------------------------------------------------------------------------


def _most_old_keys() -> list[tuple[str, int]]:
    """As many retired keys as a key object may list."""
    return [(f"old{n}", T0 - n - 1) for n in range(MAX_OLD_KEYS)]


def _check_cases() -> list[tuple[str, Any]]:
    one = _make(["A"])
    rotated = _make(["C"], [("A", T0 - 2 * HOUR), ("B", T0 - HOUR)], ["A", "B"])
    sig_a = one["signatures"][SERVER][_qid("A")]
    bad_sig_a = ("A" if sig_a[0] != "A" else "B") + sig_a[1:]
    many_old = _make(["A", "B", "C", "D"], _most_old_keys())
    extra = f"old{MAX_OLD_KEYS}"
    too_many_old = {
        **many_old,
        "old_verify_keys": {
            **many_old["old_verify_keys"],
            _qid(extra): {"key": _pub(extra), "expired_ts": T0},
        },
    }
    five = {_qid(n): {"key": _pub(n)} for n in "ABCDE"}
    a_entry = {"key": _pub("A")}

    def with_current(entries: dict[str, Any], signers: list[tuple[str, str]]) -> Any:
        return _resign({**one, "verify_keys": entries}, signers)

    def with_old(entry: Any, name: str = _qid("B")) -> Any:
        return _resign({**one, "old_verify_keys": {name: entry}}, [("A", _qid("A"))])

    a_signs = [("A", _qid("A"))]
    return [
        # valid objects
        ("valid: one key", one),
        ("valid: two current keys", _make(["A", "B"])),
        ("valid: with old keys, co-signed", rotated),
        ("valid: old keys need not sign", _make(["C"], [("A", T0), ("B", T0)])),
        (f"valid: 4 current keys and {MAX_OLD_KEYS} old keys", many_old),
        (
            "valid: signatures by other entities are ignored",
            {**one, "signatures": {**one["signatures"], "b.example": {"x": 1}, "c": "junk"}},
        ),
        (
            "valid: a signature under an unlisted key id is ignored",
            {**one, "signatures": {SERVER: {**one["signatures"][SERVER], "ed25519:kx": "!"}}},
        ),
        ("valid: ts 0 and expired_ts 0", _make(["B"], [("A", 0)], ts=0)),
        ("valid: ts 2^53-1", _make(["A"], ts=MAX_SAFE_INTEGER)),
        # step 1
        ("step 1: not an object", [one]),
        ("step 1: a member missing", {k: v for k, v in one.items() if k != "old_verify_keys"}),
        ("step 1: an extra member", {**one, "valid_until_ts": T0}),
        ("step 1: unsigned is not a member", {**one, "unsigned": {}}),
        # step 2
        ("step 2: server name not valid", {**one, "server_name": "A.example"}),
        ("step 2: server name not a string", {**one, "server_name": 7}),
        ("step 2: ts negative", {**one, "ts": -1}),
        ("step 2: ts above 2^53-1", {**one, "ts": MAX_SAFE_INTEGER + 1}),
        ("step 2: ts a string", {**one, "ts": str(T0)}),
        ("step 2: ts a boolean", {**one, "ts": True}),
        ("step 2: ts null", {**one, "ts": None}),
        # step 3
        ("step 3: verify_keys empty", with_current({}, [])),
        ("step 3: five current keys", with_current(five, [(n, _qid(n)) for n in "ABCDE"])),
        (f"step 3: {MAX_OLD_KEYS + 1} old keys", too_many_old),
        ("step 3: verify_keys not an object", {**one, "verify_keys": [a_entry]}),
        ("step 3: old_verify_keys not an object", {**one, "old_verify_keys": []}),
        (
            "step 3: a name that is not the key's derived id",
            with_current({"ed25519:k00000000": a_entry}, [("A", "ed25519:k00000000")]),
        ),
        (
            "step 3: a name of another algorithm",
            with_current({"curve25519:" + _id("A"): a_entry}, []),
        ),
        ("step 3: a bare key id as name", with_current({_id("A"): a_entry}, [])),
        ("step 3: a current key that is not an object", with_current({_qid("A"): _pub("A")}, [])),
        (
            "step 3: a current key with expired_ts",
            with_current({_qid("A"): {**a_entry, "expired_ts": T0}}, a_signs),
        ),
        (
            "step 3: a current key with an extra member",
            with_current({_qid("A"): {**a_entry, "x": 1}}, a_signs),
        ),
        ("step 3: a key that is not a string", with_current({_qid("A"): {"key": 5}}, a_signs)),
        (
            "step 3: a key that is not base64",
            with_current({_qid("A"): {"key": _pub("A")[:-1] + "!"}}, a_signs),
        ),
        (
            "step 3: a key with padding",
            with_current({_qid("A"): {"key": _pub("A") + "="}}, a_signs),
        ),
        (
            "step 3: a key of 31 bytes",
            with_current({_qid("A"): {"key": encode_base64(bytes(KEYS["A"].verify_key)[:31])}}, []),
        ),
        ("step 3: an old key without expired_ts", with_old({"key": _pub("B")})),
        ("step 3: expired_ts negative", with_old({"key": _pub("B"), "expired_ts": -1})),
        ("step 3: expired_ts a string", with_old({"key": _pub("B"), "expired_ts": str(T0)})),
        (
            "step 3: an old key whose name is not its id",
            with_old({"key": _pub("B"), "expired_ts": T0}, _qid("C")),
        ),
        (
            "step 3: a key both current and old",
            with_old({"key": _pub("A"), "expired_ts": T0}, _qid("A")),
        ),
        # step 4
        ("step 4: no signatures", {**one, "signatures": {}}),
        ("step 4: signatures not an object", {**one, "signatures": [sig_a]}),
        (
            "step 4: signed by another entity only",
            {**one, "signatures": {"b.example": one["signatures"][SERVER]}},
        ),
        (
            "step 4: a current key did not sign",
            _resign(_make(["A", "B"]), [("A", _qid("A"))]),
        ),
        (
            "step 4: signed by an old key only",
            _resign(rotated, [("A", _qid("A")), ("B", _qid("B"))]),
        ),
        (
            "step 4: a current key's signature does not verify",
            {**one, "signatures": {SERVER: {_qid("A"): bad_sig_a}}},
        ),
        ("step 4: a signed member changed", {**one, "ts": T0 + 1}),
        (
            "step 4: a signature that is not base64",
            {**one, "signatures": {SERVER: {_qid("A"): sig_a[:-1] + "!"}}},
        ),
        (
            "step 4: a signature that is not a string",
            {**one, "signatures": {SERVER: {_qid("A"): 5}}},
        ),
        (
            "step 4: an old key's signature does not verify",
            {
                **rotated,
                "signatures": {
                    SERVER: {**rotated["signatures"][SERVER], _qid("A"): bad_sig_a},
                },
            },
        ),
        (
            "step 4: a signature by another key than the one named",
            _resign(one, [("B", _qid("A"))]),
        ),
    ]


def _check_vectors() -> list[dict[str, Any]]:
    out = []
    for name, obj in _check_cases():
        code = _error_code(obj)
        assert (code is None) == name.startswith("valid"), (name, code)
        out.append({"name": name, "object": obj, "error": code})
    return out


# --- keys for an event (§1.3) -------------------------------------------------------------


def _keys_for_event_vectors() -> list[dict[str, Any]]:
    obj = _make(["C"], [("A", T0 - 2 * HOUR), ("B", T0 - HOUR)], ["A", "B"])
    keys = parse_key_object(obj)
    cases = [
        ("before both retirements: every key", T0 - 3 * HOUR),
        ("at A's expired_ts: A no longer verifies", T0 - 2 * HOUR),
        ("between the retirements", T0 - 2 * HOUR + 1),
        ("one millisecond before B's retirement", T0 - HOUR - 1),
        ("after both retirements: the current key only", T0 - HOUR),
        ("after the object was made", T0 + HOUR),
    ]
    return [
        {
            "name": name,
            "object": obj,
            "origin_server_ts": ts,
            "key_ids": sorted(keys.keys_for_event(ts)),
        }
        for name, ts in cases
    ]


# --- pinning (§1.2) -----------------------------------------------------------------------


def _pin_cases() -> list[tuple[str, JsonObject | None, JsonObject]]:
    p_a = _make(["A"], ts=T0 - 2 * HOUR)
    p_b = _make(["B"], [("A", T0 - HOUR)], ["A"], ts=T0 - HOUR)
    chain = _make(["C"], [("A", T0 - HOUR), ("B", T0)], ["A", "B"], ts=T0)
    stranger = _make(["F"], ts=T0)
    bogus = {SERVER: {**stranger["signatures"][SERVER], _qid("A"): "A" * 86}}
    return [
        ("no pin: trust on first use", None, p_a),
        ("an older object is ignored", p_b, p_a),
        ("an older object signed by a stranger is ignored", p_a, _make(["F"], ts=T0 - 3 * HOUR)),
        ("the same ts is ignored", p_a, _make(["A", "B"], ts=T0 - 2 * HOUR)),
        ("newer and co-signed by the pinned key", p_a, p_b),
        ("newer with the same current key", p_a, _make(["A"], ts=T0)),
        ("newer, lists the pinned key as old but did not co-sign", p_a, _make(["B"], [("A", T0)])),
        ("newer, signed by a stranger", p_a, stranger),
        ("rotation chain: missed two rotations, co-signed by all old seeds", p_a, chain),
        ("rotation chain: from the middle of the chain", p_b, chain),
        (
            "rotation chain: the first seed was not kept",
            p_a,
            _make(["C"], [("A", T0 - HOUR), ("B", T0)], ["B"]),
        ),
        (
            "a co-signature by a key the new object no longer lists counts",
            p_a,
            _make(["C"], [("B", T0)], ["A"]),
        ),
        (
            "one of two pinned keys co-signed",
            _make(["A", "B"], ts=T0 - HOUR),
            _make(["C"], [("B", T0)], ["B"]),
        ),
        (
            "a bogus signature under the pinned key's id does not count",
            p_a,
            {**stranger, "signatures": bogus},
        ),
    ]


def _pin_vectors() -> list[dict[str, Any]]:
    out = []
    for name, pinned_obj, received_obj in _pin_cases():
        pinned = None if pinned_obj is None else parse_key_object(pinned_obj)
        received = parse_key_object(received_obj)
        try:
            kept = pin(pinned, received)
        except ProtocolError as exc:
            result: dict[str, Any] = {"kept": None, "error": exc.code.value}
        else:
            result = {"kept": "received" if kept is received else "pinned", "error": None}
        out.append({"name": name, "pinned": pinned_obj, "received": received_obj, **result})
    return out


def server_keys_vectors() -> dict[str, Any]:
    """Every section of spec/vectors/server_keys.json."""
    return {
        "keys": [
            {
                "name": name,
                "seed": encode_base64(seed),
                "key_id": _id(name),
                "public_key": _pub(name),
            }
            for name, seed in SEEDS.items()
        ],
        "make": _make_vectors(),
        "check": _check_vectors(),
        "keys_for_event": _keys_for_event_vectors(),
        "pin": _pin_vectors(),
    }


def render() -> str:
    """The exact text of spec/vectors/server_keys.json (the layout of generate.py)."""
    return json.dumps(server_keys_vectors(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    """Write spec/vectors/server_keys.json if it changed."""
    text = render()
    if not VECTORS_FILE.exists() or VECTORS_FILE.read_text(encoding="utf-8") != text:
        VECTORS_FILE.write_text(text, encoding="utf-8")
        print(f"wrote {VECTORS_FILE.relative_to(VECTORS_FILE.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
