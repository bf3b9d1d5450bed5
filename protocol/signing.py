"""Ed25519 signatures on JSON objects, Matrix's "Signing JSON" algorithm (spec/signing.md).

To sign: drop ``signatures`` and ``unsigned``, encode the rest as canonical JSON, sign those
bytes, and store the unpadded base64 signature under
``signatures[entity]["ed25519:<key id>"]``, keeping every other signature already there.
To verify: the same bytes, the signature found at the same place.
"""

from __future__ import annotations

import hashlib

import nacl.exceptions
import nacl.signing

from protocol.b64 import decode_base64, encode_base64
from protocol.canonical_json import JsonObject, _check_encodable, encode_trusted_json
from protocol.errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
from protocol.ids import validate_key_id

__all__ = [
    "ED25519",
    "canonical_signed_bytes",
    "decode_verify_key",
    "derive_key_id",
    "encode_verify_key",
    "format_key_id",
    "parse_key_id",
    "sign_json",
    "signature_of",
    "signing_key_from_seed",
    "verify_json",
    "verify_signature_bytes",
]

ED25519 = "ed25519"
_SIGNATURE_BYTES = 64
_NOT_SIGNED = frozenset({"signatures", "unsigned"})
_KEY_BYTES = 32


def format_key_id(key_id: str) -> str:
    """``"ed25519:" + key_id`` — the name a signature is stored under (spec/signing.md §2)."""
    try:
        return f"{ED25519}:{validate_key_id(key_id)}"
    except RemoteProtocolError as exc:
        raise LocalProtocolError(ErrorCode.BAD_IDENTIFIER, exc.message) from exc


def parse_key_id(algorithm_and_id: str) -> tuple[str, str]:
    """Split ``"<algorithm>:<key id>"``; raise ``bad_identifier`` when malformed."""
    if not isinstance(algorithm_and_id, str):
        raise RemoteProtocolError(ErrorCode.BAD_IDENTIFIER, "key id must be a string")
    algorithm, colon, key_id = algorithm_and_id.partition(":")
    if not colon or not algorithm:
        raise RemoteProtocolError(
            ErrorCode.BAD_IDENTIFIER, f"key id {algorithm_and_id[:80]!r} is not '<algorithm>:<id>'"
        )
    return algorithm, validate_key_id(key_id)


def derive_key_id(verify_key: nacl.signing.VerifyKey) -> str:
    """A short key id derived from the public key: ``k`` + 8 hex digits of its sha256.

    Deterministic, so a node needs no randomness to name a key, and two keys of one
    node are told apart with overwhelming probability.
    """
    return "k" + hashlib.sha256(bytes(verify_key)).hexdigest()[:8]


def encode_verify_key(verify_key: nacl.signing.VerifyKey) -> str:
    """The public key as unpadded base64 — the form published and pinned by peers."""
    return encode_base64(bytes(verify_key))


def decode_verify_key(text: str) -> nacl.signing.VerifyKey:
    """Parse an unpadded base64 Ed25519 public key; raise ``bad_key``/``bad_base64``."""
    raw = decode_base64(text)
    if len(raw) != _KEY_BYTES:
        raise RemoteProtocolError(ErrorCode.BAD_KEY, f"Ed25519 key must be {_KEY_BYTES} bytes")
    return nacl.signing.VerifyKey(raw)


def signing_key_from_seed(seed: bytes) -> nacl.signing.SigningKey:
    """The Ed25519 signing key for a 32-byte seed (the caller supplies the randomness)."""
    if not isinstance(seed, bytes) or len(seed) != _KEY_BYTES:
        raise LocalProtocolError(ErrorCode.BAD_KEY, f"Ed25519 seed must be {_KEY_BYTES} bytes")
    return nacl.signing.SigningKey(seed)


def _unsigned_form(obj: JsonObject) -> JsonObject:
    """``obj`` without ``signatures`` and ``unsigned`` (spec/signing.md §3 step 1)."""
    return {k: v for k, v in obj.items() if k not in _NOT_SIGNED}


def _sign_bytes(message: bytes, signing_key: nacl.signing.SigningKey) -> str:
    return encode_base64(signing_key.sign(message).signature)


