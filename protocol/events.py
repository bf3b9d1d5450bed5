"""Events: their fields, content hash, redaction, reference hash (event id) and signatures.

An event is a JSON object (spec/events.md §2). Its sender's node hashes the content, redacts
the event and signs the redacted form (§6), so the signature survives a later redaction; its
id is the hash of that same signed form (§5), so ids are content-addressed and unforgeable.
A receiver checks the signature of the *sender's* node — no node may speak for users it
does not host — and keeps only the redacted form when the content hash is wrong (§7).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import nacl.signing

from protocol.b64 import decode_base64, encode_base64
from protocol.canonical_json import (
    MAX_SAFE_INTEGER,
    JsonObject,
    _check_encodable,
    encode_trusted_json,
)
from protocol.errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
from protocol.ids import (
    event_id_from_hash,
    parse_server_name,
    parse_user_id,
    validate_event_id,
    validate_room_id,
)
from protocol.signing import (
    ED25519,
    _sign_bytes,
    _unsigned_form,
    _with_signature,
    format_key_id,
    signature_of,
    verify_signature_bytes,
)

__all__ = [
    "KEPT_CONTENT_KEYS",
    "KEPT_TOP_LEVEL_KEYS",
    "MAX_AUTH_EVENTS",
    "MAX_EVENT_BYTES",
    "MAX_PREV_EVENTS",
    "MAX_STATE_KEY_LENGTH",
    "MAX_TEXT_BODY_CHARS",
    "MAX_TYPE_LENGTH",
    "EventType",
    "VerifiedEvent",
    "build_event",
    "compute_content_hash",
    "compute_event_id",
    "countersign_event",
    "event_size",
    "redact_event",
    "sign_event",
    "sign_event_with_id",
    "validate_event",
    "verify_countersignature",
    "verify_event",
]

# spec/events.md §3 — limits
MAX_EVENT_BYTES = 512 * 1024
MAX_TEXT_BODY_CHARS = 100_000
MAX_PREV_EVENTS = 20
MAX_AUTH_EVENTS = 10
MAX_TYPE_LENGTH = 255
MAX_STATE_KEY_LENGTH = 255


class EventType(StrEnum):
    """Event types defined by the protocol (spec/events.md §4). Extension types contain a dot."""

    CREATE = "create"
    MEMBER = "member"
    POWER_LEVELS = "power_levels"
    JOIN_RULES = "join_rules"
    NAME = "name"
    TOPIC = "topic"
    ENCRYPTION = "encryption"
    REDACTION = "redaction"
    MESSAGE = "message"
    ENCRYPTED = "encrypted"


_PROTOCOL_TYPES = frozenset(EventType)

# spec/events.md §4 — what redaction keeps.
KEPT_TOP_LEVEL_KEYS = frozenset(
    {
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "auth_events",
        "origin_server_ts",
    }
)
_REQUIRED_KEYS = frozenset(KEPT_TOP_LEVEL_KEYS - {"room_id", "state_key"})
_ALLOWED_KEYS = KEPT_TOP_LEVEL_KEYS | {"unsigned"}
_ALL_CONTENT = None
KEPT_CONTENT_KEYS: Mapping[str, frozenset[str] | None] = {
    EventType.CREATE: _ALL_CONTENT,
    EventType.MEMBER: frozenset({"membership"}),
    EventType.POWER_LEVELS: frozenset(
        {
            "ban",
            "events",
            "events_default",
            "invite",
            "kick",
            "level",
            "redact",
            "state_default",
            "users_default",
        }
    ),
    EventType.JOIN_RULES: frozenset({"join_rule"}),
    EventType.REDACTION: frozenset({"redacts"}),
    EventType.ENCRYPTION: frozenset({"algorithm"}),
}
"""Content keys redaction keeps, by event type; ``None`` keeps all; other types keep none."""


@dataclass(frozen=True, slots=True)
class VerifiedEvent:
    """What :func:`verify_event` vouches for."""

    event_id: str
    event: JsonObject
    """The event as received, or its redacted form when the content hash did not match."""
    redacted: bool
    """True when the content hash was wrong and only the redacted form is kept (§7 step 6)."""
    origin: str
    """The sender's server, whose signature was checked."""


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.BAD_EVENT, message)


def _check_int(event: JsonObject, key: str) -> None:
    value = event[key]
    if type(value) is not int or not 0 <= value <= MAX_SAFE_INTEGER:
        raise _bad(f"'{key}' must be an integer in 0..2**53-1")


