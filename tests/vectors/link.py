"""Vectors for spec/federation.md §2.2: link statements, proofs and nonces.

Keys are seeds of spec/vectors/server_keys.json (listed in the file's ``keys`` section):
``a.example``, the initiator, signs with ``A``; ``b.example``, the responder, with ``B`` or
``C`` and has retired ``D``; ``F`` is a stranger's key. The nonces are SHA-256 of
``"kith test vector nonce <label>"``. Ed25519 signing is deterministic, so the file is the
same on every run; ``tests/vectors/generate.py`` lists :func:`link_vectors` under
``link.json``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from protocol import decode_base64, encode_base64
from protocol.canonical_json import MAX_SAFE_INTEGER, JsonObject
from protocol.errors import RemoteProtocolError
from protocol.federation.keys import OldKey, build_key_object, parse_key_object
from protocol.federation.link import (
    MAX_CLOCK_SKEW_MS,
    LinkRoles,
    check_nonce,
    check_proof,
    encode_nonce,
    link_statement,
    make_proof,
)
from tests.vectors.server_keys import HOUR, KEYS, SEEDS, T0, _id, _pub, _qid

INITIATOR = "a.example"
RESPONDER = "b.example"
SKEW = MAX_CLOCK_SKEW_MS


def _nonce(label: str) -> str:
    return encode_nonce(hashlib.sha256(f"kith test vector nonce {label}".encode()).digest())


NI = _nonce("initiator")
NR = _nonce("responder")
ROLES = LinkRoles(INITIATOR, RESPONDER, NI, NR)

KEY_OBJECTS: dict[str, JsonObject] = {
    INITIATOR: build_key_object(INITIATOR, T0, [KEYS["A"]], []),
    RESPONDER: build_key_object(
        RESPONDER, T0, [KEYS["B"], KEYS["C"]], [OldKey(KEYS["D"].verify_key, T0 - HOUR)]
    ),
}
_SIGNING_KEY = {INITIATOR: "A", RESPONDER: "B"}


def _roles(roles: LinkRoles) -> dict[str, str]:
    return {
        "initiator": roles.initiator,
        "responder": roles.responder,
        "initiator_nonce": roles.initiator_nonce,
        "responder_nonce": roles.responder_nonce,
    }


def _proof(signer: str, ts: int = T0, *, key: str | None = None, roles: LinkRoles = ROLES) -> Any:
    return make_proof(roles, signer, ts, KEYS[key or _SIGNING_KEY[signer]])


def _error_code(call: Any, *args: Any) -> str | None:
    """The code a peer's input is refused with; our own mistakes are not caught."""
    try:
        call(*args)
    except RemoteProtocolError as exc:
        return exc.code.value
    return None


# --- statements ---------------------------------------------------------------------------

STATEMENTS: list[tuple[str, LinkRoles, str, int]] = [
    ("the responder signs", ROLES, RESPONDER, T0),
    ("the initiator signs", ROLES, INITIATOR, T0 + 1_234),
    (
        "names with ports and an IPv6 literal",
        LinkRoles("[2001:db8::7]:7447", "kith.example.org:1", NI, NR),
        "kith.example.org:1",
        T0,
    ),
    (
        "members are ordered by name, not by role",
        LinkRoles("z.example", "y.example", NR, NI),
        "z.example",
        T0,
    ),
    (
        "nonces of all-zero and all-one bytes",
        LinkRoles(INITIATOR, RESPONDER, encode_nonce(bytes(32)), encode_nonce(b"\xff" * 32)),
        INITIATOR,
        T0,
    ),
    ("ts 0", ROLES, INITIATOR, 0),
    ("ts 2^53-1", ROLES, RESPONDER, MAX_SAFE_INTEGER),
]


def _statement_vectors() -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "roles": _roles(roles),
            "signer": signer,
            "ts": ts,
            "statement": link_statement(roles, signer, ts).decode(),
        }
        for name, roles, signer, ts in STATEMENTS
    ]


# --- making proofs ------------------------------------------------------------------------

MAKE: list[tuple[str, str, int, str]] = [
    ("the responder's proof (link_hello result)", RESPONDER, T0, "B"),
    ("the initiator's proof (link_prove)", INITIATOR, T0 + 1_234, "A"),
    ("the responder's proof with its second current key", RESPONDER, T0, "C"),
]


def _make_vectors() -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "roles": _roles(ROLES),
            "signer": signer,
            "ts": ts,
            "seed": encode_base64(SEEDS[key]),
            "statement": link_statement(ROLES, signer, ts).decode(),
            "proof": make_proof(ROLES, signer, ts, KEYS[key]),
        }
        for name, signer, ts, key in MAKE
    ]


# --- checking proofs ----------------------------------------------------------------------


def _other_char(text: str, index: int) -> str:
    """``text`` with the character at ``index`` replaced by another base64 character."""
    new = "A" if text[index] != "A" else "B"
    return text[:index] + new + text[index + 1 :]


def _with(proof: Any, **changes: Any) -> Any:
    return {**proof, **changes}


