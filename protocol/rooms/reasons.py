"""Why an event is refused, held or rejected: the stable codes of spec/rooms.md §7 and
spec/state.md §1, §6.

*Refused* and *held* events never enter a room's graph (structural problems, or parents not
known yet); *rejected* events are in the graph with a negative verdict.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["STRUCTURAL_REASONS", "RejectReason"]


class RejectReason(StrEnum):
    """Stable reason codes; never renamed or reused."""

    # spec/state.md §1 — structural: the event is not added to the graph.
    MISSING_PARENTS = "missing_parents"
    WRONG_ROOM = "wrong_room"
    BAD_DEPTH = "bad_depth"
    # spec/rooms.md §5, §7 — the authorization check.
    BAD_STATE_KEY = "bad_state_key"
    BAD_CONTENT = "bad_content"
    NOT_CREATOR = "not_creator"
    UNSUPPORTED_ROOM_VERSION = "unsupported_room_version"
    WRONG_TARGET = "wrong_target"
    BANNED = "banned"
    NOT_INVITED = "not_invited"
    NOT_JOINED = "not_joined"
    INSUFFICIENT_POWER = "insufficient_power"
    TARGET_BANNED = "target_banned"
    ALREADY_JOINED = "already_joined"
    NOT_MEMBER = "not_member"
    NOT_BANNED = "not_banned"
    TARGET_NOT_LOWER = "target_not_lower"
    LEVEL_ABOVE_OWN = "level_above_own"
    CREATOR_IMMUTABLE = "creator_immutable"
    DIRECT_ROOM = "direct_room"
    ROOM_FULL = "room_full"
    # spec/state.md §5-6 — excluded by a concurrent revocation.
    DEFEATED = "defeated"


STRUCTURAL_REASONS = frozenset(
    {RejectReason.MISSING_PARENTS, RejectReason.WRONG_ROOM, RejectReason.BAD_DEPTH}
)