def _check_id_list(event: JsonObject, key: str, limit: int) -> None:
    ids = event[key]
    if type(ids) is not list:
        raise _bad(f"'{key}' must be a list of event ids")
    if len(ids) > limit:
        raise RemoteProtocolError(ErrorCode.TOO_LARGE, f"'{key}' lists more than {limit} events")
    for event_id in ids:
        validate_event_id(event_id)
    if len(set(ids)) != len(ids):
        raise _bad(f"'{key}' lists an event twice")


def _check_hashes(hashes: object) -> None:
    if type(hashes) is not dict or set(hashes) != {"sha256"} or type(hashes["sha256"]) is not str:
        raise _bad("'hashes' must be exactly {\"sha256\": <unpadded base64>}")
    if len(decode_base64(hashes["sha256"])) != 32:
        raise _bad("'hashes.sha256' must encode 32 bytes")


def _check_signatures(signatures: object) -> None:
    if type(signatures) is not dict:
        raise _bad("'signatures' must be an object")
    for entity, by_key in signatures.items():
        if type(by_key) is not dict or not all(type(s) is str for s in by_key.values()):
            raise _bad(f"'signatures.{entity[:80]}' must map key ids to strings")


def validate_event(event: JsonObject, *, signed: bool = True, decoded: bool = False) -> JsonObject:
    """Check an event's fields and limits (spec/events.md §2-3); return it unchanged.

    With ``signed=False`` (an event being built) ``hashes`` and ``signatures`` may be
    absent. ``decoded=True`` says the event is (part of) a value :func:`decode_json`
    returned, so it is known to be in the data model and is not walked again. Raises
    ``RemoteProtocolError`` (``bad_event``, ``bad_identifier``, ``too_large``,
    ``bad_base64``) for the first problem found.
    """
    if type(event) is not dict:
        raise _bad("an event is a JSON object")
    keys = event.keys()
    unknown = keys - _ALLOWED_KEYS
    if unknown:
        raise _bad(f"unknown top-level key {sorted(unknown)[0][:80]!r}")
    missing = _REQUIRED_KEYS - keys if signed else _REQUIRED_KEYS - keys - {"hashes", "signatures"}
    if missing:
        raise _bad(f"missing key {sorted(missing)[0]!r}")
    event_type = event["type"]
    if type(event_type) is not str or not 0 < len(event_type) <= MAX_TYPE_LENGTH:
        raise _bad(f"'type' must be a string of 1-{MAX_TYPE_LENGTH} characters")
    if "." not in event_type and event_type not in _PROTOCOL_TYPES:
        raise _bad(f"unknown event type {event_type[:80]!r}: extension types contain a dot")
    parse_user_id(event["sender"])
    if event_type == EventType.CREATE:
        if "room_id" in event:
            raise _bad("a create event has no 'room_id': the room id is derived from it")
    elif "room_id" not in event:
        raise _bad("missing key 'room_id'")
    else:
        validate_room_id(event["room_id"])
    if "state_key" in event:
        state_key = event["state_key"]
        if type(state_key) is not str or len(state_key) > MAX_STATE_KEY_LENGTH:
            raise _bad(f"'state_key' must be a string of at most {MAX_STATE_KEY_LENGTH} characters")
    if type(event["content"]) is not dict:
        raise _bad("'content' must be an object")
    if "unsigned" in event and type(event["unsigned"]) is not dict:
        raise _bad("'unsigned' must be an object")
    _check_int(event, "depth")
    _check_int(event, "origin_server_ts")
    _check_id_list(event, "prev_events", MAX_PREV_EVENTS)
    _check_id_list(event, "auth_events", MAX_AUTH_EVENTS)
    if "hashes" in event:
        _check_hashes(event["hashes"])
    if "signatures" in event:
        _check_signatures(event["signatures"])
    if not decoded:
        try:
            _check_encodable(event, 0)
        except ProtocolError as exc:
            raise _bad(exc.message) from exc
    return event


def event_size(event: JsonObject) -> int:
    """Bytes of the canonical JSON of ``event`` without ``unsigned`` (the size §3 limits)."""
    return len(encode_trusted_json({k: v for k, v in event.items() if k != "unsigned"}))


def _size_from_hash_form(hash_form: bytes, event: JsonObject) -> int:
    """``event_size(event)`` without encoding the event again (a hot path).

    The content-hash form is the same object minus ``hashes`` and ``signatures``; in
    canonical JSON each of them adds ``,"<key>":`` and its own encoding, nothing else.
    """
    size = len(hash_form)
    for key in ("hashes", "signatures"):
        if key in event:
            size += len(key) + 4 + len(encode_trusted_json(event[key]))
    return size


