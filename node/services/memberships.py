"""Local users' membership in rooms over time: who sees which part of a room's stream.

spec/client.md §5: a user sees a room's items from the event that made them join up to and
including the one that made them leave; they also see the event that invited them. The
index records every change of a local user's membership — as the room state says after an
event is added, retractions included — at the stream position where it happened.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable

__all__ = ["Memberships"]

Change = tuple[int, str]


class Memberships:
    """Membership changes of local users, by user and room, in position order."""

    def __init__(self) -> None:
        self._changes: dict[tuple[str, str], list[Change]] = {}
        self._rooms_of: dict[str, set[str]] = {}
        self._users_of: dict[str, set[str]] = {}

    def record(self, user_id: str, room_id: str, position: int, membership: str) -> bool:
        """Note that ``user_id``'s membership became ``membership`` at ``position``.

        Returns False (and records nothing) when it is the same as before.
        """
        changes = self._changes.setdefault((user_id, room_id), [])
        if changes and changes[-1][1] == membership:
            return False
        if changes and changes[-1][0] >= position:
            raise ValueError("membership changes must come in position order")
        changes.append((position, membership))
        self._rooms_of.setdefault(user_id, set()).add(room_id)
        self._users_of.setdefault(room_id, set()).add(user_id)
        return True

    def current(self, user_id: str, room_id: str) -> str:
        """The user's membership now (``leave`` if never a member)."""
        changes = self._changes.get((user_id, room_id))
        return changes[-1][1] if changes else "leave"

    def at(self, user_id: str, room_id: str, position: int) -> str:
        """The user's membership once everything up to ``position`` happened."""
        changes = self._changes.get((user_id, room_id))
        if not changes:
            return "leave"
        index = bisect_right(changes, (position, "\uffff")) - 1
        return changes[index][1] if index >= 0 else "leave"

    def sees(self, user_id: str, room_id: str, position: int) -> bool:
        """Whether the room's item at ``position`` is in the user's view (client.md §5)."""
        changes = self._changes.get((user_id, room_id))
        if not changes:
            return False
        changed_at, membership = changes[-1]
        if changed_at > position:  # rare: an item older than the user's last change
            index = bisect_right(changes, (position, "\uffff")) - 1
            if index < 0:
                return False
            changed_at, membership = changes[index]
        return membership == "join" or changed_at == position

    def rooms_of(self, user_id: str) -> set[str]:
        """Rooms in which the user ever had a membership."""
        return self._rooms_of.get(user_id, set())

    def users_of(self, room_id: str) -> set[str]:
        """Local users who ever had a membership in the room."""
        return self._users_of.get(room_id, set())

    def joined(self, room_id: str) -> list[str]:
        """Local users joined now."""
        return [u for u in self.users_of(room_id) if self.current(u, room_id) == "join"]

    def rooms_with(self, user_id: str, memberships: Iterable[str]) -> list[str]:
        """The user's rooms whose current membership is one of ``memberships``."""
        wanted = set(memberships)
        return [r for r in self.rooms_of(user_id) if self.current(user_id, r) in wanted]
