"""Who is connected: every bound session, by user and by device.

Services reach devices through the hub: the stream pushes a room's new events to the
sessions of its members' devices, presence asks whether any device of a user is connected,
accounts sign out every connection of a revoked device. A session joins the hub when it is
bound (spec/client.md §1) and leaves it when its connection ends or it is unbound.
"""

from __future__ import annotations

from collections.abc import Callable

from node.session import Session

__all__ = ["Hub"]


class Hub:
    """The bound sessions of one node."""

    def __init__(self) -> None:
        self._by_user: dict[str, dict[Session, None]] = {}
        self.on_user_connected: list[Callable[[str], None]] = []
        """Called with a user id when their first session joins."""
        self.on_user_disconnected: list[Callable[[str], None]] = []
        """Called with a user id when their last session leaves."""
        self.on_attach: list[Callable[[Session], None]] = []
        """Called with every session that joins (after the user callbacks)."""

    def attach(self, session: Session) -> None:
        """Add a bound session; it leaves the hub by itself when its connection ends."""
        user_id = session.user_id
        if user_id is None:
            raise ValueError("only bound sessions join the hub")
        sessions = self._by_user.setdefault(user_id, {})
        first = not sessions
        sessions[session] = None
        session.on_end.append(self.detach)
        if first:
            for callback in self.on_user_connected:
                callback(user_id)
        for attached in self.on_attach:
            attached(session)

    def detach(self, session: Session) -> None:
        """Remove a session (before unbinding it, or once its connection ended)."""
        user_id = session.user_id
        if user_id is None:
            return
        sessions = self._by_user.get(user_id)
        if sessions is None or session not in sessions:
            return
        del sessions[session]
        if self.detach in session.on_end:
            session.on_end.remove(self.detach)
        if not sessions:
            del self._by_user[user_id]
            for callback in self.on_user_disconnected:
                callback(user_id)

    def of_user(self, user_id: str) -> list[Session]:
        """Every session of ``user_id``'s devices."""
        return list(self._by_user.get(user_id, ()))

    def of_device(self, user_id: str, device_id: str) -> list[Session]:
        """Every session bound to one device."""
        return [s for s in self._by_user.get(user_id, ()) if s.device_id == device_id]

    def connected(self, user_id: str) -> bool:
        """True if any device of ``user_id`` has a session."""
        return user_id in self._by_user

    def count(self, user_id: str | None = None) -> int:
        """Bound sessions of one user, or of everyone."""
        if user_id is not None:
            return len(self._by_user.get(user_id, ()))
        return sum(len(sessions) for sessions in self._by_user.values())