def _check_size(size: int) -> None:
    if size > MAX_EVENT_BYTES:
        raise RemoteProtocolError(
            ErrorCode.TOO_LARGE, f"event is {size} bytes; the limit is {MAX_EVENT_BYTES}"
        )


def _content_hash_bytes(event: JsonObject) -> bytes:
    """Canonical JSON of the event without ``unsigned``, ``signatures``, ``hashes`` (§6)."""
    return encode_trusted_json(
        {k: v for k, v in event.items() if k not in ("unsigned", "signatures", "hashes")}
    )


def compute_content_hash(event: JsonObject) -> str:
    """Unpadded base64 sha256 of the event without ``unsigned``/``signatures``/``hashes``."""
    _check_encodable(event, 0)
    return encode_base64(hashlib.sha256(_content_hash_bytes(event)).digest())


def redact_event(event: JsonObject) -> JsonObject:
    """The redacted form (spec/events.md §4): kept top-level keys, kept content keys by type."""
    redacted = {k: v for k, v in event.items() if k in KEPT_TOP_LEVEL_KEYS}
    content = event.get("content")
    event_type = event.get("type")
    kept = (
        KEPT_CONTENT_KEYS.get(event_type, frozenset()) if type(event_type) is str else frozenset()
    )
    if type(content) is not dict:
        redacted["content"] = {}
    elif kept is not _ALL_CONTENT:
        redacted["content"] = {k: v for k, v in content.items() if k in kept}
    return redacted


def _reference_bytes(event: JsonObject) -> bytes:
    """The signed bytes, which are also what the event id hashes (§5, §6)."""
    return encode_trusted_json(_unsigned_form(redact_event(event)))


def compute_event_id(event: JsonObject) -> str:
    """``$`` + URL-safe unpadded base64 of sha256 over the redacted form without signatures."""
    _check_encodable(event, 0)
    return event_id_from_hash(hashlib.sha256(_reference_bytes(event)).digest())


def build_event(
    *,
    event_type: str,
    sender: str,
    content: JsonObject,
    prev_events: list[str],
    auth_events: list[str],
    depth: int,
    origin_server_ts: int,
    room_id: str | None = None,
    state_key: str | None = None,
) -> JsonObject:
    """Assemble an unsigned event with the fields of spec/events.md §2 and check them.

    ``room_id`` is omitted only for ``create`` events; ``state_key`` marks a state event.
    Raises ``LocalProtocolError`` if the result would not be a valid event.
    """
    if isinstance(event_type, str):
        event_type = str(event_type)  # an EventType member becomes its plain string value
    event: JsonObject = {
        "type": event_type,
        "sender": sender,
        "content": content,
        "prev_events": list(prev_events),
        "auth_events": list(auth_events),
        "depth": depth,
        "origin_server_ts": origin_server_ts,
    }
    if room_id is not None:
        event["room_id"] = room_id
    if state_key is not None:
        event["state_key"] = state_key
    try:
        validate_event(event, signed=False)
    except RemoteProtocolError as exc:
        raise LocalProtocolError(exc.code, exc.message) from exc
    return event


def sign_event(
    event: JsonObject, server_name: str, key_id: str, signing_key: nacl.signing.SigningKey
) -> JsonObject:
    """Hash, redact and sign ``event`` as ``server_name`` (spec/events.md §6); return a copy.

    Sets ``hashes.sha256``, then adds the signature over the redacted form to
    ``signatures[server_name]``, keeping signatures of other servers. Raises
    ``LocalProtocolError`` if the event is invalid or larger than ``MAX_EVENT_BYTES``.
    """
    return sign_event_with_id(event, server_name, key_id, signing_key)[0]


def sign_event_with_id(
    event: JsonObject, server_name: str, key_id: str, signing_key: nacl.signing.SigningKey
) -> tuple[JsonObject, str]:
    """:func:`sign_event`, and the signed event's id: the hash of the bytes just signed
    (spec/events.md §5-§6), so a node creating an event hashes them once."""
    name = format_key_id(key_id)
    try:
        parse_server_name(server_name)
        validate_event(event, signed=False)
        hash_form = _content_hash_bytes(event)
        hashed = {**event, "hashes": {"sha256": encode_base64(hashlib.sha256(hash_form).digest())}}
        reference = _reference_bytes(hashed)
        signed = _with_signature(hashed, server_name, name, _sign_bytes(reference, signing_key))
        _check_size(_size_from_hash_form(hash_form, signed))
    except RemoteProtocolError as exc:
        raise LocalProtocolError(exc.code, exc.message) from exc
    return signed, event_id_from_hash(hashlib.sha256(reference).digest())


