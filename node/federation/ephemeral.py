"""Presence, typing, receipts and device-list changes between nodes (spec/federation.md §8).

Outbound, the relay listens to the local services: a local user's presence change, and a
change of their device list, goes to every server that shares a joined room with the user;
a typing notice or a receipt goes to the room's other servers. Each becomes an EDU that
waits in the outbox's memory for the next transaction to that server — best-effort, never
stored. When a link to a server comes
up, the relay also sends it the presence of every local user it shares a room with, so a
node that restarted, or was cut off while someone came or went, is told the present state
without waiting for the next change; and when a user joins a room, the servers that become
their contacts' are told the presence they did not know.

Inbound, each EDU of a transaction is parsed on its own, must speak for a user of the
link's peer, and is applied only where it makes sense here (a room this node holds, a user
joined to it); anything else is skipped with a log line, never an error for the whole
transaction.
"""

from __future__ import annotations

from typing import Any, Final

import trio

from node.federation.outbox import Outbox
from node.log import get_log
from node.services.device_keys import DeviceKeyService
from node.services.ephemeral import Receipts, Typing
from node.services.presence import Presence
from node.services.rooms import RoomService
from protocol import JsonObject, ProtocolError, parse_user_id
from protocol.federation.ephemeral import Edu, parse_edu

__all__ = ["EphemeralRelay"]

log = get_log(__name__)

LIST_RESEND_MARGIN_S: Final = 120.0
"""§8.1: a device-list change this long before a link went down is sent again when it is
back, since its EDU may have been in a transaction that failed (§2.4's silence and more)."""

UNREACHABLE_AFTER_S: Final = 90.0
"""§8.1: a server without a link this long has its users' presence taken as offline (the
silence after which a link is closed, §2.4)."""