def _without(proof: Any, member: str) -> Any:
    return {k: v for k, v in proof.items() if k != member}


class _Case:
    """One check of a proof: what the checker knows, and the proof it received."""

    def __init__(
        self,
        name: str,
        proof: Any,
        signer: str = RESPONDER,
        now: int = T0,
        *,
        roles: LinkRoles = ROLES,
        keys: JsonObject | None = None,
    ) -> None:
        self.name, self.proof, self.signer, self.now = name, proof, signer, now
        self.roles = roles
        self.keys = KEY_OBJECTS[signer] if keys is None else keys

    def error(self) -> str | None:
        link_key = parse_key_object(self.keys).link_key
        return _error_code(check_proof, self.proof, self.roles, self.signer, link_key, self.now)

    def vector(self) -> dict[str, Any]:
        code = self.error()
        assert (code is None) == self.name.startswith("valid"), (self.name, code)
        return {
            "name": self.name,
            "roles": _roles(self.roles),
            "signer": self.signer,
            "keys": self.keys,
            "now": self.now,
            "proof": self.proof,
            "error": code,
        }


def _check_cases() -> list[_Case]:
    r_proof = _proof(RESPONDER)
    i_proof = _proof(INITIATOR)
    sig = r_proof["signature"]
    urlsafe = sig.replace("+", "-").replace("/", "_")
    assert urlsafe != sig, "pick a seed whose signature has a + or a /"
    raw_sig = decode_base64(sig)
    shared = build_key_object(RESPONDER, T0, [KEYS["A"]], [])
    swapped = LinkRoles(RESPONDER, INITIATOR, NR, NI)
    bare_id = _id("B")
    return [
        # valid proofs
        _Case("valid: the responder's proof, checked by the initiator", r_proof),
        _Case("valid: the initiator's proof, checked by the responder", i_proof, INITIATOR),
        _Case("valid: signed with the signer's second current key", _proof(RESPONDER, key="C")),
        _Case("valid: made 300000 ms before the checker's clock", r_proof, now=T0 + SKEW),
        _Case("valid: made 300000 ms after the checker's clock", r_proof, now=T0 - SKEW),
        _Case("valid: ts 0, checked at 300000", _proof(INITIATOR, 0), INITIATOR, SKEW),
        # the shape of the proof
        _Case("shape: not an object", [r_proof]),
        _Case("shape: null", None),
        _Case("shape: ts missing", _without(r_proof, "ts")),
        _Case("shape: key_id missing", _without(r_proof, "key_id")),
        _Case("shape: signature missing", _without(r_proof, "signature")),
        _Case("shape: an extra member", _with(r_proof, signer=RESPONDER)),
        _Case("shape: ts a string", _with(r_proof, ts=str(T0))),
        _Case("shape: ts a boolean", _with(r_proof, ts=True)),
        _Case("shape: ts null", _with(r_proof, ts=None)),
        _Case("shape: ts negative", _with(r_proof, ts=-1)),
        _Case("shape: ts above 2^53-1", _with(r_proof, ts=MAX_SAFE_INTEGER + 1)),
        _Case("shape: key_id not a string", _with(r_proof, key_id=5)),
        _Case("shape: signature not a string", _with(r_proof, signature=None)),
        # the key
        _Case(
            "key: signed by a stranger's key, named by its id",
            _proof(RESPONDER, key="F"),
        ),
        _Case("key: signed by the signer's retired key", _proof(RESPONDER, key="D")),
        _Case(
            "key: the initiator's proof presented as the responder's",
            i_proof,
            RESPONDER,
        ),
        _Case("key: a bare key id", _with(r_proof, key_id=bare_id)),
        _Case("key: another algorithm", _with(r_proof, key_id="curve25519:" + bare_id)),
        _Case("key: an empty key id", _with(r_proof, key_id="ed25519:")),
        _Case("key: a malformed key id", _with(r_proof, key_id="ed25519:k b")),
        _Case(
            "key: key ids are case-sensitive", _with(r_proof, key_id="ed25519:" + bare_id.upper())
        ),
        # the signature
        _Case(
            "signature: by a stranger's key under the signer's key id",
            _with(_proof(RESPONDER, key="F"), key_id=_qid("B")),
        ),
        _Case(
            "signature: by the other end's key under the signer's key id",
            _with(i_proof, key_id=_qid("B")),
        ),
        _Case("signature: altered", _with(r_proof, signature=_other_char(sig, 0))),
        _Case(
            "signature: the proof's ts changed",
            _with(r_proof, ts=T0 + 1),
        ),
        _Case(
            "signature: the initiator's nonce tampered with",
            r_proof,
            roles=LinkRoles(INITIATOR, RESPONDER, _other_char(NI, 5), NR),
        ),
        _Case(
            "signature: the responder's nonce tampered with",
            r_proof,
            roles=LinkRoles(INITIATOR, RESPONDER, NI, _other_char(NR, 5)),
        ),
        _Case("signature: roles swapped, with their nonces", _proof(RESPONDER, roles=swapped)),
        _Case(
            "signature: names swapped, nonces not",
            _proof(RESPONDER, roles=LinkRoles(RESPONDER, INITIATOR, NI, NR)),
        ),
        _Case(
            "signature: nonces swapped",
            _proof(RESPONDER, roles=LinkRoles(INITIATOR, RESPONDER, NR, NI)),
        ),
        _Case(
            "signature: made for a link with another responder",
            _proof(RESPONDER, roles=LinkRoles(INITIATOR, "c.example", NI, NR)),
        ),
        _Case(
            "signature: the signer member names the other end",
            _proof(INITIATOR, key="B"),
        ),
        _Case(
            "signature: both ends share a key; the signer member tells their proofs apart",
            i_proof,
            RESPONDER,
            keys=shared,
        ),
        _Case("signature: not base64", _with(r_proof, signature=sig[:-1] + "!")),
        _Case("signature: padded", _with(r_proof, signature=sig + "==")),
        _Case("signature: the URL-safe alphabet", _with(r_proof, signature=urlsafe)),
        _Case("signature: 63 bytes", _with(r_proof, signature=encode_base64(raw_sig[:63]))),
        _Case("signature: 65 bytes", _with(r_proof, signature=encode_base64(raw_sig + b"\0"))),
        _Case("signature: empty", _with(r_proof, signature="")),
        # the time
        _Case("clock: made 300001 ms before the checker's clock", r_proof, now=T0 + SKEW + 1),
        _Case("clock: made 300001 ms after the checker's clock", r_proof, now=T0 - SKEW - 1),
        _Case("clock: a proof an hour old", r_proof, now=T0 + HOUR),
        _Case("clock: ts 0 checked now", _proof(INITIATOR, 0), INITIATOR),
        # which check comes first
        _Case(
            "order: the shape before the key",
            _with(_proof(RESPONDER, key="F"), signature=None),
        ),
        _Case(
            "order: the key before the signature's encoding",
            _with(_proof(RESPONDER, key="F"), signature="!"),
        ),
        _Case(
            "order: the key before the clock",
            _proof(RESPONDER, key="F"),
            now=T0 + HOUR,
        ),
        _Case(
            "order: the signature before the clock",
            _with(r_proof, signature=_other_char(sig, 0)),
            now=T0 + HOUR,
        ),
    ]


