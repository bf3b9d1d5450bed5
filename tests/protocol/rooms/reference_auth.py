"""The literal reading of spec/rooms.md §2-§5 behind :mod:`tests.protocol.rooms.reference`:
content schemas, power levels and the authorization check, written from the spec alone.

See :mod:`tests.protocol.rooms.reference` for the readings taken where the text leaves a
choice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import protocol
from protocol import MAX_SAFE_INTEGER, MAX_TEXT_BODY_CHARS, JsonObject, RemoteProtocolError

__all__ = [
    "DEFAULT_THRESHOLDS", "POWER_THRESHOLDS", "Register", "RoomView", "authorize",
    "content_ok", "kept", "redacted", "state_key_ok",
]  # fmt: skip

Register = tuple[str, str]
"""A state register: ``(type, state_key)`` (rooms.md §1)."""

Level = float
"""A power level: an integer, or ``math.inf`` for the creator (rooms.md §4)."""

MEMBERSHIPS = frozenset({"invite", "join", "leave", "ban", "unban"})
SCALAR_THRESHOLDS = ("users_default", "events_default", "state_default", "invite", "kick",
                     "ban", "redact")  # fmt: skip
POWER_THRESHOLDS = (*SCALAR_THRESHOLDS, "events")
DEFAULT_THRESHOLDS: Mapping[str, int] = {
    "users_default": 0, "events_default": 0, "state_default": 50, "invite": 0, "kick": 50,
    "ban": 50, "redact": 50,
}  # fmt: skip
"""rooms.md §4, the defaults of the thresholds; `events` defaults to ``{}``."""

PROTOCOL_TYPES = frozenset({"create", "member", "power_levels", "join_rules", "name", "topic",
                            "encryption", "redaction", "message", "encrypted"})  # fmt: skip
_EMPTY_KEY_TYPES = frozenset({"create", "join_rules", "name", "topic", "encryption"})
_TIMELINE_TYPES = frozenset({"redaction", "message", "encrypted"})


# --- value predicates (rooms.md §3: "lengths are in characters; levels are integers") -----


def _is_int(value: object, low: int, high: int) -> bool:
    # JSON true/false are not integers (events.md §2), though Python's bool is an int.
    return type(value) is int and low <= value <= high


def _is_level(value: object) -> bool:
    return _is_int(value, 0, MAX_SAFE_INTEGER)


def _is_string(value: object, low: int, high: int) -> bool:
    return isinstance(value, str) and low <= len(value) <= high


def _is_user_id(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        protocol.parse_user_id(value)
    except RemoteProtocolError:
        return False
    return True


def _is_event_id(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        protocol.validate_event_id(value)
    except RemoteProtocolError:
        return False
    return True


def _is_event_type(value: object) -> bool:
    """events.md §2.1 step 4: 1-255 characters, a protocol type or containing a dot."""
    return _is_string(value, 1, 255) and (value in PROTOCOL_TYPES or "." in str(value))


def _only(content: JsonObject, allowed: set[str]) -> bool:
    """ "Only these members" (rooms.md §3): no key outside ``allowed``."""
    return set(content) <= allowed


def _optional(content: JsonObject, key: str, check: bool) -> bool:
    """An optional member is fine when absent; when present, ``check`` says if it is valid."""
    return key not in content or check


# --- §2 state keys and §3 content schemas ---------------------------------------------------


def state_key_ok(event: JsonObject) -> bool:
    """rooms.md §2: does the event's state key (or its absence) fit its type's table row?"""
    event_type = event["type"]
    state_key = event.get("state_key")
    if event_type == "member":
        return _is_user_id(state_key)
    if event_type == "power_levels":
        return state_key == "" or _is_user_id(state_key)
    if event_type in _EMPTY_KEY_TYPES:
        return state_key == ""
    if event_type in _TIMELINE_TYPES:
        return "state_key" not in event
    if "." in event_type:
        return True  # extension type: "any, or none"
    raise ValueError(f"not an event type of events.md §4.1: {event_type!r}")


def _message_body_ok(body: object) -> bool:
    if not _is_string(body, 0, MAX_TEXT_BODY_CHARS):
        return False
    assert isinstance(body, str)
    return not any(ord(ch) < 0x20 and ch not in "\t\n\r" for ch in body)


def _thresholds_content_ok(c: JsonObject) -> bool:
    if not _only(c, set(POWER_THRESHOLDS)):
        return False
    if not all(_optional(c, k, _is_level(c.get(k))) for k in SCALAR_THRESHOLDS):
        return False
    if "events" not in c:
        return True
    events = c["events"]
    return (
        isinstance(events, dict)
        and len(events) <= 100
        and all(_is_event_type(t) and _is_level(v) for t, v in events.items())
    )


def content_ok(event: JsonObject) -> bool:
    """rooms.md §3: does ``content`` match the schema of the event's type?

    Call only after :func:`state_key_ok` (the `power_levels` schema depends on the key).
    """
    t = event["type"]
    c = event["content"]
    if not isinstance(c, dict):
        return False
    if t == "create":
        return (
            _only(c, {"creator", "room_version", "direct"})
            and _is_user_id(c.get("creator"))  # equality with sender: step 1, `not_creator`
            and isinstance(c.get("room_version"), str)
            and _optional(c, "direct", type(c.get("direct")) is bool)
        )
    if t == "member":
        return (
            _only(c, {"membership", "displayname", "reason"})
            and isinstance(c.get("membership"), str)
            and c["membership"] in MEMBERSHIPS
            and _optional(c, "displayname", _is_string(c.get("displayname"), 0, 255))
            and _optional(c, "reason", _is_string(c.get("reason"), 0, 1024))
        )
    if t == "power_levels" and event["state_key"] == "":
        return _thresholds_content_ok(c)
    if t == "power_levels":
        return _only(c, {"level"}) and _is_level(c.get("level"))
    if t == "join_rules":
        return _only(c, {"join_rule"}) and c.get("join_rule") in ("public", "invite")
    if t == "name":
        return _only(c, {"name"}) and _is_string(c.get("name"), 0, 255)
    if t == "topic":
        return _only(c, {"topic"}) and _is_string(c.get("topic"), 0, 4096)
    if t == "encryption":
        return (
            _only(c, {"algorithm", "rotation_period_ms", "rotation_period_msgs"})
            and _is_string(c.get("algorithm"), 1, 255)
            and _optional(c, "rotation_period_ms", _is_level(c.get("rotation_period_ms")))
            and _optional(c, "rotation_period_msgs", _is_level(c.get("rotation_period_msgs")))
        )
    if t == "redaction":
        return _is_event_id(c.get("redacts")) and _optional(
            c, "reason", _is_string(c.get("reason"), 0, 1024)
        )
    if t == "message":
        return _message_body_ok(c.get("body")) and _optional(
            c, "msgtype", _is_string(c.get("msgtype"), 1, 64)
        )
    if t == "encrypted":
        return _is_string(c.get("algorithm"), 1, 255) and isinstance(c.get("ciphertext"), str)
    return "." in t  # extension types: any object


# --- events.md §4.2 the redacted form, and rooms.md §3 what every node keeps -----------------

_KEPT_CONTENT: Mapping[str, set[str] | None] = {
    "create": None,  # all of it
    "member": {"membership"},
    "power_levels": {
        "ban",
        "events",
        "events_default",
        "invite",
        "kick",
        "level",
        "redact",
        "state_default",
        "users_default",
    },
    "join_rules": {"join_rule"},
    "redaction": {"redacts"},
    "encryption": {"algorithm"},
}
"""events.md §4.2's table; every other type keeps no content."""