class EphemeralRelay:
    """Sends local users' EDUs to other servers and applies theirs here."""

    def __init__(
        self,
        *,
        rooms: RoomService,
        presence: Presence,
        typing: Typing,
        receipts: Receipts,
        device_keys: DeviceKeyService,
        outbox: Outbox,
    ) -> None:
        self._rooms = rooms
        self._presence = presence
        self._typing = typing
        self._receipts = receipts
        self._device_keys = device_keys
        self._outbox = outbox
        presence.on_local_change.append(self._presence_changed)
        typing.on_local_change.append(self._typing_changed)
        receipts.on_local_change.append(self._receipt_moved)
        rooms.on_joined.append(self._members_joined)
        device_keys.on_local_change.append(self._device_list_changed)
        self._down_since: dict[str, float] = {}
        self._down_changed = trio.Event()
        self._list_changed_at: dict[str, float] = {}
        """When each local user's device list last changed since the node started."""
        self._linked: set[str] = set()
        """Servers a link was up to since the node started."""
        self._lost_at: dict[str, float] = {}
        """When the link to each server that is down went down."""

    # --- outbound -----------------------------------------------------------------------

    def _servers_of_room(self, room_id: str) -> frozenset[str]:
        room = self._rooms.rooms.get(room_id)
        return self._rooms.members(room).servers_joined if room is not None else frozenset()

    def _servers_sharing(self, user_id: str) -> list[str]:
        """The other servers with a user joined to a room ``user_id`` is joined to."""
        servers: set[str] = set()
        for room_id in self._rooms.rooms_joined_by(user_id):
            servers |= self._servers_of_room(room_id)
        return sorted(servers)

    def _presence_changed(self, described: JsonObject) -> None:
        servers = self._servers_sharing(described["user_id"])
        if servers:
            self._outbox.queue_edu(servers, _presence_edu(described))

    def _typing_changed(self, user_id: str, room_id: str, typing: bool, timeout_ms: int) -> None:
        content = {"room_id": room_id, "user_id": user_id, "typing": typing,
                   "timeout_ms": timeout_ms}  # fmt: skip
        edu = {"type": "typing", "content": content}
        self._outbox.queue_edu(self._servers_of_room(room_id), edu)

    def _receipt_moved(self, user_id: str, room_id: str, event_id: str) -> None:
        content = {"room_id": room_id, "user_id": user_id, "event_id": event_id}
        edu = {"type": "receipt", "content": content}
        self._outbox.queue_edu(self._servers_of_room(room_id), edu)

    def _device_list_changed(self, user_id: str) -> None:
        """§8.1: a local user's device list changed; every server sharing a room hears."""
        self._list_changed_at[user_id] = trio.current_time()
        servers = self._servers_sharing(user_id)
        if servers:
            self._outbox.queue_edu(servers, _device_list_edu(user_id))

    def _resend_device_lists(self, peer: str, users: set[str]) -> None:
        """§8.1: a link is back: the changes of ``users`` (who share a room with ``peer``)
        it may have missed — since the link went down, less a margin for the transactions
        that failed before, or since the start for a server never linked yet. Best-effort
        as any EDU: changes made before the node restarted are not sent again."""
        since = self._lost_at.pop(peer, None)
        if since is None and peer in self._linked:
            return
        after = -float("inf") if since is None else since - LIST_RESEND_MARGIN_S
        for user_id in sorted(users):
            if self._list_changed_at.get(user_id, -float("inf")) >= after:
                self._outbox.queue_edu([peer], _device_list_edu(user_id))

    def _members_joined(self, joined: list[tuple[str, str]]) -> None:
        """§8.1: new contacts across servers learn each other's presence. A local user's
        goes to the room's other servers; a remote user's server gets the presence of the
        room's local users. Only what differs from the default (offline, no status), and
        once per room and server however many joined in one commit (a room fetched whole
        brings all its members at once)."""
        local_joins: dict[str, set[str]] = {}
        remote_servers: dict[str, set[str]] = {}
        for room_id, user_id in joined:
            server = parse_user_id(user_id).server_name
            if server == self._rooms.server_name:
                local_joins.setdefault(room_id, set()).add(user_id)
            else:
                remote_servers.setdefault(room_id, set()).add(server)
        for room_id, users in local_joins.items():
            servers = sorted(self._servers_of_room(room_id))
            for user_id in sorted(users):
                self._send_presence(user_id, servers)
        for room_id, servers_of_joiners in remote_servers.items():
            for user_id in self._rooms.local_joined(room_id):
                self._send_presence(user_id, sorted(servers_of_joiners))

    def _send_presence(self, user_id: str, servers: list[str]) -> None:
        """Queue the user's presence for ``servers`` unless it is the default."""
        described = self._presence.describe(user_id)
        if servers and (described["presence"] == "online" or "status_msg" in described):
            self._outbox.queue_edu(servers, _presence_edu(described))

    def link_up(self, peer: str) -> None:
        """A link to ``peer`` authenticated: send it the presence of the local users it
        shares a room with (online or not, so a stale "online" there is corrected), and the
        device-list changes it may have missed."""
        users: set[str] = set()
        for room_id, room in self._rooms.rooms.items():
            if peer in self._rooms.members(room).servers_joined:
                users.update(self._rooms.local_joined(room_id))
        for user_id in sorted(users):
            self._outbox.queue_edu([peer], _presence_edu(self._presence.describe(user_id)))
        self._resend_device_lists(peer, users)
        self._linked.add(peer)
        self.link_back(peer)

    def link_down(self, peer: str) -> None:
        """The link to ``peer`` closed: start counting (see :meth:`run`)."""
        self._down_since.setdefault(peer, trio.current_time())
        self._lost_at.setdefault(peer, trio.current_time())
        self._down_changed.set()

    def link_back(self, peer: str) -> None:
        """A link to ``peer`` is up again (its presence snapshot follows, §8.1)."""
        self._down_since.pop(peer, None)

    async def run(self) -> None:
        """Take the users of servers without a link for :data:`UNREACHABLE_AFTER_S` as
        offline (in the node's nursery): a node that died cannot say so itself."""
        while True:
            self._down_changed = trio.Event()
            deadline = min(self._down_since.values(), default=trio.current_time() + 3600)
            with trio.move_on_at(deadline + UNREACHABLE_AFTER_S):
                await self._down_changed.wait()
            now = trio.current_time()
            for peer, since in list(self._down_since.items()):
                if since + UNREACHABLE_AFTER_S <= now:
                    del self._down_since[peer]
                    log.info("peer_presence_unknown", peer=peer)
                    self._presence.server_unreachable(peer)

    # --- inbound ------------------------------------------------------------------------

    async def receive(self, peer: str, items: list[Any]) -> None:
        """Apply the ``edus`` of a transaction from ``peer`` (§8), item by item."""
        for item in items:
            try:
                edu = parse_edu(item)
            except ProtocolError as exc:
                log.info("edu_refused", peer=peer, reason=exc.code)
                continue
            if parse_user_id(edu.actor).server_name != peer:
                log.info("edu_refused", peer=peer, type=edu.type, reason="forbidden")
                continue
            if not await self._apply(edu):
                log.debug("edu_ignored", peer=peer, type=edu.type, user=edu.actor)

    async def _apply(self, edu: Edu) -> bool:
        content = edu.content
        if edu.type == "presence":
            return self._presence.apply_remote(
                edu.actor,
                content["presence"] == "online",
                content["last_active_ts"],
                content.get("status_msg"),
            )
        if edu.type == "typing":
            room = self._rooms.rooms.get(content["room_id"])
            if room is None or edu.actor not in self._rooms.members(room).joined:
                return False
            self._typing.apply(edu.actor, room.room_id, content["typing"], content["timeout_ms"])
            return True
        if edu.type == "device_list_update":
            await self._device_keys.announce([edu.actor])
            return True
        return await self._receipts.apply_remote(edu.actor, content["room_id"], content["event_id"])


def _device_list_edu(user_id: str) -> JsonObject:
    return {"type": "device_list_update", "content": {"user_id": user_id}}


def _presence_edu(described: JsonObject) -> JsonObject:
    """A ``presence_update``'s params as a §8 presence EDU."""
    content: JsonObject = {
        "user_id": described["user_id"],
        "presence": described["presence"],
        "last_active_ts": described.get("last_active_ts", 0),
    }
    if "status_msg" in described:
        content["status_msg"] = described["status_msg"]
    return {"type": "presence", "content": content}
