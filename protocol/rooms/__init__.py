"""Rooms: event contents, authorization, causal order and state resolution (pure code).

spec/rooms.md and spec/state.md are the contract; :class:`Room` is the incremental engine a
node keeps per room, ``authorize`` the check every event passes against its causal state.
"""

from protocol.rooms.auth import authorize, rank, select_auth_events
from protocol.rooms.power import CREATOR_LEVEL, MappingState, PowerLevels, StateView, membership
from protocol.rooms.reasons import STRUCTURAL_REASONS, RejectReason
from protocol.rooms.room import Changes, Room, kept_form
from protocol.rooms.schemas import (
    ROOM_VERSION,
    Register,
    check_shape,
    content_fits,
    is_power_event,
)

__all__ = [
    "CREATOR_LEVEL",
    "ROOM_VERSION",
    "STRUCTURAL_REASONS",
    "Changes",
    "MappingState",
    "PowerLevels",
    "Register",
    "RejectReason",
    "Room",
    "StateView",
    "authorize",
    "check_shape",
    "content_fits",
    "is_power_event",
    "kept_form",
    "membership",
    "rank",
    "select_auth_events",
]
