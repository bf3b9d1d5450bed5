"""Generate ``spec/vectors/*.json`` from the reference implementation.

The vectors are the protocol's known answers: they are generated once, reviewed, committed,
and from then on checked forever (``tests/protocol/test_vectors_are_current.py`` fails if
the implementation drifts from them; ``tests/conformance`` checks any implementation
against them). Run ``make vectors`` and review the diff before committing.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import protocol
from protocol.b64 import encode_base64
from protocol.errors import ProtocolError
from protocol.signing import signing_key_from_seed
from tests.conformance.adapter import ConformanceError
from tests.conformance.kith_adapter import ADAPTER, ID_CHECKS
from tests.vectors.link import link_vectors
from tests.vectors.megolm import megolm_vectors
from tests.vectors.olm import olm_vectors
from tests.vectors.rooms import auth_vectors, resolution_vectors
from tests.vectors.server_keys import server_keys_vectors

VECTORS_DIR = Path(__file__).resolve().parents[2] / "spec" / "vectors"

SEED_A = bytes(range(32))
SEED_B = hashlib.sha256(b"kith test vector seed B").digest()
SEED_C = hashlib.sha256(b"kith test vector seed C").digest()


def _error_code(call: Any, *args: Any, **kwargs: Any) -> str | None:
    try:
        call(*args, **kwargs)
    except ProtocolError as exc:
        return exc.code.value
    return None


def _hash_id(sigil: str, label: str) -> str:
    return sigil + protocol.encode_base64_urlsafe(hashlib.sha256(label.encode()).digest())


# --- canonical JSON ----------------------------------------------------------------------

CANONICAL_VALID: list[tuple[str, str]] = [
    ("empty object", "{}"),
    ("empty array", "[]"),
    ("literals", "[true, false, null]"),
    ("whitespace is dropped", ' { "b" : [ 1 , 2 ] ,\n\t"a" : "x" } '),
    ("keys sorted at every level", '{"b": {"d": 1, "c": 2}, "a": [{"z": 0, "y": 0}]}'),
    ("keys sorted by code point, not by UTF-16", '{"\\ud83d\\ude00": 1, "\\uff61": 2, "~": 3}'),
    ("keys sorted by code point: uppercase first", '{"a": 1, "B": 2, "_": 3, "A": 4}'),
    ("non-ASCII kept as UTF-8", '{"text": "\\u65e5\\u672c\\u8a9e \\u00e9 \\u0416"}'),
    ("astral characters as UTF-8", '{"emoji": "\\ud83d\\ude00 \\ud83c\\udf89"}'),
    ("short escapes", '["\\" \\\\ \\b \\f \\n \\r \\t"]'),
    ("other C0 controls as lowercase \\u00XX", '["\\u0000 \\u0001 \\u001F \\u000B"]'),
    ("solidus, DEL, U+2028 and U+2029 are not escaped", '["\\/ \\u007f \\u2028 \\u2029"]'),
    ("integers", "[0, -0, 1, -1, 9007199254740991, -9007199254740991]"),
    ("strings that look like numbers stay strings", '{"n": "1.5e3"}'),
    ("nested 64 levels deep", "[" * 64 + "]" * 64),
    ("duplicate values are fine, only keys must be unique", '{"a": [1, 1], "b": {"a": 1}}'),
]

CANONICAL_INVALID: list[tuple[str, str | bytes, str]] = [
    ("float with fraction", "1.0", "bad_json"),
    ("float with exponent", "1e10", "bad_json"),
    ("negative zero float", "-0.0", "bad_json"),
    ("float inside an object", '{"a": 0.5}', "bad_json"),
    ("capital exponent", "[1E2]", "bad_json"),
    ("NaN", "NaN", "bad_json"),
    ("Infinity", "[Infinity]", "bad_json"),
    ("negative Infinity", "-Infinity", "bad_json"),
    ("integer above 2**53-1", "9007199254740992", "bad_json"),
    ("integer below -(2**53-1)", "-9007199254740992", "bad_json"),
    ("huge integer", "1" + "0" * 400, "bad_json"),
    ("duplicate key", '{"a": 1, "a": 2}', "bad_json"),
    ("duplicate key spelled with an escape", '{"a": 1, "\\u0061": 2}', "bad_json"),
    ("nested duplicate key", '{"x": {"k": 1, "k": 1}}', "bad_json"),
    ("lone high surrogate escape", '"\\ud800"', "bad_json"),
    ("lone low surrogate escape", '["\\udc00"]', "bad_json"),
    ("high surrogate followed by a non-surrogate", '"\\ud83dx"', "bad_json"),
    ("surrogate escape in a key", '{"\\udfff": 1}', "bad_json"),
    ("invalid UTF-8 byte", b'"\xff"', "bad_json"),
    ("overlong UTF-8", b'"\xc0\xaf"', "bad_json"),
    ("UTF-8 encoded surrogate", b'"\xed\xa0\x80"', "bad_json"),
    ("truncated UTF-8 sequence", b'"\xe6\x97"', "bad_json"),
    ("byte order mark", b"\xef\xbb\xbf{}", "bad_json"),
    ("nested 65 levels deep", "[" * 65 + "]" * 65, "bad_json"),
    ("empty input", "", "bad_json"),
    ("trailing comma", "[1,]", "bad_json"),
    ("single quotes", "{'a': 1}", "bad_json"),
    ("unquoted key", "{a: 1}", "bad_json"),
    ("comment", "[1] // no", "bad_json"),
    ("two values", "{} {}", "bad_json"),
    ("raw control character in a string", '"a\tb"', "bad_json"),
    ("leading zero", "[01]", "bad_json"),
    ("leading plus", "+1", "bad_json"),
    ("bad escape", '"\\x41"', "bad_json"),
]


def canonical_json_vectors() -> dict[str, Any]:
    """Valid inputs with their canonical bytes, and inputs the decoder must refuse."""
    valid = [
        {
            "name": name,
            "input": text,
            "canonical": protocol.encode_canonical_json(protocol.decode_json(text)).decode(),
        }
        for name, text in CANONICAL_VALID
    ]
    invalid: list[dict[str, Any]] = []
    for name, data, code in CANONICAL_INVALID:
        actual = _error_code(protocol.decode_json, data)
        assert actual == code, (name, actual)
        entry: dict[str, Any] = {"name": name}
        if isinstance(data, bytes):
            entry["input_hex"] = data.hex()
        else:
            entry["input"] = data
        entry["error"] = code
        invalid.append(entry)
    return {"valid": valid, "invalid": invalid}


# --- identifiers --------------------------------------------------------------------------

IDS: dict[str, tuple[list[str], list[str]]] = {
    "server_name": (
        [
            "example.org",
            "a",
            "localhost:7447",
            "kith.example.org:1",
            "xn--bcher-kva.example",
            "node-1.home.arpa:65535",
            "1.2.3.4",
            "127.0.0.1:8448",
            "[::1]",
            "[2001:db8::7]:443",
            "[::ffff:102:304]",
            "[2001:db8::1:0:0:1]",
            "[1::1:0:0:1:1]",
            "[1:0:0:2::3]",
            "[::]",
            "a" * 63 + ".example",
        ],
        [
            "",
            "Example.org",
            "example.org.",
            "-example.org",
            "example-.org",
            "exa_mple.org",
            "example..org",
            "example.org:0",
            "example.org:65536",
            "example.org:07447",
            "example.org:",
            "example.org:http",
            "256.1.1.1",
            "1.2.3",
            "01.2.3.4",
            "[::1",
            "::1",
            "[0:0:0:0:0:0:0:1]",
            "[2001:DB8::7]",
            "[::1]x",
            "[fe80::1%eth0]",
            "[::ffff:1.2.3.4]",
            "[2001:db8:0:0:1:0:0:1]",
            "[1:0:0:1::1:1]",
            "[1::2:0:0:0:3]",
            "[0::]",
            "a" * 64 + ".example",
            "a." * 127 + "aa",
        ],
    ),
    "user_id": (
        ["@alice:example.org", "@a:b", "@bob.smith_=-:[::1]:7447", "@" + "x" * 64 + ":a"],
        [
            "alice:example.org",
            "@alice",
            "@:example.org",
            "@Alice:example.org",
            "@al ice:example.org",
            "@alice/x:example.org",
            "@alice:Example.org",
            "@" + "x" * 65 + ":a",
            "@alice:example.org:99999",
        ],
    ),
    "room_id": (
        [_hash_id("!", "room"), "!" + "A" * 43, "!" + "_" * 42 + "w"],
        [
            "",
            "!",
            "$" + "A" * 43,
            "!" + "A" * 42,
            "!" + "A" * 44,
            "!" + "A" * 42 + "B",
            "!" + "+" * 42 + "A",
            "!" + "A" * 42 + "=",
        ],
    ),
    "event_id": (
        [_hash_id("$", "event"), "$" + "-" * 42 + "8"],
        ["", "$", "!" + "A" * 43, "$" + "A" * 42 + "Z", "$" + "/" * 42 + "A", "$" + "A" * 43 + "="],
    ),
    "device_id": (
        ["ABCDEFGHIJ", "phone", "a_b-c", "x" * 64],
        ["", "x" * 65, "dev ice", "dev:ice", "dévice", "a.b"],
    ),
    "key_id": (
        ["k1a2b3c4d", "a_1", "A" * 64],
        ["", "A" * 65, "a-1", "ed25519:a", "a b"],
    ),
}


def id_vectors() -> dict[str, Any]:
    """Identifiers every implementation must accept, and ones it must refuse."""
    out: dict[str, Any] = {}
    for kind, (valid, invalid) in IDS.items():
        check = ID_CHECKS[kind]
        for text in valid:
            assert _error_code(check, text) is None, (kind, text)
        for text in invalid:
            assert _error_code(check, text) == "bad_identifier", (kind, text)
        out[kind] = {"valid": valid, "invalid": invalid}
    return out


# --- base64 -------------------------------------------------------------------------------

BASE64_BYTES = [b"", b"\x00", b"\xff", b"\xfb\xff", b"hello", b"\x00\x01\x02", bytes(range(32))]


def base64_vectors() -> dict[str, Any]:
    """Unpadded base64 in both alphabets, and strings strict decoding refuses."""
    standard_invalid = ["A", "AA==", "AB", "AAB", "A-_A", "AA AA", "AAAA\n", "=", "ÀÀ"]
    urlsafe_invalid = ["A", "AA==", "AB", "AAB", "A+/A", "AA AA", "=", "ÀÀ"]
    for text in standard_invalid:
        assert _error_code(protocol.decode_base64, text) == "bad_base64", text
    for text in urlsafe_invalid:
        assert _error_code(protocol.decode_base64_urlsafe, text) == "bad_base64", text
    return {
        "standard": {
            "valid": [{"text": protocol.encode_base64(b), "hex": b.hex()} for b in BASE64_BYTES],
            "invalid": standard_invalid,
        },
        "urlsafe": {
            "valid": [
                {"text": protocol.encode_base64_urlsafe(b), "hex": b.hex()} for b in BASE64_BYTES
            ],
            "invalid": urlsafe_invalid,
        },
    }


# --- signing --------------------------------------------------------------------------------


def _key_entry(seed: bytes) -> dict[str, str]:
    key = signing_key_from_seed(seed)
    return {
        "seed": encode_base64(seed),
        "key_id": protocol.derive_key_id(key.verify_key),
        "public_key": protocol.encode_verify_key(key.verify_key),
    }


def signing_vectors() -> dict[str, Any]:
    """Signed objects from fixed seeds, and objects whose verification must fail."""
    keys = [_key_entry(seed) for seed in (SEED_A, SEED_B, SEED_C)]
    key_a = signing_key_from_seed(SEED_A)
    id_a, id_b = keys[0]["key_id"], keys[1]["key_id"]
    objects: list[tuple[str, str, str, bytes, dict[str, Any]]] = [
        ("empty object", "a.example", id_a, SEED_A, {}),
        ("key object", "a.example", id_a, SEED_A, {"server_name": "a.example", "keys": {"x": 1}}),
        (
            "unsigned is not signed but kept",
            "a.example",
            id_a,
            SEED_A,
            {"body": "héllo 😀", "unsigned": {"age": 5}},
        ),
        (
            "signatures of other entities are kept",
            "b.example",
            id_b,
            SEED_B,
            protocol.sign_json({"n": 1}, "a.example", id_a, key_a),
        ),
        (
            "a user can sign too",
            "@alice:a.example",
            "device1",
            SEED_C,
            {"device_id": "device1", "keys": {"curve25519:device1": "abc"}},
        ),
    ]
    sign = []
    for name, entity, key_id, seed, obj in objects:
        signed = protocol.sign_json(obj, entity, key_id, signing_key_from_seed(seed))
        unsigned = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
        sign.append(
            {
                "name": name,
                "entity": entity,
                "key_id": key_id,
                "seed": encode_base64(seed),
                "object": obj,
                "signed_bytes": protocol.encode_canonical_json(unsigned).decode(),
                "signed": signed,
            }
        )
    good = protocol.sign_json({"a": 1, "b": "x"}, "a.example", id_a, key_a)
    sig = good["signatures"]["a.example"][f"ed25519:{id_a}"]
    pub_a, pub_b = keys[0]["public_key"], keys[1]["public_key"]
    cases: list[tuple[str, dict[str, Any], str, str, str]] = [
        ("valid", good, "a.example", id_a, pub_a),
        (
            "valid with unsigned added later",
            {**good, "unsigned": {"x": 1}},
            "a.example",
            id_a,
            pub_a,
        ),
        ("a signed value changed", {**good, "a": 2}, "a.example", id_a, pub_a),
        ("a key added", {**good, "c": None}, "a.example", id_a, pub_a),
        ("wrong public key", good, "a.example", id_a, pub_b),
        ("entity did not sign", good, "b.example", id_a, pub_a),
        ("key id not used", good, "a.example", id_b, pub_a),
        ("no signatures at all", {"a": 1, "b": "x"}, "a.example", id_a, pub_a),
        (
            "signature is not base64",
            {**good, "signatures": {"a.example": {f"ed25519:{id_a}": sig[:-1] + "!"}}},
            "a.example",
            id_a,
            pub_a,
        ),
        (
            "signature is padded",
            {**good, "signatures": {"a.example": {f"ed25519:{id_a}": sig + "=="}}},
            "a.example",
            id_a,
            pub_a,
        ),
        (
            "signature too short",
            {**good, "signatures": {"a.example": {f"ed25519:{id_a}": sig[:40]}}},
            "a.example",
            id_a,
            pub_a,
        ),
    ]
    verify = []
    for name, obj, entity, key_id, public_key in cases:
        code = _error_code(
            protocol.verify_json, obj, entity, key_id, protocol.decode_verify_key(public_key)
        )
        verify.append(
            {
                "name": name,
                "object": obj,
                "entity": entity,
                "key_id": key_id,
                "public_key": public_key,
                "error": code,
            }
        )
    return {"keys": keys, "sign": sign, "verify": verify}


# --- events -------------------------------------------------------------------------------

_TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _sample_events() -> list[tuple[str, str, dict[str, Any]]]:
    create = protocol.build_event(
        event_type="create",
        sender="@alice:a.example",
        state_key="",
        content={"creator": "@alice:a.example", "room_version": "1", "direct": False},
        prev_events=[],
        auth_events=[],
        depth=0,
        origin_server_ts=_TS,
    )
    key_a = signing_key_from_seed(SEED_A)
    id_a = protocol.derive_key_id(key_a.verify_key)
    signed_create = protocol.sign_event(create, "a.example", id_a, key_a)
    room_id = "!" + protocol.compute_event_id(signed_create)[1:]
    create_id = protocol.compute_event_id(signed_create)
    common: dict[str, Any] = {"room_id": room_id, "origin_server_ts": _TS + 1}
    member = protocol.build_event(
        event_type="member",
        sender="@bob:b.example",
        state_key="@bob:b.example",
        content={"membership": "join", "displayname": "Bob"},
        prev_events=[create_id],
        auth_events=[create_id],
        depth=1,
        **common,
    )
    power = protocol.build_event(
        event_type="power_levels",
        sender="@alice:a.example",
        state_key="",
        content={"users_default": 0, "ban": 50, "kick": 50, "x": 1},
        prev_events=[create_id],
        auth_events=[create_id],
        depth=1,
        **common,
    )
    message = protocol.build_event(
        event_type="message",
        sender="@alice:a.example",
        content={"body": 'Grüße, 世界! 😀 "quoted" \\ \n', "msgtype": "text"},
        prev_events=[create_id, _hash_id("$", "other parent")],
        auth_events=[create_id],
        depth=2,
        **common,
    )
    custom = protocol.build_event(
        event_type="org.example.poll",
        sender="@alice:a.example",
        content={"question": "tea?"},
        prev_events=[create_id],
        auth_events=[],
        depth=1,
        **common,
    )
    return [
        ("create event (no room_id)", "a.example", create),
        ("member event signed by the sender's server", "b.example", member),
        ("power levels", "a.example", power),
        ("message with escapes and astral characters", "a.example", message),
        ("extension event type", "a.example", custom),
    ]


def _seed_for(server: str) -> bytes:
    return SEED_A if server == "a.example" else SEED_B


def event_vectors() -> dict[str, Any]:
    """Signed events with their hashes, redacted forms and ids; verification outcomes."""
    sign = []
    signed_by_name: dict[str, dict[str, Any]] = {}
    for name, server, event in _sample_events():
        seed = _seed_for(server)
        key = signing_key_from_seed(seed)
        key_id = protocol.derive_key_id(key.verify_key)
        signed = protocol.sign_event(event, server, key_id, key)
        signed_by_name[name] = signed
        sign.append(
            {
                "name": name,
                "seed": encode_base64(seed),
                "server_name": server,
                "key_id": key_id,
                "event": event,
                "content_hash": protocol.compute_content_hash(event),
                "redacted": protocol.redact_event(signed),
                "signed": signed,
                "event_id": protocol.compute_event_id(signed),
            }
        )
    redact_inputs = [
        {**signed_by_name["power levels"], "unsigned": {"age": 1}},
        signed_by_name["member event signed by the sender's server"],
        signed_by_name["create event (no room_id)"],
        signed_by_name["message with escapes and astral characters"],
        signed_by_name["extension event type"],
        {
            "type": "redaction",
            "room_id": _hash_id("!", "r"),
            "content": {"redacts": _hash_id("$", "x"), "reason": "spam"},
        },
        {"type": "join_rules", "content": {"join_rule": "public", "allow": []}},
        {"type": "encryption", "content": {"algorithm": "megolm.v1", "rotation_ms": 1}},
        {"type": "name", "content": {"name": "Room"}, "extra": 1},
    ]
    redact = [
        {"name": f"redact {e.get('type')}", "event": e, "redacted": protocol.redact_event(e)}
        for e in redact_inputs
    ]
    return {"sign": sign, "verify": _verify_cases(signed_by_name), "redact": redact}


def _verify_cases(signed_by_name: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    message = signed_by_name["message with escapes and astral characters"]
    member = signed_by_name["member event signed by the sender's server"]
    key_a, key_b = signing_key_from_seed(SEED_A), signing_key_from_seed(SEED_B)
    id_a, id_b = protocol.derive_key_id(key_a.verify_key), protocol.derive_key_id(key_b.verify_key)
    pub_a, pub_b = (
        protocol.encode_verify_key(key_a.verify_key),
        protocol.encode_verify_key(key_b.verify_key),
    )
    both = {"a.example": {id_a: pub_a}, "b.example": {id_b: pub_b}}
    forged = protocol.sign_event(
        {k: v for k, v in member.items() if k not in ("hashes", "signatures")},
        "a.example",
        id_a,
        key_a,
    )
    cases: list[tuple[str, dict[str, Any], dict[str, dict[str, str]]]] = [
        ("valid message", message, both),
        ("valid member event", member, both),
        ("unsigned may be added by anyone", {**message, "unsigned": {"age": 9}}, both),
        (
            "content changed: hash mismatch keeps the redacted form",
            {**message, "content": {"body": "changed", "msgtype": "text"}},
            both,
        ),
        ("a redacted event still verifies", protocol.redact_event(message), both),
        ("depth changed: signature fails", {**message, "depth": 3}, both),
        ("sender changed: signature fails", {**message, "sender": "@mallory:a.example"}, both),
        ("signed by another server than the sender's", forged, both),
        ("sender's server key unknown", message, {"b.example": {id_b: pub_b}}),
        ("wrong key under the right id", message, {"a.example": {id_a: pub_b}}),
        (
            "extra co-signature is ignored",
            protocol.sign_event(message, "b.example", id_b, key_b),
            both,
        ),
        ("missing sender", {k: v for k, v in message.items() if k != "sender"}, both),
        ("unknown top-level key", {**message, "origin": "a.example"}, both),
        ("type without a dot that the protocol does not define", {**message, "type": "poll"}, both),
        ("float in content", {**message, "content": {"n": 1.5}}, both),
        (
            "content over the size limit: the signed form is kept (events.md §7 step 2)",
            {**message, "content": {"body": "x" * protocol.MAX_EVENT_BYTES, "msgtype": "text"}},
            both,
        ),
        (
            "too many prev_events",
            {**message, "prev_events": [_hash_id("$", str(i)) for i in range(21)]},
            both,
        ),
        (
            "room_id on a create event",
            {**signed_by_name["create event (no room_id)"], "room_id": message["room_id"]},
            both,
        ),
    ]
    out = []
    for name, event, keys in cases:
        verify_keys = {
            server: {kid: protocol.decode_verify_key(pub) for kid, pub in by_id.items()}
            for server, by_id in keys.items()
        }
        try:
            verified = protocol.verify_event(event, verify_keys)
        except ProtocolError as exc:
            outcome, event_id = exc.code.value, None
        else:
            outcome = "redacted" if verified.redacted else "ok"
            event_id = verified.event_id
        out.append(
            {"name": name, "event": event, "keys": keys, "outcome": outcome, "event_id": event_id}
        )
    return out


# --- frames -------------------------------------------------------------------------------

FRAME_CASES: list[tuple[str, str, str, str]] = [
    ("ping with a string id", "client", "client", '{"id": "r1", "op": "ping", "params": {}}'),
    ("ping with an integer id", "client", "client", '{"id": 7, "op": "ping"}'),
    ("ping between nodes", "federation", "node", '{"op": "ping", "id": 0, "params": {}}'),
    ("result", "client", "node", '{"id": "r1", "result": {"x": [1]}}'),
    ("error with an id", "client", "node", '{"id": 3, "error": {"code": "x", "message": "m"}}'),
    (
        "error without a readable id",
        "federation",
        "node",
        '{"id": null, "error": {"code": "bad_frame", "message": ""}}',
    ),
    ("unknown op", "client", "client", '{"id": "q", "op": "teleport", "params": {}}'),
    ("unknown notice op", "client", "client", '{"op": "teleport"}'),
    (
        "params not allowed for ping",
        "client",
        "client",
        '{"id": "q", "op": "ping", "params": {"x": 1}}',
    ),
    ("params not an object", "client", "client", '{"id": "q", "op": "ping", "params": []}'),
    ("request op without an id", "client", "client", '{"op": "ping", "params": {}}'),
    ("unknown envelope key", "client", "client", '{"id": "q", "op": "ping", "extra": 1}'),
    ("op is not a string", "client", "client", '{"id": "q", "op": 5}'),
    ("id too long", "client", "client", '{"id": "' + "x" * 65 + '", "op": "ping"}'),
    ("empty string id", "client", "client", '{"id": "", "op": "ping"}'),
    ("negative id", "client", "client", '{"id": -1, "op": "ping"}'),
    ("boolean id", "client", "client", '{"id": true, "op": "ping"}'),
    ("null id on a request", "client", "client", '{"id": null, "op": "ping"}'),
    ("float id is not JSON of the data model", "client", "client", '{"id": 1.5, "op": "ping"}'),
    ("not JSON", "client", "client", "ping"),
    ("truncated JSON", "client", "client", '{"id": "q", "op": "pi'),
    ("a list is not a frame", "client", "client", '[{"id": 1, "op": "ping"}]'),
    ("an empty object is not a frame", "client", "client", "{}"),
    ("result without id", "client", "node", '{"result": {}}'),
    ("result is not an object", "client", "node", '{"id": 1, "result": 5}'),
    ("result with null id", "client", "node", '{"id": null, "result": {}}'),
    ("error frame without id key", "client", "node", '{"error": {"code": "x", "message": ""}}'),
    (
        "error body with an extra key",
        "client",
        "node",
        '{"id": 1, "error": {"code": "x", "message": "", "y": 1}}',
    ),
    ("error code empty", "client", "node", '{"id": 1, "error": {"code": "", "message": ""}}'),
    ("op and result together", "client", "client", '{"id": 1, "op": "ping", "result": {}}'),
]


def frame_vectors() -> dict[str, Any]:
    """Messages and what decoding them yields: a frame, or the error frame to answer."""
    decode = []
    for name, endpoint, sender, text in FRAME_CASES:
        entry: dict[str, Any] = {
            "name": name,
            "endpoint": endpoint,
            "sender": sender,
            "input": text,
        }
        try:
            entry["frame"] = ADAPTER.decode_frame(text, endpoint, sender)
        except ConformanceError as exc:
            entry["error"] = {
                "code": exc.code,
                "request_id": exc.request_id,
                "close_code": exc.close_code,
            }
        decode.append(entry)
    return {"decode": decode}


GENERATORS = {
    "auth.json": auth_vectors,
    "resolution.json": resolution_vectors,
    "canonical_json.json": canonical_json_vectors,
    "ids.json": id_vectors,
    "base64.json": base64_vectors,
    "signing.json": signing_vectors,
    "events.json": event_vectors,
    "frames.json": frame_vectors,
    "server_keys.json": server_keys_vectors,
    "link.json": link_vectors,
    "megolm.json": megolm_vectors,
    "olm.json": olm_vectors,
}


def render(name: str) -> str:
    """The exact text of one vector file."""
    return json.dumps(GENERATORS[name](), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    """Write every vector file; print which ones changed."""
    VECTORS_DIR.mkdir(parents=True, exist_ok=True)
    for name in GENERATORS:
        path = VECTORS_DIR / name
        text = render(name)
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(VECTORS_DIR.parents[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
