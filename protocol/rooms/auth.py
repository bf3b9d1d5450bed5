"""The authorization check: is an event allowed given the room state before it?
(spec/rooms.md §5). Pure: the state is read through a :class:`StateView`.

The steps below are numbered as in the spec, and they run in the spec's order: the first
failing step names the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from protocol.canonical_json import JsonObject
from protocol.events import EventType
from protocol.rooms.power import DEFAULT_THRESHOLDS, PowerLevels, StateView, membership
from protocol.rooms.reasons import RejectReason
from protocol.rooms.schemas import ROOM_VERSION, THRESHOLDS, Register, check_shape

__all__ = ["authorize", "may_redact_others", "rank", "select_auth_events"]

_R = RejectReason
_JOINED_OR_INVITED: Final = frozenset({"join", "invite"})


def authorize(event: JsonObject, state: StateView) -> RejectReason | None:
    """``None`` if ``event`` is allowed in ``state``, else the reason (rooms.md §5)."""
    content = event["content"]
    if event["type"] == EventType.CREATE:  # step 1
        shape = check_shape(event)
        if shape is not None:
            return shape
        if content["creator"] != event["sender"]:
            return _R.NOT_CREATOR
        if content["room_version"] != ROOM_VERSION:
            return _R.UNSUPPORTED_ROOM_VERSION
        return None
    shape = check_shape(event)  # steps 2-3, on the content of the redacted form
    if shape is not None:
        return shape
    # Steps 4-9 read only content members redaction keeps (rooms.md §5 "Redactions"); content
    # that is not an object redacts to {} (events.md §4.2 step 2), which is what they read.
    if type(content) is not dict:
        content = {}
    power = PowerLevels(state)
    sender = event["sender"]
    if event["type"] == EventType.MEMBER:  # step 4
        return _membership_change(event, state, power)
    if membership(state, sender) != "join":  # step 5
        return _R.NOT_JOINED
    own = power.level(sender)
    is_state = "state_key" in event
    if own < power.required(event["type"], is_state=is_state):  # step 6
        return _R.INSUFFICIENT_POWER
    if event["type"] == EventType.POWER_LEVELS:
        if event["state_key"] == "":  # step 7
            return _room_thresholds(content, power, own)
        return _user_level(event, power, own)  # step 9
    if (  # step 8
        event["type"] == EventType.JOIN_RULES and power.direct and content["join_rule"] != "invite"
    ):
        return _R.DIRECT_ROOM
    return None


def _membership_change(
    event: JsonObject, state: StateView, power: PowerLevels
) -> RejectReason | None:
    """rooms.md §5 step 4: the rule of each membership."""
    sender, target = event["sender"], event["state_key"]
    wanted = event["content"]["membership"]
    current = membership(state, target)
    if wanted == "join":
        if target != sender:
            return _R.WRONG_TARGET
        if current == "ban":
            return _R.BANNED
        if target == power.creator:
            return None
        rules = state.get((EventType.JOIN_RULES.value, ""))
        if rules is not None and rules["content"]["join_rule"] == "public":
            return None
        return None if current in _JOINED_OR_INVITED else _R.NOT_INVITED
    if wanted == "leave" and target == sender:
        return None if current in _JOINED_OR_INVITED else _R.NOT_MEMBER
    if membership(state, sender) != "join":
        return _R.NOT_JOINED
    own = power.level(sender)
    if wanted == "invite":
        if own < power.threshold("invite"):
            return _R.INSUFFICIENT_POWER
        if current == "ban":
            return _R.TARGET_BANNED
        if current == "join":
            return _R.ALREADY_JOINED
        if power.direct and _other_members(state, target) > 1:
            return _R.ROOM_FULL
        return None
    if wanted == "leave":  # a kick, or withdrawing an invitation
        if current == "ban":
            return _R.TARGET_BANNED
        if current not in _JOINED_OR_INVITED:
            return _R.NOT_MEMBER
        if own < power.threshold("kick"):
            return _R.INSUFFICIENT_POWER
        return None if power.level(target) < own else _R.TARGET_NOT_LOWER
    if wanted == "unban" and current != "ban":
        return _R.NOT_BANNED
    # ban, or unban of a banned user
    if own < power.threshold("ban"):
        return _R.INSUFFICIENT_POWER
    return None if power.level(target) < own else _R.TARGET_NOT_LOWER


def _other_members(state: StateView, target: str) -> int:
    """Users other than ``target`` who are joined or invited (direct rooms hold two)."""
    return sum(
        1
        for user in set(state.member_ids())
        if user != target and membership(state, user) in _JOINED_OR_INVITED
    )


def _room_thresholds(content: JsonObject, power: PowerLevels, own: int) -> RejectReason | None:
    """rooms.md §5 step 7: every changed threshold, old and new, at most the sender's level."""
    for name in THRESHOLDS:
        old = power.threshold(name)
        new = content.get(name, DEFAULT_THRESHOLDS[name])
        if old == new:
            continue
        if name == "users_default" and old >= own:
            return _R.TARGET_NOT_LOWER  # the users at the default level are not below
        if old > own or new > own:
            return _R.LEVEL_ABOVE_OWN
    old_events: JsonObject = power.thresholds.get("events", {})
    new_events: JsonObject = content.get("events", {})
    for event_type in old_events.keys() | new_events.keys():
        before, after = old_events.get(event_type), new_events.get(event_type)
        if before != after and (
            (before is not None and before > own) or (after is not None and after > own)
        ):
            return _R.LEVEL_ABOVE_OWN
    return None


def _user_level(event: JsonObject, power: PowerLevels, own: int) -> RejectReason | None:
    """rooms.md §5 step 9: a user's level is an action on that user."""
    target = event["state_key"]
    if target == power.creator:
        return _R.CREATOR_IMMUTABLE
    if target != event["sender"] and power.level(target) >= own:
        return _R.TARGET_NOT_LOWER
    if event["content"]["level"] > own:
        return _R.LEVEL_ABOVE_OWN
    return None


def may_redact_others(redaction: JsonObject, state: StateView) -> bool:
    """rooms.md §5 "Redactions": may this redaction's sender redact other users' events?"""
    power = PowerLevels(state)
    return power.level(redaction["sender"]) >= power.threshold("redact")


def rank(event: JsonObject, state: StateView) -> int:
    """The level of ``event``'s sender in ``state`` (state.md §5): ranks power events."""
    return PowerLevels(state).level(event["sender"])


def select_auth_events(
    event: JsonObject, event_id_at: Callable[[Register], str | None]
) -> list[str]:
    """rooms.md §6: the ids of the state events that justify ``event``, in the spec's order.

    ``event_id_at`` gives the id of the event holding a register in the state the event is
    created against (``None`` when empty).
    """
    if event["type"] == EventType.CREATE:
        return []
    sender = event["sender"]
    wanted: list[Register] = [
        (EventType.CREATE.value, ""),
        (EventType.POWER_LEVELS.value, ""),
        (EventType.POWER_LEVELS.value, sender),
        (EventType.MEMBER.value, sender),
    ]
    target = event.get("state_key")
    if target is not None and (
        event["type"] == EventType.MEMBER or (event["type"] == EventType.POWER_LEVELS and target)
    ):
        wanted += [(EventType.MEMBER.value, target), (EventType.POWER_LEVELS.value, target)]
    if event["type"] == EventType.MEMBER and event["content"].get("membership") == "join":
        wanted.append((EventType.JOIN_RULES.value, ""))
    selected: list[str] = []
    for register in wanted:
        event_id = event_id_at(register)
        if event_id is not None and event_id not in selected:
            selected.append(event_id)
    return selected