_KEPT_TOP_LEVEL = {"type", "room_id", "sender", "state_key", "content", "hashes", "signatures",
                   "depth", "prev_events", "auth_events", "origin_server_ts"}  # fmt: skip


def redacted(event: JsonObject) -> JsonObject:
    """events.md §4.2: the redacted form of ``event``."""
    result = {k: v for k, v in event.items() if k in _KEPT_TOP_LEVEL}
    content = event.get("content")
    event_type = event.get("type")
    keys = _KEPT_CONTENT.get(event_type, set()) if isinstance(event_type, str) else set()
    if not isinstance(content, dict):
        result["content"] = {}
    elif keys is not None:
        result["content"] = {k: v for k, v in content.items() if k in keys}
    return result


def kept(event: JsonObject) -> JsonObject:
    """rooms.md §3: an event whose state key fits but whose content breaks its schema is
    kept (and judged) in its redacted form; any other event as it is."""
    if state_key_ok(event) and not content_ok(event):
        return redacted(event)
    return event


# --- §4 reading power levels from a state ----------------------------------------------------


@dataclass(frozen=True)
class RoomView:
    """rooms.md §4: creator, thresholds, levels and memberships as read from a state ``S``."""

    state: Mapping[Register, JsonObject]

    def _content(self, register: Register) -> JsonObject | None:
        event = self.state.get(register)
        return None if event is None else event["content"]

    @property
    def creator(self) -> str | None:
        """`S[(create, "")].content.creator`; None when that register is empty."""
        content = self._content(("create", ""))
        return None if content is None else content.get("creator")

    @property
    def direct(self) -> bool:
        """The room is direct if the create event's `direct` is `true`."""
        content = self._content(("create", ""))
        return content is not None and content.get("direct") is True

    @property
    def join_rule(self) -> str:
        """rooms.md §5 step 4: the join rule, `invite` if the register is empty."""
        content = self._content(("join_rules", ""))
        return "invite" if content is None else str(content["join_rule"])

    def threshold(self, name: str) -> int:
        """A scalar threshold: its value in `(power_levels, "")`, else its default."""
        content = self._content(("power_levels", "")) or {}
        return int(content.get(name, DEFAULT_THRESHOLDS[name]))

    def events_levels(self) -> dict[str, int]:
        """The `events` threshold: per-type levels, `{}` by default."""
        content = self._content(("power_levels", "")) or {}
        return dict(content.get("events", {}))

    def level(self, user: str) -> Level:
        """`level(u)`: infinity for the creator, else the user's register, else the default."""
        if user == self.creator:
            return math.inf
        content = self._content(("power_levels", user))
        if content is not None:
            return int(content["level"])
        return self.threshold("users_default")

    def required(self, event_type: str, is_state: bool) -> int:
        """`required(t, state?)`: `events[t]`, else `state_default` / `events_default`."""
        events = self.events_levels()
        if event_type in events:
            return events[event_type]
        return self.threshold("state_default" if is_state else "events_default")

    def membership(self, user: str) -> str:
        """`membership(u)`: an empty register and `unban` both count as `leave`."""
        content = self._content(("member", user))
        if content is None or content["membership"] == "unban":
            return "leave"
        return str(content["membership"])


