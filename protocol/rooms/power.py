"""Reading power levels and memberships from a room state (spec/rooms.md §4).

A *state view* is anything that maps a register to the event holding it; the auth check, the
resolution and the node all read the room through one, so this module is the single place
that knows how levels, thresholds and memberships are derived from state events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final, Protocol

from protocol.canonical_json import MAX_SAFE_INTEGER, JsonObject
from protocol.events import EventType
from protocol.rooms.schemas import Register

__all__ = [
    "CREATOR_LEVEL",
    "DEFAULT_THRESHOLDS",
    "MappingState",
    "PowerLevels",
    "StateView",
    "membership",
]

CREATOR_LEVEL: Final = MAX_SAFE_INTEGER + 1
"""The creator's level: above every level an event can set (rooms.md §4: "infinity")."""

DEFAULT_THRESHOLDS: Final[Mapping[str, int]] = {
    "users_default": 0,
    "events_default": 0,
    "state_default": 50,
    "invite": 0,
    "kick": 50,
    "ban": 50,
    "redact": 50,
}

_CREATE: Final = (EventType.CREATE.value, "")
_ROOM_POWER: Final = (EventType.POWER_LEVELS.value, "")
_EMPTY: Final[JsonObject] = {}


class StateView(Protocol):
    """Read access to a room state: the event holding a register, and who has a membership."""

    def get(self, register: Register) -> JsonObject | None:
        """The event that holds ``register``, or ``None`` if it is empty."""

    def member_ids(self) -> Iterable[str]:
        """Every user with a ``member`` register (a superset is fine: each is looked up)."""


class MappingState:
    """A :class:`StateView` over a plain mapping from registers to events."""

    __slots__ = ("_state",)

    def __init__(self, state: Mapping[Register, JsonObject]) -> None:
        self._state = state

    def get(self, register: Register) -> JsonObject | None:
        """The event that holds ``register``."""
        return self._state.get(register)

    def member_ids(self) -> Iterable[str]:
        """Users with a member register."""
        return [key for kind, key in self._state if kind == EventType.MEMBER]


def membership(state: StateView, user: str) -> str:
    """``user``'s membership: ``leave`` when empty or after an ``unban`` (rooms.md §4)."""
    event = state.get((EventType.MEMBER.value, user))
    if event is None:
        return "leave"
    value: str = event["content"]["membership"]
    return "leave" if value == "unban" else value


class PowerLevels:
    """The creator, thresholds and per-user levels of one state, read on demand."""

    __slots__ = ("_state", "creator", "direct", "thresholds")

    def __init__(self, state: StateView) -> None:
        create = state.get(_CREATE)
        if create is None:
            raise LookupError("a room state always holds its create event")
        self._state = state
        self.creator: str = create["content"]["creator"]
        self.direct: bool = create["content"].get("direct", False) is True
        room_power = state.get(_ROOM_POWER)
        self.thresholds: JsonObject = room_power["content"] if room_power else _EMPTY

    def threshold(self, name: str) -> int:
        """A threshold of rooms.md §4, or its default."""
        value: int = self.thresholds.get(name, DEFAULT_THRESHOLDS[name])
        return value

    def level(self, user: str) -> int:
        """``user``'s level: the creator's is above all, then their own, then the default."""
        if user == self.creator:
            return CREATOR_LEVEL
        own = self._state.get((EventType.POWER_LEVELS.value, user))
        if own is not None:
            level: int = own["content"]["level"]
            return level
        return self.threshold("users_default")

    def required(self, event_type: str, *, is_state: bool) -> int:
        """The level needed to send an event of ``event_type``."""
        events = self.thresholds.get("events")
        if events and event_type in events:
            level: int = events[event_type]
            return level
        return self.threshold("state_default" if is_state else "events_default")
