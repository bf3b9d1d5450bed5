"""Server key objects: build them, check them, pin them (spec/federation.md §1).

A node publishes its Ed25519 public keys as a *key object* signed by itself (§1.1). A peer
checks it with :func:`parse_key_object`, which follows the numbered steps of §1.1 and
raises nothing but ``RemoteProtocolError`` with the code of the first failing step, then
decides with :func:`pin` whether it replaces the object pinned for that server (§1.2).
:meth:`ServerKeys.keys_for_event` answers which keys may verify an event (§1.3) and
:meth:`ServerKeys.link_key` which may prove a link (§2.2).

Where §1.1 leaves the order of checks inside one step open, this module fixes it so every
input has one answer: step 3 checks ``verify_keys`` before ``old_verify_keys``, members in
sorted order, and for each member its shape, then its key (``bad_base64``, ``bad_key``),
then whether its name is the key's derived id, then ``expired_ts``; the overlap of the two
maps comes last. Step 4 checks that every current key signed before verifying any
signature.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import nacl.signing

from protocol.canonical_json import MAX_SAFE_INTEGER, JsonObject
from protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from protocol.ids import parse_server_name
from protocol.signing import (
    ED25519,
    canonical_signed_bytes,
    decode_verify_key,
    derive_key_id,
    encode_verify_key,
    format_key_id,
    sign_json,
    signature_of,
    verify_json,
    verify_signature_bytes,
)

__all__ = [
    "KEY_OBJECT_MEMBERS",
    "MAX_CURRENT_KEYS",
    "MAX_OLD_KEYS",
    "OldKey",
    "ServerKeys",
    "build_key_object",
    "parse_key_object",
    "pin",
]

# spec/federation.md §1.1 — the members and the limits of a key object
KEY_OBJECT_MEMBERS: Final = frozenset(
    {"server_name", "ts", "verify_keys", "old_verify_keys", "signatures"}
)
MAX_CURRENT_KEYS: Final = 4
MAX_OLD_KEYS: Final = 256
_CURRENT_MEMBERS: Final = frozenset({"key"})
_OLD_MEMBERS: Final = frozenset({"key", "expired_ts"})
_PREFIX: Final = ED25519 + ":"


def _is_timestamp(value: object) -> bool:
    """An integer in 0..2^53-1 (``bool`` is not an integer of the data model)."""
    return type(value) is int and 0 <= value <= MAX_SAFE_INTEGER


@dataclass(frozen=True, slots=True)
class OldKey:
    """A retired public key and the time (ms) the node stopped signing with it (§1.1)."""

    verify_key: nacl.signing.VerifyKey
    expired_ts: int

    def __post_init__(self) -> None:
        if not _is_timestamp(self.expired_ts):
            raise LocalProtocolError(ErrorCode.BAD_KEY, "expired_ts must be in 0..2^53-1")


@dataclass(frozen=True, slots=True)
class ServerKeys:
    """A checked key object (§1.1): what it says, who signed it, and the object itself.

    Key ids are bare (``k56475aa7``, not ``ed25519:k56475aa7``). ``signed_by`` holds the
    keys of either map whose signature verified; ``source`` is the object as received —
    signatures by other keys and entities included — to store and to relay (§3.1).
    """

    server_name: str
    ts: int
    verify_keys: Mapping[str, nacl.signing.VerifyKey]
    old_verify_keys: Mapping[str, tuple[nacl.signing.VerifyKey, int]]
    signed_by: frozenset[str]
    source: JsonObject = field(repr=False)

    def keys_for_event(self, origin_server_ts: int) -> dict[str, nacl.signing.VerifyKey]:
        """The keys that verify an event made at ``origin_server_ts`` (§1.3).

        Every current key, and every old key retired *after* the event was made: a key
        retired at ``expired_ts`` signs nothing from that instant on.
        """
        keys = dict(self.verify_keys)
        for key_id, (verify_key, expired_ts) in self.old_verify_keys.items():
            if expired_ts > origin_server_ts:
                keys[key_id] = verify_key
        return keys

    def link_key(self, key_id: str) -> nacl.signing.VerifyKey | None:
        """The current key ``key_id`` (bare), which may sign a link proof (§1.3, §2.2)."""
        return self.verify_keys.get(key_id)


def build_key_object(
    server_name: str,
    ts: int,
    current: Sequence[nacl.signing.SigningKey],
    old: Sequence[OldKey],
    *,
    co_signers: Sequence[nacl.signing.SigningKey] = (),
) -> JsonObject:
    """This node's key object (§1.1), signed by every current key and every co-signer.

    ``co_signers`` are the retired keys whose seeds the node kept: their signatures let a
    peer that pinned an older object follow the rotation (§1.2, §1.4). A co-signer need not
    be listed in ``old``. Raises ``LocalProtocolError`` for inputs §1.1 cannot express.
    """
    try:
        parse_server_name(server_name)
    except RemoteProtocolError as exc:
        raise LocalProtocolError(ErrorCode.BAD_IDENTIFIER, exc.message) from exc
    if not _is_timestamp(ts):
        raise LocalProtocolError(ErrorCode.BAD_KEY, "ts must be in 0..2^53-1")
    if not 1 <= len(current) <= MAX_CURRENT_KEYS or len(old) > MAX_OLD_KEYS:
        raise LocalProtocolError(
            ErrorCode.BAD_KEY,
            f"a key object has 1-{MAX_CURRENT_KEYS} current and 0-{MAX_OLD_KEYS} old keys",
        )
    verify_keys = {
        format_key_id(derive_key_id(key.verify_key)): {"key": encode_verify_key(key.verify_key)}
        for key in current
    }
    old_verify_keys = {
        format_key_id(derive_key_id(key.verify_key)): {
            "key": encode_verify_key(key.verify_key),
            "expired_ts": key.expired_ts,
        }
        for key in old
    }
    if len(verify_keys) != len(current) or len(old_verify_keys) != len(old):
        raise LocalProtocolError(ErrorCode.BAD_KEY, "a key is listed twice")
    if verify_keys.keys() & old_verify_keys.keys():
        raise LocalProtocolError(ErrorCode.BAD_KEY, "a key cannot be both current and old")
    obj: JsonObject = {
        "server_name": server_name,
        "ts": ts,
        "verify_keys": verify_keys,
        "old_verify_keys": old_verify_keys,
    }
    signers = {derive_key_id(key.verify_key): key for key in [*current, *co_signers]}
    for key_id, signing_key in signers.items():
        obj = sign_json(obj, server_name, key_id, signing_key)
    return obj


def _bad_key(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.BAD_KEY, message)


def _check_members(obj: Any) -> None:
    """§1.1 step 1: an object with exactly the five members."""
    if type(obj) is not dict or obj.keys() != KEY_OBJECT_MEMBERS:
        raise _bad_key(
            "a key object has exactly the members server_name, ts, verify_keys,"
            " old_verify_keys and signatures"
        )


def _key_map(
    value: Any, member: str, *, old: bool
) -> dict[str, tuple[nacl.signing.VerifyKey, int | None]]:
    """§1.1 step 3 for one map: bare key id → (public key, expired_ts or None)."""
    low, high = (0, MAX_OLD_KEYS) if old else (1, MAX_CURRENT_KEYS)
    if type(value) is not dict or not low <= len(value) <= high:
        raise _bad_key(f"{member} must be an object of {low}-{high} keys")
    if not all(type(name) is str for name in value):
        raise _bad_key(f"{member}: member names are strings")
    expected = _OLD_MEMBERS if old else _CURRENT_MEMBERS
    keys: dict[str, tuple[nacl.signing.VerifyKey, int | None]] = {}
    for name in sorted(value):
        entry = value[name]
        shown = repr(name[:80])
        if type(entry) is not dict or entry.keys() != expected:
            members = '{"key", "expired_ts"}' if old else '{"key"}'
            raise _bad_key(f"{member}[{shown}] must be {members}")
        if type(entry["key"]) is not str:
            raise _bad_key(f"{member}[{shown}]: the key must be a string")
        verify_key = decode_verify_key(entry["key"])  # bad_base64, or bad_key if not 32 bytes
        key_id = derive_key_id(verify_key)
        if name != _PREFIX + key_id:
            raise _bad_key(f"{member}[{shown}]: the key's id is {_PREFIX + key_id}")
        expired_ts = entry.get("expired_ts")
        if old and not _is_timestamp(expired_ts):
            raise _bad_key(f"{member}[{shown}]: expired_ts must be an integer in 0..2^53-1")
        keys[key_id] = (verify_key, expired_ts)
    return keys


def _check_signatures(
    obj: JsonObject,
    server_name: str,
    current: Sequence[str],
    known: Mapping[str, nacl.signing.VerifyKey],
) -> frozenset[str]:
    """§1.1 step 4: every current key signed; every signature by a listed key verifies."""
    signatures = obj["signatures"]
    by_server = signatures.get(server_name) if type(signatures) is dict else None
    if type(by_server) is not dict:
        raise RemoteProtocolError(
            ErrorCode.MISSING_SIGNATURE, f"the key object is not signed by {server_name!r}"
        )
    for key_id in sorted(current):
        if _PREFIX + key_id not in by_server:
            raise RemoteProtocolError(
                ErrorCode.MISSING_SIGNATURE, f"current key {key_id} did not sign the key object"
            )
    signed_bytes = canonical_signed_bytes(obj)
    signed_by = []
    for key_id in sorted(known):
        name = _PREFIX + key_id
        if name in by_server:
            signature = signature_of(obj, server_name, name)  # bad_signature if malformed
            verify_signature_bytes(signed_bytes, signature, known[key_id])
            signed_by.append(key_id)
    return frozenset(signed_by)


def parse_key_object(obj: Any) -> ServerKeys:
    """Check a received key object by spec/federation.md §1.1 and say what it holds.

    Raises ``RemoteProtocolError`` with the code of the first failing step — ``bad_key``,
    ``bad_identifier``, ``bad_base64``, ``missing_signature`` or ``bad_signature`` — and
    nothing else, whatever ``obj`` is.
    """
    _check_members(obj)
    # Step 2: the server name, then the time.
    server_name = obj["server_name"]
    parse_server_name(server_name)
    ts = obj["ts"]
    if not _is_timestamp(ts):
        raise _bad_key("ts must be an integer in 0..2^53-1")
    # Step 3: both maps; the ids are derived from the keys, so one key means one id.
    current = _key_map(obj["verify_keys"], "verify_keys", old=False)
    old = _key_map(obj["old_verify_keys"], "old_verify_keys", old=True)
    both = current.keys() & old.keys()
    if both:
        raise _bad_key(f"key {min(both)} is in both verify_keys and old_verify_keys")
    # Step 4: signatures under the server's own name; other entities' are ignored.
    known = {key_id: key for key_id, (key, _) in (current | old).items()}
    signed_by = _check_signatures(obj, server_name, list(current), known)
    return ServerKeys(
        server_name=server_name,
        ts=ts,
        verify_keys=MappingProxyType({key_id: key for key_id, (key, _) in current.items()}),
        old_verify_keys=MappingProxyType(
            {
                key_id: (key, expired)
                for key_id, (key, expired) in old.items()
                if expired is not None
            }
        ),
        signed_by=signed_by,
        source=copy.deepcopy(obj),
    )


def pin(pinned: ServerKeys | None, received: ServerKeys) -> ServerKeys:
    """The object to keep pinned after ``received`` arrives (spec/federation.md §1.2).

    Returns ``received`` (trust on first use, or a newer object co-signed by a current key
    of ``pinned``) or ``pinned`` itself (an object no newer than the pin changes nothing).
    Raises ``RemoteProtocolError``: ``unknown_key`` when a newer object is not signed by any
    current key of ``pinned``; ``bad_key`` when the two objects name different servers —
    the received object is not a key object *for* the server pinned (§2.2).
    """
    if pinned is None:
        return received
    if pinned.server_name != received.server_name:
        raise _bad_key(
            f"a key object of {received.server_name!r} cannot replace one of {pinned.server_name!r}"
        )
    if received.ts <= pinned.ts:
        return pinned
    for key_id, verify_key in sorted(pinned.verify_keys.items()):
        # Verified afresh with the pinned key itself: the new object may no longer list it
        # (§1.1 step 4 then ignored its signature), and a derived id is only 32 bits, so
        # an equal id in the new object is no proof of an equal key.
        try:
            verify_json(received.source, received.server_name, key_id, verify_key)
        except RemoteProtocolError:
            continue
        return received
    raise RemoteProtocolError(
        ErrorCode.UNKNOWN_KEY,
        f"the new key object of {received.server_name!r} is not signed by any pinned key"
        f" ({', '.join(sorted(pinned.verify_keys))})",
    )
