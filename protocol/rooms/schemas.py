"""Event types of room version 1: their state keys and content schemas (spec/rooms.md §2-3).

Everything here looks at one event alone. ``check_shape`` says whether an event's state key
and the content of its redacted form fit its type — the part of the event its signature
covers, so that a verdict never depends on content a relay may have dropped; ``content_fits``
says whether the whole content fits, and an event whose content does not is kept in its
redacted form (rooms.md §3). ``register_of`` and ``is_power_event`` classify an event for the
resolution (spec/state.md §4-5).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from protocol.canonical_json import MAX_SAFE_INTEGER, JsonObject
from protocol.errors import RemoteProtocolError
from protocol.events import KEPT_CONTENT_KEYS, MAX_TEXT_BODY_CHARS, MAX_TYPE_LENGTH, EventType
from protocol.ids import parse_user_id, validate_event_id
from protocol.rooms.reasons import RejectReason

__all__ = [
    "MEMBERSHIPS",
    "ROOM_VERSION",
    "STATE_TYPES",
    "THRESHOLDS",
    "TIMELINE_TYPES",
    "Register",
    "check_shape",
    "content_fits",
    "is_power_event",
    "is_user_id",
    "register_of",
]

ROOM_VERSION: Final = "1"
Register = tuple[str, str]
"""``(type, state_key)``: the piece of room state a state event writes (rooms.md §1)."""

MEMBERSHIPS: Final = frozenset({"invite", "join", "leave", "ban", "unban"})
THRESHOLDS: Final = (
    "users_default",
    "events_default",
    "state_default",
    "invite",
    "kick",
    "ban",
    "redact",
)
STATE_TYPES: Final = frozenset(
    {
        EventType.CREATE,
        EventType.MEMBER,
        EventType.POWER_LEVELS,
        EventType.JOIN_RULES,
        EventType.NAME,
        EventType.TOPIC,
        EventType.ENCRYPTION,
    }
)
TIMELINE_TYPES: Final = frozenset({EventType.REDACTION, EventType.MESSAGE, EventType.ENCRYPTED})
_USER_KEYED: Final = frozenset({EventType.MEMBER})
_PROTOCOL_TYPES: Final = frozenset(EventType)
_POWER_TYPES: Final = frozenset({EventType.POWER_LEVELS, EventType.JOIN_RULES})
_REVOKING_MEMBERSHIPS: Final = frozenset({"ban", "unban"})
_MAX_EVENTS_ENTRIES = 100
_FORBIDDEN_BODY_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def is_user_id(value: Any) -> bool:
    """True if ``value`` is a valid user id (ids.md §3)."""
    try:
        parse_user_id(value)
    except RemoteProtocolError:
        return False
    return True


def _is_level(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_SAFE_INTEGER


def _is_text(value: Any, maximum: int, minimum: int = 0) -> bool:
    return type(value) is str and minimum <= len(value) <= maximum


def _only(content: JsonObject, allowed: frozenset[str], required: frozenset[str]) -> bool:
    keys = content.keys()
    return required <= keys <= allowed


def _create(content: JsonObject, _: str) -> bool:
    return (
        _only(
            content,
            frozenset({"creator", "room_version", "direct"}),
            frozenset({"creator", "room_version"}),
        )
        and is_user_id(content["creator"])
        and type(content["room_version"]) is str
        and type(content.get("direct", False)) is bool
    )


def _member(content: JsonObject, _: str) -> bool:
    return (
        _only(
            content, frozenset({"membership", "displayname", "reason"}), frozenset({"membership"})
        )
        and type(content["membership"]) is str
        and content["membership"] in MEMBERSHIPS
        and _is_text(content.get("displayname", ""), 255)
        and _is_text(content.get("reason", ""), 1024)
    )


def _power_levels(content: JsonObject, state_key: str) -> bool:
    if state_key != "":
        return content.keys() == {"level"} and _is_level(content["level"])
    if not content.keys() <= {*THRESHOLDS, "events"}:
        return False
    if not all(_is_level(content[name]) for name in THRESHOLDS if name in content):
        return False
    events = content.get("events", {})
    return (
        type(events) is dict
        and len(events) <= _MAX_EVENTS_ENTRIES
        and all(_is_event_type(kind) and _is_level(level) for kind, level in events.items())
    )


def _is_event_type(value: str) -> bool:
    """events.md §2.1 step 4: a protocol type, or 1-255 characters with a dot."""
    return 0 < len(value) <= MAX_TYPE_LENGTH and (value in _PROTOCOL_TYPES or "." in value)


def _join_rules(content: JsonObject, _: str) -> bool:
    return content.keys() == {"join_rule"} and content["join_rule"] in ("public", "invite")


def _name(content: JsonObject, _: str) -> bool:
    return content.keys() == {"name"} and _is_text(content["name"], 255)


def _topic(content: JsonObject, _: str) -> bool:
    return content.keys() == {"topic"} and _is_text(content["topic"], 4096)


def _encryption(content: JsonObject, _: str) -> bool:
    allowed = frozenset({"algorithm", "rotation_period_ms", "rotation_period_msgs"})
    return (
        _only(content, allowed, frozenset({"algorithm"}))
        and _is_text(content["algorithm"], 255, 1)
        and all(
            _is_level(content[k])
            for k in ("rotation_period_ms", "rotation_period_msgs")
            if k in content
        )
    )


def _redaction(content: JsonObject, _: str) -> bool:
    if "redacts" not in content or not _is_text(content.get("reason", ""), 1024):
        return False
    try:
        validate_event_id(content["redacts"])
    except RemoteProtocolError:
        return False
    return True


def _message(content: JsonObject, _: str) -> bool:
    body = content.get("body")
    return (
        type(body) is str
        and len(body) <= MAX_TEXT_BODY_CHARS
        and _FORBIDDEN_BODY_CHARS.search(body) is None
        and ("msgtype" not in content or _is_text(content["msgtype"], 64, 1))
    )


def _encrypted(content: JsonObject, _: str) -> bool:
    return _is_text(content.get("algorithm"), 255, 1) and type(content.get("ciphertext")) is str


_CONTENT_CHECKS: Mapping[str, Callable[[JsonObject, str], bool]] = {
    EventType.CREATE: _create,
    EventType.MEMBER: _member,
    EventType.POWER_LEVELS: _power_levels,
    EventType.JOIN_RULES: _join_rules,
    EventType.NAME: _name,
    EventType.TOPIC: _topic,
    EventType.ENCRYPTION: _encryption,
    EventType.REDACTION: _redaction,
    EventType.MESSAGE: _message,
    EventType.ENCRYPTED: _encrypted,
}


# rooms.md §5 step 3 reads only what redaction keeps (events.md §4.2). A type whose redacted
# content is always ``{}`` (name, topic, message, encrypted, extension types) has nothing to
# check; for the others, redaction keeps every required member, so each check above accepts
# the redacted form of valid content and applies to it as written.
_REDACTED_CHECKS: Mapping[str, Callable[[JsonObject, str], bool]] = {
    event_type: check
    for event_type, check in _CONTENT_CHECKS.items()
    if KEPT_CONTENT_KEYS.get(event_type, frozenset()) != frozenset()
}


def _redacted_content(event_type: str, content: Any) -> JsonObject:
    """``content`` as the redacted form of its event has it (events.md §4.2 steps 2-3)."""
    if type(content) is not dict:
        return {}
    kept = KEPT_CONTENT_KEYS.get(event_type, frozenset())
    return content if kept is None else {k: v for k, v in content.items() if k in kept}


def _state_key_fits(event_type: str, state_key: str | None) -> bool:
    if event_type in TIMELINE_TYPES:
        return state_key is None
    if event_type not in STATE_TYPES:
        return True  # extension types: state or timeline, any key
    if state_key is None:
        return False
    if event_type in _USER_KEYED:
        return is_user_id(state_key)
    if event_type == EventType.POWER_LEVELS:
        return state_key == "" or is_user_id(state_key)
    return state_key == ""


def check_shape(event: JsonObject) -> RejectReason | None:
    """rooms.md §5 steps 2-3: ``bad_state_key``, or ``bad_content`` if the content of the
    event's redacted form breaks its schema, else ``None``.

    An event and its redacted form always get the same answer.
    """
    event_type = event["type"]
    state_key = event.get("state_key")
    if not _state_key_fits(event_type, state_key):
        return RejectReason.BAD_STATE_KEY
    check = _REDACTED_CHECKS.get(event_type)
    if check is None:
        return None  # the redacted content is {}: nothing the signature covers to check
    if not check(_redacted_content(event_type, event["content"]), state_key or ""):
        return RejectReason.BAD_CONTENT
    return None


def content_fits(event: JsonObject) -> bool:
    """rooms.md §3: does the event's whole content match its schema?

    ``False`` means every node keeps the event in its redacted form, and a node refuses to
    create it (``bad_content``). An event whose state key breaks rooms.md §2 is rejected
    for that whatever its content, and is kept as it is (``True``).
    """
    event_type = event["type"]
    state_key = event.get("state_key")
    if not _state_key_fits(event_type, state_key):
        return True
    content = event["content"]
    if type(content) is not dict:
        return False
    check = _CONTENT_CHECKS.get(event_type)
    return check is None or check(content, state_key or "")


def register_of(event: JsonObject) -> Register | None:
    """The register a state event writes, or ``None`` for a timeline event."""
    state_key = event.get("state_key")
    return None if state_key is None else (event["type"], state_key)


def is_power_event(event: JsonObject, *, direct: bool) -> bool:
    """state.md §5: bans, unbans, kicks, every ``power_levels`` and ``join_rules`` event,
    and in a ``direct`` room invitations (each fills one of the room's two places)."""
    event_type = event["type"]
    if event_type in _POWER_TYPES:
        return True
    if event_type != EventType.MEMBER:
        return False
    membership = event["content"].get("membership")
    if membership in _REVOKING_MEMBERSHIPS or (direct and membership == "invite"):
        return True
    return membership == "leave" and event.get("state_key") != event.get("sender")