def _check_server_signatures(
    event: JsonObject,
    server_name: str,
    signed_by: Mapping[str, object],
    known: Mapping[str, nacl.signing.VerifyKey],
    reference: bytes,
) -> bool:
    """Verify every signature ``server_name`` made on ``event`` with a ``known`` key (by
    bare id); ``bad_signature`` if one fails, False if it used none of them (§7)."""
    prefix = ED25519 + ":"
    names = [n for n in signed_by if n.startswith(prefix) and n[len(prefix) :] in known]
    for name in names:
        signature = signature_of(event, server_name, name)
        verify_signature_bytes(reference, signature, known[name[len(prefix) :]])
    return bool(names)


def verify_event(
    event: JsonObject,
    verify_keys: Mapping[str, Mapping[str, nacl.signing.VerifyKey]],
    *,
    decoded: bool = False,
) -> VerifiedEvent:
    """Check a received event (spec/events.md §7) and say what it is.

    ``verify_keys`` maps a server name to its known keys by bare key id. The sender's
    server must have signed the event with a known key; every signature it made with a
    known key must verify. A wrong content hash is not an error, nor is an event over the
    size limit whose redacted form is within it (the signature covers only that form): the
    result then holds the redacted event and ``redacted=True``. Raises
    ``RemoteProtocolError`` otherwise. ``decoded`` as for :func:`validate_event`: an event
    of a frame skips the data-model walk.
    """
    validate_event(event, decoded=decoded)
    hash_form = _content_hash_bytes(event)
    oversized = _size_from_hash_form(hash_form, event) > MAX_EVENT_BYTES
    if oversized:  # §7 step 2: judge the form every node can hold
        event = redact_event(event)
        _check_size(event_size(event))
    origin = parse_user_id(event["sender"]).server_name
    by_origin = event["signatures"].get(origin)
    if not by_origin:
        raise RemoteProtocolError(
            ErrorCode.MISSING_SIGNATURE, f"the sender's server {origin!r} did not sign the event"
        )
    reference = _reference_bytes(event)
    if not _check_server_signatures(
        event, origin, by_origin, verify_keys.get(origin, {}), reference
    ):
        raise RemoteProtocolError(
            ErrorCode.UNKNOWN_KEY,
            f"{origin!r} signed with keys {sorted(by_origin)[:4]} none of which is known",
        )
    event_id = event_id_from_hash(hashlib.sha256(reference).digest())
    if oversized:
        return VerifiedEvent(event_id, event, redacted=True, origin=origin)
    expected = encode_base64(hashlib.sha256(hash_form).digest())
    if event["hashes"]["sha256"] != expected:
        return VerifiedEvent(event_id, redact_event(event), redacted=True, origin=origin)
    return VerifiedEvent(event_id, event, redacted=False, origin=origin)


def countersign_event(
    event: JsonObject, server_name: str, key_id: str, signing_key: nacl.signing.SigningKey
) -> JsonObject:
    """A copy of ``event`` that ``server_name`` also signed (spec/federation.md §7).

    The signature covers the same bytes as the sender's node's (§6), so the event id does
    not change. The event must already be valid; this only adds a signature.
    """
    name = format_key_id(key_id)
    signature = _sign_bytes(_reference_bytes(event), signing_key)
    return _with_signature(event, server_name, name, signature)


def verify_countersignature(
    event: JsonObject, server_name: str, verify_keys: Mapping[str, nacl.signing.VerifyKey]
) -> None:
    """Check that ``server_name`` signed ``event`` with one of ``verify_keys`` (bare ids).

    Raises ``missing_signature`` when it did not sign with any of them, ``bad_signature``
    when such a signature does not verify.
    """
    signatures = event.get("signatures")
    by_server = signatures.get(server_name) if type(signatures) is dict else None
    signed_by = by_server if type(by_server) is dict else {}
    if not _check_server_signatures(
        event, server_name, signed_by, verify_keys, _reference_bytes(event)
    ):
        raise RemoteProtocolError(
            ErrorCode.MISSING_SIGNATURE, f"{server_name[:80]!r} did not sign the event"
        )
