"""Link statements and proofs: how two nodes prove their server names (spec/federation.md §2.2).

Each end of a new link signs a *link statement* naming both servers, both fresh nonces, the
signer and its clock. The nonce chosen by the other end makes a proof useless for any other
link; the names make it useless for any other pair or direction; the time bounds how long a
stolen key's proof could be replayed within a link attempt. This module builds and checks
proofs; the caller supplies the nonces, the keys and the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import nacl.signing

from protocol.b64 import decode_base64, encode_base64
from protocol.canonical_json import MAX_SAFE_INTEGER, JsonObject, encode_canonical_json
from protocol.errors import ErrorCode, RemoteProtocolError
from protocol.signing import (
    _sign_bytes,
    derive_key_id,
    format_key_id,
    parse_key_id,
    verify_signature_bytes,
)

__all__ = [
    "LINK_STATEMENT_TYPE",
    "MAX_CLOCK_SKEW_MS",
    "NONCE_BYTES",
    "LinkRoles",
    "check_nonce",
    "check_proof",
    "encode_nonce",
    "link_statement",
    "make_proof",
]

LINK_STATEMENT_TYPE: Final = "kith.link.v1"
MAX_CLOCK_SKEW_MS: Final = 300_000
"""§2.2: a proof's ``ts`` may differ from the checker's clock by at most five minutes."""
NONCE_BYTES: Final = 32
_SIGNATURE_BYTES: Final = 64
_PROOF_KEYS: Final = frozenset({"ts", "key_id", "signature"})


@dataclass(frozen=True, slots=True)
class LinkRoles:
    """Who is who on one link attempt: both names and both nonces (§2.2)."""

    initiator: str
    responder: str
    initiator_nonce: str
    responder_nonce: str


def link_statement(roles: LinkRoles, signer: str, ts: int) -> bytes:
    """The canonical JSON bytes ``signer`` signs on this link (§2.2)."""
    return encode_canonical_json(
        {
            "initiator": roles.initiator,
            "initiator_nonce": roles.initiator_nonce,
            "responder": roles.responder,
            "responder_nonce": roles.responder_nonce,
            "signer": signer,
            "ts": ts,
            "type": LINK_STATEMENT_TYPE,
        }
    )


def make_proof(
    roles: LinkRoles, signer: str, ts: int, signing_key: nacl.signing.SigningKey
) -> JsonObject:
    """``signer``'s proof for this link, signed with ``signing_key`` at time ``ts``."""
    key_id = format_key_id(derive_key_id(signing_key.verify_key))
    signature = _sign_bytes(link_statement(roles, signer, ts), signing_key)
    return {"ts": ts, "key_id": key_id, "signature": signature}


def check_nonce(nonce: Any) -> str:
    """A nonce as §2.2 defines it: unpadded base64 of 32 bytes (``bad_params``)."""
    if type(nonce) is not str:
        raise RemoteProtocolError(ErrorCode.BAD_PARAMS, "a nonce is a string")
    try:
        raw = decode_base64(nonce)
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(ErrorCode.BAD_PARAMS, f"nonce: {exc.message}") from exc
    if len(raw) != NONCE_BYTES:
        raise RemoteProtocolError(ErrorCode.BAD_PARAMS, f"a nonce is {NONCE_BYTES} bytes")
    return nonce


def check_proof(
    proof: Any,
    roles: LinkRoles,
    signer: str,
    link_key: Callable[[str], nacl.signing.VerifyKey | None],
    now_ms: int,
) -> None:
    """Raise unless ``proof`` is ``signer``'s valid proof for this link at ``now_ms``.

    ``link_key`` looks a bare key id up among the signer's *current* pinned keys (§1.3).
    Codes, in the order of §2.2: ``bad_params`` (shape), ``unknown_key``,
    ``bad_signature``, ``clock_skew``.
    """
    if type(proof) is not dict or proof.keys() != _PROOF_KEYS:
        raise RemoteProtocolError(ErrorCode.BAD_PARAMS, 'a proof is {"ts", "key_id", "signature"}')
    ts, key_name, signature = proof["ts"], proof["key_id"], proof["signature"]
    if type(ts) is not int or type(key_name) is not str or type(signature) is not str:
        raise RemoteProtocolError(ErrorCode.BAD_PARAMS, "a proof's members have the wrong types")
    if not 0 <= ts <= MAX_SAFE_INTEGER:
        # Checked here, not left to the statement's encoder, which would blame this node.
        raise RemoteProtocolError(ErrorCode.BAD_PARAMS, "a proof's ts is not in 0..2^53-1")
    try:
        algorithm, key_id = parse_key_id(key_name)
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(ErrorCode.UNKNOWN_KEY, f"proof key: {exc.message}") from exc
    verify_key = link_key(key_id) if algorithm == "ed25519" else None
    if verify_key is None:
        raise RemoteProtocolError(
            ErrorCode.UNKNOWN_KEY, f"{signer[:80]!r} has no current key {key_name[:80]!r}"
        )
    try:
        raw = decode_base64(signature)
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, f"proof: {exc.message}") from exc
    if len(raw) != _SIGNATURE_BYTES:
        raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "Ed25519 signatures are 64 bytes")
    verify_signature_bytes(link_statement(roles, signer, ts), raw, verify_key)
    if abs(ts - now_ms) > MAX_CLOCK_SKEW_MS:
        raise RemoteProtocolError(
            ErrorCode.CLOCK_SKEW,
            f"the proof's time is {abs(ts - now_ms)} ms away from this node's clock",
        )


def encode_nonce(raw: bytes) -> str:
    """The text form of a nonce the caller drew from its randomness."""
    if len(raw) != NONCE_BYTES:
        raise ValueError(f"a nonce is {NONCE_BYTES} bytes")
    return encode_base64(raw)