# --- §5 the authorization check ------------------------------------------------------------


def authorize(event: JsonObject, state: Mapping[Register, JsonObject]) -> str | None:
    """rooms.md §5 `auth(E, S)`: None if ``event`` is allowed in ``state``, else the reason.

    Judged on the redacted form: "everything the authorization check reads survives
    redaction" (rooms.md §5, "Redactions").
    """
    event = redacted(event)
    sender = event["sender"]
    content = event["content"]
    # Step 1. Create. (Redaction keeps a create event's whole content.)
    if event["type"] == "create":
        if not state_key_ok(event):
            return "bad_state_key"
        if not content_ok(event):
            return "bad_content"
        if content["creator"] != sender:
            return "not_creator"
        if content["room_version"] != "1":
            return "unsupported_room_version"
        return None
    # Steps 2 and 3: the content of the redacted form; nothing to check when it is {}.
    if not state_key_ok(event):
        return "bad_state_key"
    if event["type"] in _KEPT_CONTENT and not content_ok(event):
        return "bad_content"
    view = RoomView(state)
    # Step 4. Membership events.
    if event["type"] == "member":
        return _authorize_member(event, view)
    # Step 5. Membership to act.
    if view.membership(sender) != "join":
        return "not_joined"
    # Step 6. Power to send.
    own = view.level(sender)
    if own < view.required(event["type"], "state_key" in event):
        return "insufficient_power"
    # Step 7. Room thresholds.
    is_thresholds = event["type"] == "power_levels" and event["state_key"] == ""
    if is_thresholds:
        problem = _thresholds_change_problem(content, view, own)
        if problem is not None:
            return problem
    # Step 8. Direct rooms stay private.
    if view.direct and event["type"] == "join_rules" and content["join_rule"] != "invite":
        return "direct_room"
    # Step 9. A user's level.
    if event["type"] == "power_levels" and event["state_key"] != "":
        target = event["state_key"]
        if target == view.creator:
            return "creator_immutable"
        if target != sender and not view.level(target) < own:
            return "target_not_lower"
        if content["level"] > own:
            return "level_above_own"
    # Step 10.
    return None


