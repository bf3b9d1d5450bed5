"""Presence: who is online, told to their contacts when it changes (spec/client.md §6).

A user is ``online`` while any of their devices is connected and has sent a heartbeat
within the timeout (a device counts as heard from when it binds), and ``offline`` after the
last one disconnects or falls silent. Contacts — users who share a joined room — get a
``presence_update`` push on every change, and only then: the cost follows changes, not the
number of users or the heartbeat rate. Time comes from trio's clock, so tests run it on a
fake one.

Users of other servers are contacts too: their presence arrives from their own node
(spec/federation.md §8) through :meth:`Presence.apply_remote`, and a local user's changes
go out to the listeners of ``on_local_change`` (federation sends them on).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import trio

from node.clock import now_ms
from node.hub import Hub
from node.services.rooms import RoomService
from node.session import Session
from protocol import JsonObject, Notice, encode_frame, parse_user_id

__all__ = ["MAX_REMOTE_USERS", "Presence"]

MAX_REMOTE_USERS = 100_000
"""Users of other servers whose presence is kept: enough for large rooms, bounded for
servers that send presence of users nobody here shares a room with."""


@dataclass
class _UserPresence:
    online: bool = False
    last_active_ts: int = 0
    status_msg: str | None = None
    last_heard: float = 0.0
    """When any device of the user last sent a heartbeat (trio time)."""
    remote: bool = False
    """A user of another server: their node decides when they go offline."""


class Presence:
    """Online state, last activity and status messages of users."""

    def __init__(
        self,
        hub: Hub,
        rooms: RoomService,
        *,
        timeout_s: float,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self._hub = hub
        self._rooms = rooms
        self._timeout = timeout_s
        self._clock_ms = clock_ms
        self._users: dict[str, _UserPresence] = {}
        self._remote_count = 0
        self._changed = trio.Event()
        hub.on_user_disconnected.append(self._last_session_gone)
        self.on_local_change: list[Callable[[JsonObject], None]] = []
        """Told each change of a local user's presence (its ``presence_update`` params)."""

    # --- what devices do -----------------------------------------------------------------

    def bound(self, session: Session) -> None:
        """A device connected (or re-authenticated): it counts as heard from now."""
        self.heartbeat(session)

    def heartbeat(self, session: Session) -> None:
        """The device is still there. Cheap: a heartbeat only ever moves a deadline later,
        so the timeout task is woken only when someone comes online."""
        user_id = session.user_id
        if user_id is None:
            return
        user = self._users.setdefault(user_id, _UserPresence())
        user.last_heard = trio.current_time()
        user.last_active_ts = self._clock_ms()
        if not user.online:
            user.online = True
            self._changed.set()
            self._announce(user_id, user)

    def request_seen(self, session: Session) -> None:
        """A bound device made a request: note the time (never announced by itself)."""
        user = self._users.get(session.user_id) if session.user_id is not None else None
        if user is not None:
            user.last_active_ts = self._clock_ms()

    def set_status(self, user_id: str, status_msg: str) -> None:
        """Change the user's status message; an empty one clears it."""
        user = self._users.setdefault(user_id, _UserPresence())
        new = status_msg or None
        if new != user.status_msg:
            user.status_msg = new
            self._announce(user_id, user)

    # --- reading --------------------------------------------------------------------------

    def contacts(self, user_id: str) -> set[str]:
        """Users of any server who share a joined room with ``user_id`` (not the user)."""
        found: set[str] = set()
        for room_id in self._rooms.rooms_joined_by(user_id):
            found.update(self._rooms.members(self._rooms.room(room_id)).joined)
        found.discard(user_id)
        return found

    def describe(self, user_id: str) -> JsonObject:
        """The ``presence_update`` params for a user."""
        user = self._users.get(user_id, _UserPresence())
        described: JsonObject = {
            "user_id": user_id,
            "presence": "online" if user.online else "offline",
        }
        if user.last_active_ts:
            described["last_active_ts"] = user.last_active_ts
        if user.status_msg is not None:
            described["status_msg"] = user.status_msg
        return described

    def of_contacts(self, user_id: str, wanted: list[str]) -> list[JsonObject]:
        """``get_presence``: the presence of those of ``wanted`` who are contacts."""
        contacts = self.contacts(user_id)
        return [self.describe(other) for other in dict.fromkeys(wanted) if other in contacts]

    def push_online_contacts(self, session: Session) -> None:
        """client.md §6: after a device's first catch-up, the contacts who are online."""
        if session.user_id is None:
            return
        for contact in sorted(self.contacts(session.user_id)):
            user = self._users.get(contact)
            if user is not None and user.online:
                session.push_nowait(encode_frame(Notice("presence_update", self.describe(contact))))

    # --- changes --------------------------------------------------------------------------

    def apply_remote(
        self, user_id: str, online: bool, last_active_ts: int, status: str | None
    ) -> bool:
        """federation.md §8.1: the presence of a user of another server, from their node.

        Kept even before this node knows the user shares a room with a local one — the
        presence may arrive before the join event — up to :data:`MAX_REMOTE_USERS` users;
        told to the local contacts when it changes anything. False if not kept.
        """
        user = self._users.get(user_id)
        if user is None:
            if self._remote_count >= MAX_REMOTE_USERS:
                return False
            user = self._users[user_id] = _UserPresence(remote=True)
            self._remote_count += 1
        changed = (user.online, user.status_msg) != (online, status)
        user.online, user.status_msg = online, status
        user.last_active_ts = max(user.last_active_ts, last_active_ts)
        if changed:
            self._announce(user_id, user)
        return True

    def members_joined(self, joined: list[tuple[str, str]]) -> None:
        """Users (of any server) joined rooms: they and the rooms' other members are new
        contacts, so each side's connected devices learn the other's presence (client.md
        §6) — only what differs from the default, offline without a status."""
        by_room: dict[str, set[str]] = {}
        for room_id, user_id in joined:
            by_room.setdefault(room_id, set()).add(user_id)
        for room_id, newcomers in by_room.items():
            members = self._rooms.members(self._rooms.room(room_id)).joined
            local = self._rooms.local_joined(room_id)
            for newcomer in newcomers:
                if self._is_news(newcomer):
                    self._tell(self.describe(newcomer), [c for c in local if c not in newcomers])
                if newcomer in local and self._hub.of_user(newcomer):
                    for member in sorted(members - {newcomer}):
                        if self._is_news(member):
                            self._tell(self.describe(member), [newcomer])

    def _is_news(self, user_id: str) -> bool:
        user = self._users.get(user_id)
        return user is not None and (user.online or user.status_msg is not None)

    def server_unreachable(self, server_name: str) -> None:
        """federation.md §8.1: nothing can be heard from ``server_name`` any more; its
        users who were online are offline here until their node says otherwise."""
        for user_id, user in self._users.items():
            if user.remote and user.online and parse_user_id(user_id).server_name == server_name:
                user.online = False
                self._announce(user_id, user)

    def _tell(self, described: JsonObject, users: Iterable[str]) -> None:
        """Push a ``presence_update`` to the connected devices of ``users`` (encoded once)."""
        frame = encode_frame(Notice("presence_update", described))
        for user_id in users:
            for session in self._hub.of_user(user_id):
                session.push_nowait(frame)

    def _announce(self, user_id: str, user: _UserPresence) -> None:
        described = self.describe(user_id)
        self._tell(described, self.contacts(user_id))
        if not user.remote:
            for listener in self.on_local_change:
                listener(described)

    def _last_session_gone(self, user_id: str) -> None:
        user = self._users.get(user_id)
        if user is not None and user.online:
            user.online = False
            self._announce(user_id, user)

    async def run(self) -> None:
        """Mark silent users offline when their timeout passes (in the node's nursery)."""
        while True:
            self._changed = trio.Event()
            deadlines = [
                u.last_heard + self._timeout
                for u in self._users.values()
                if u.online and not u.remote
            ]
            with trio.move_on_at(min(deadlines, default=trio.current_time() + 3600)):
                await self._changed.wait()
            now = trio.current_time()
            for user_id, user in self._users.items():
                if user.online and not user.remote and user.last_heard + self._timeout <= now:
                    user.online = False
                    self._announce(user_id, user)