_EXPECTED_BY_PREFIX = {
    "valid": None,
    "shape": "bad_params",
    "key": "unknown_key",
    "signature": "bad_signature",
    "clock": "clock_skew",
}
_EXPECTED_ORDER = {
    "order: the shape before the key": "bad_params",
    "order: the key before the signature's encoding": "unknown_key",
    "order: the key before the clock": "unknown_key",
    "order: the signature before the clock": "bad_signature",
}


def _check_vectors() -> list[dict[str, Any]]:
    out = []
    for case in _check_cases():
        vector = case.vector()
        prefix = case.name.partition(":")[0]
        expected = _EXPECTED_ORDER[case.name] if prefix == "order" else _EXPECTED_BY_PREFIX[prefix]
        assert vector["error"] == expected, (case.name, vector["error"])
        out.append(vector)
    return out


# --- nonces -------------------------------------------------------------------------------

_ONES = encode_nonce(b"\xff" * 32)

NONCES: list[tuple[str, Any]] = [
    ("valid: the initiator's nonce of these vectors", NI),
    ("valid: the responder's nonce of these vectors", NR),
    ("valid: 32 zero bytes", encode_nonce(bytes(32))),
    ("valid: 32 bytes of ones", _ONES),
    ("31 bytes", encode_base64(bytes(31))),
    ("33 bytes", encode_base64(bytes(33))),
    ("empty", ""),
    ("padded", NI + "="),
    ("the URL-safe alphabet", _ONES.replace("/", "_")),
    ("unused bits not zero", _ONES[:-1] + "/"),
    ("a space inside", NI[:20] + " " + NI[20:]),
    ("a line break at the end", NI + "\n"),
    ("the hex of 32 bytes", bytes(32).hex()),
    ("not a string", 5),
    ("null", None),
]


def _nonce_vectors() -> list[dict[str, Any]]:
    out = []
    for name, nonce in NONCES:
        code = _error_code(check_nonce, nonce)
        assert code == (None if name.startswith("valid") else "bad_params"), (name, code)
        out.append({"name": name, "nonce": nonce, "error": code})
    return out


def _key_entries() -> list[dict[str, str]]:
    return [
        {
            "name": name,
            "seed": encode_base64(SEEDS[name]),
            "key_id": _id(name),
            "public_key": _pub(name),
        }
        for name in "ABCDF"
    ]


def link_vectors() -> dict[str, Any]:
    """Every section of spec/vectors/link.json."""
    return {
        "keys": _key_entries(),
        "statement": _statement_vectors(),
        "make": _make_vectors(),
        "check": _check_vectors(),
        "nonce": _nonce_vectors(),
    }