def _thresholds_change_problem(content: JsonObject, view: RoomView, own: Level) -> str | None:
    """rooms.md §5 step 7, thresholds in table order; ``users_default`` acts on its users."""
    for name in SCALAR_THRESHOLDS:
        new = content.get(name, DEFAULT_THRESHOLDS[name])
        old = view.threshold(name)
        if new == old:
            continue
        if name == "users_default" and not old < own:
            return "target_not_lower"
        if new > own or old > own:
            return "level_above_own"
    old_events = view.events_levels()
    new_events: Mapping[str, int] = content.get("events", {})
    for event_type in set(old_events) | set(new_events):
        before = old_events.get(event_type)
        after = new_events.get(event_type)
        # An absent entry is "no value": only existing values are compared (a reading).
        if before != after and any(v is not None and v > own for v in (before, after)):
            return "level_above_own"
    return None


def _authorize_member(event: JsonObject, view: RoomView) -> str | None:
    """rooms.md §5 step 4, one rule per `content.membership`, checks in the spec's order."""
    sender = event["sender"]
    target = event["state_key"]
    membership = event["content"]["membership"]
    if membership == "join":
        if target != sender:
            return "wrong_target"
        if view.membership(target) == "ban":
            return "banned"
        if target == view.creator or view.join_rule == "public":
            return None
        if view.membership(target) in ("invite", "join"):
            return None
        return "not_invited"
    if membership == "leave" and target == sender:
        return None if view.membership(target) in ("join", "invite") else "not_member"
    # Every remaining rule starts with the sender being joined.
    if view.membership(sender) != "join":
        return "not_joined"
    if membership == "invite":
        if view.level(sender) < view.threshold("invite"):
            return "insufficient_power"
        if view.membership(target) == "ban":
            return "target_banned"
        if view.membership(target) == "join":
            return "already_joined"
        if view.direct:
            members = [user for (kind, user) in view.state if kind == "member"]
            others = [
                user
                for user in members
                if user != target and view.membership(user) in ("invite", "join")
            ]
            if len(others) > 1:
                return "room_full"
        return None
    if membership == "leave":  # a kick, or withdrawing an invitation
        if view.membership(target) == "ban":
            return "target_banned"
        if view.membership(target) not in ("join", "invite"):
            return "not_member"
        if view.level(sender) < view.threshold("kick"):
            return "insufficient_power"
        return None if view.level(target) < view.level(sender) else "target_not_lower"
    if membership == "ban":
        if view.level(sender) < view.threshold("ban"):
            return "insufficient_power"
        return None if view.level(target) < view.level(sender) else "target_not_lower"
    # unban
    if view.membership(target) != "ban":
        return "not_banned"
    if view.level(sender) < view.threshold("ban"):
        return "insufficient_power"
    return None if view.level(target) < view.level(sender) else "target_not_lower"