def _with_signature(obj: JsonObject, entity: str, name: str, signature: str) -> JsonObject:
    """A copy of ``obj`` whose ``signatures`` gain ``entity``/``name`` (others are kept)."""
    existing = obj.get("signatures", {})
    if not isinstance(existing, dict) or not all(isinstance(v, dict) for v in existing.values()):
        raise LocalProtocolError(ErrorCode.BAD_JSON, "'signatures' must map entities to objects")
    signatures = dict(existing)
    signatures[entity] = {**existing.get(entity, {}), name: signature}
    return {**obj, "signatures": signatures}


def sign_json(
    obj: JsonObject, entity: str, key_id: str, signing_key: nacl.signing.SigningKey
) -> JsonObject:
    """Return a copy of ``obj`` signed by ``entity`` with ``signing_key`` (spec/signing.md §3).

    ``key_id`` is the bare id; the signature is stored under ``"ed25519:" + key_id``.
    Raises ``LocalProtocolError`` if ``obj`` is not an object of the JSON data model.
    """
    if not isinstance(obj, dict):
        raise LocalProtocolError(ErrorCode.BAD_JSON, "only JSON objects can be signed")
    if not isinstance(entity, str) or not entity:
        raise LocalProtocolError(ErrorCode.BAD_IDENTIFIER, "the signing entity must be named")
    name = format_key_id(key_id)
    unsigned = _unsigned_form(obj)
    _check_encodable(unsigned, 0)
    return _with_signature(
        obj, entity, name, _sign_bytes(encode_trusted_json(unsigned), signing_key)
    )


def signature_of(obj: JsonObject, entity: str, name: str) -> bytes:
    """The raw signature ``obj`` carries from ``entity`` under ``name`` ("ed25519:<id>")."""
    signatures = obj.get("signatures")
    if not isinstance(signatures, dict):
        raise RemoteProtocolError(ErrorCode.MISSING_SIGNATURE, "object carries no signatures")
    by_entity = signatures.get(entity)
    if not isinstance(by_entity, dict) or name not in by_entity:
        raise RemoteProtocolError(
            ErrorCode.MISSING_SIGNATURE, f"no signature by {entity[:80]!r} with key {name!r}"
        )
    encoded = by_entity[name]
    if not isinstance(encoded, str):
        raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "signature is not a string")
    try:
        raw = decode_base64(encoded)
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, f"signature: {exc.message}") from exc
    if len(raw) != _SIGNATURE_BYTES:
        raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "Ed25519 signatures are 64 bytes")
    return raw


def verify_signature_bytes(
    message: bytes, signature: bytes, verify_key: nacl.signing.VerifyKey
) -> None:
    """Check one Ed25519 signature over ``message``; raise ``bad_signature`` if it fails."""
    try:
        verify_key.verify(message, signature)
    except nacl.exceptions.BadSignatureError as exc:
        raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "signature does not verify") from exc


def canonical_signed_bytes(obj: JsonObject) -> bytes:
    """The bytes a signature on ``obj`` covers; ``bad_json`` if ``obj`` is not encodable."""
    unsigned = _unsigned_form(obj)
    try:
        _check_encodable(unsigned, 0)
        return encode_trusted_json(unsigned)
    except ProtocolError as exc:
        raise RemoteProtocolError(ErrorCode.BAD_JSON, exc.message) from exc


def verify_json(
    obj: JsonObject, entity: str, key_id: str, verify_key: nacl.signing.VerifyKey
) -> None:
    """Check ``obj``'s signature by ``entity`` under ``"ed25519:" + key_id``.

    Returns ``None`` when it verifies; raises ``RemoteProtocolError`` with
    ``missing_signature`` (absent) or ``bad_signature`` (malformed or wrong).
    """
    if not isinstance(obj, dict):
        raise RemoteProtocolError(ErrorCode.BAD_JSON, "only JSON objects carry signatures")
    signature = signature_of(obj, entity, format_key_id(key_id))
    verify_signature_bytes(canonical_signed_bytes(obj), signature, verify_key)
