"""The client ops that act on rooms, messages, devices and presence (spec/client.md §2-§6),
as typed methods over one primitive, :meth:`Operations._call`.

Which ops may be repeated after a lost answer is decided here, op by op
(:data:`RETRY_SAFE_OPS`): reads, the ops made idempotent by a transaction id (``send``,
``redact``, ``send_to_device``: client.md §4 "Idempotence"), and ops whose repetition
changes nothing the user could tell (``typing``, ``receipt``, ``ack``, ``heartbeat``,
``set_presence``, ``rename_device``; ``upload_keys``, whose keys the node takes once, and
``claim_keys``, where a repeat only takes one more one-time key). The others — creating a
room, membership and state changes, account ops — raise
:class:`~client.errors.ConnectionLostError` instead, since doing them twice is not the same
as doing them once. ``sync`` is neither: the session restarts it itself on every new
connection, from where the stream got to.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping

from client.results import Device, HistoryPage, Member, PresenceInfo, RoomSummary, need
from protocol import JsonObject

__all__ = ["RETRY_SAFE_OPS", "Operations", "new_txn_id"]

RETRY_SAFE_OPS = frozenset(
    {
        "ping",
        "devices",
        "rename_device",
        "rooms",
        "members",
        "history",
        "send",
        "redact",
        "send_to_device",
        "typing",
        "receipt",
        "ack",
        "heartbeat",
        "set_presence",
        "get_presence",
        "upload_keys",
        "query_keys",
        "claim_keys",
    }
)
"""Ops the session repeats on the next connection when the answer was lost."""


def new_txn_id() -> str:
    """A fresh transaction id: 128 random bits, unique among the device's requests."""
    return secrets.token_urlsafe(16)


def _some(**params: object) -> JsonObject:
    """The params that were given (None means "leave it out")."""
    return {name: value for name, value in params.items() if value is not None}


class Operations:
    """Typed client ops; a subclass provides the request primitive :meth:`_call`."""

    async def _call(self, op: str, params: JsonObject) -> JsonObject:
        """Send ``op`` and return its result; raises ``ClientError`` on an error frame."""
        raise NotImplementedError

    async def _event_id(self, op: str, params: JsonObject) -> str:
        return need(await self._call(op, params), "event_id", str)

    async def ping(self) -> None:
        """Check that the node is there and answering (spec/wire.md §5.3)."""
        await self._call("ping", {})

    # --- devices (§2) -----------------------------------------------------------------------

    async def devices(self) -> list[Device]:
        """The user's devices; ``current`` marks this one."""
        result = await self._call("devices", {})
        return [Device.from_json(d) for d in need(result, "devices", list)]

    async def rename_device(self, device_id: str, display_name: str) -> None:
        """Set a device's display name (``not_found`` for another user's or no device)."""
        await self._call("rename_device", {"device_id": device_id, "display_name": display_name})

    # --- rooms (§3) -------------------------------------------------------------------------

    async def create_room(
        self,
        *,
        name: str | None = None,
        topic: str | None = None,
        invite: Iterable[str] = (),
        direct: bool = False,
        public: bool = False,
        encryption: str | None = None,
    ) -> str:
        """Create a room; its id. A direct room needs exactly one invitee (§3)."""
        params = _some(name=name, topic=topic, encryption=encryption)
        invitees = list(invite)
        if invitees:
            params["invite"] = invitees
        if direct:
            params["direct"] = True
        if public:
            params["public"] = True
        return need(await self._call("create_room", params), "room_id", str)

    async def invite(self, room_id: str, user_id: str) -> str:
        """Invite a user; the ``member`` event's id."""
        return await self._event_id("invite", {"room_id": room_id, "user_id": user_id})

    async def join(self, room_id: str) -> str:
        """Join a public room or one the user is invited to."""
        return await self._event_id("join", {"room_id": room_id})

    async def leave(self, room_id: str) -> str:
        """Leave a room, or decline an invitation."""
        return await self._event_id("leave", {"room_id": room_id})

    async def kick(self, room_id: str, user_id: str, *, reason: str | None = None) -> str:
        """Remove a member (they may come back if the room lets them)."""
        params = _some(room_id=room_id, user_id=user_id, reason=reason)
        return await self._event_id("kick", params)

    async def ban(self, room_id: str, user_id: str, *, reason: str | None = None) -> str:
        """Ban a user from the room."""
        params = _some(room_id=room_id, user_id=user_id, reason=reason)
        return await self._event_id("ban", params)

    async def unban(self, room_id: str, user_id: str) -> str:
        """Lift a ban; the user then counts as having left."""
        return await self._event_id("unban", {"room_id": room_id, "user_id": user_id})

    async def set_name(self, room_id: str, name: str) -> str:
        """Set the room's name."""
        return await self._event_id("set_name", {"room_id": room_id, "name": name})

    async def set_topic(self, room_id: str, topic: str) -> str:
        """Set the room's topic."""
        return await self._event_id("set_topic", {"room_id": room_id, "topic": topic})

    async def set_join_rule(self, room_id: str, join_rule: str) -> str:
        """Make the room ``public`` or ``invite``-only."""
        return await self._event_id("set_join_rule", {"room_id": room_id, "join_rule": join_rule})

    async def set_level(self, room_id: str, user_id: str, level: int) -> str:
        """Set a user's power level in the room."""
        params = {"room_id": room_id, "user_id": user_id, "level": level}
        return await self._event_id("set_level", params)

    async def set_thresholds(self, room_id: str, thresholds: Mapping[str, object]) -> str:
        """Set the room's power thresholds (rooms.md §3 ``power_levels`` with key ``""``)."""
        params = {"room_id": room_id, "thresholds": dict(thresholds)}
        return await self._event_id("set_thresholds", params)

    async def rooms(self) -> list[RoomSummary]:
        """The rooms the user has joined or is invited to, with member and unread counts."""
        result = await self._call("rooms", {})
        return [RoomSummary.from_json(r) for r in need(result, "rooms", list)]

    async def members(self, room_id: str) -> list[Member]:
        """Everyone with a membership in the room (the user must be joined)."""
        result = await self._call("members", {"room_id": room_id})
        return [Member.from_json(m) for m in need(result, "members", list)]

    # --- messages (§4) ----------------------------------------------------------------------

    async def send(
        self,
        room_id: str,
        content: JsonObject | str,
        *,
        type: str | None = None,
        txn_id: str | None = None,
    ) -> str:
        """Send a timeline event; its id. A ``str`` is sent as a text message.

        The transaction id (fresh unless given) is kept across the retries the session
        makes after a lost answer, so the node stores the event once (§4 "Idempotence").
        """
        if isinstance(content, str):
            content = {"msgtype": "text", "body": content}
        params = _some(room_id=room_id, txn_id=txn_id or new_txn_id(), type=type)
        params["content"] = content
        return await self._event_id("send", params)

    async def redact(
        self,
        room_id: str,
        event_id: str,
        *,
        reason: str | None = None,
        txn_id: str | None = None,
    ) -> str:
        """Redact an event; the redaction's id. Idempotent like :meth:`send`."""
        params = _some(
            room_id=room_id, event_id=event_id, txn_id=txn_id or new_txn_id(), reason=reason
        )
        return await self._event_id("redact", params)

    async def history(
        self, room_id: str, *, before: str | None = None, limit: int | None = None
    ) -> HistoryPage:
        """Up to ``limit`` (1-100, default 50) events before ``before`` (or the newest)."""
        params = _some(room_id=room_id, before=before, limit=limit)
        return HistoryPage.from_json(await self._call("history", params))

    async def typing(
        self, room_id: str, typing: bool = True, *, timeout_ms: int | None = None
    ) -> None:
        """Tell the room the user is typing (until ``timeout_ms``) or has stopped."""
        await self._call("typing", _some(room_id=room_id, typing=typing, timeout_ms=timeout_ms))

    async def receipt(self, room_id: str, event_id: str) -> None:
        """Mark the room read up to ``event_id`` (the user's unread count follows it)."""
        await self._call("receipt", {"room_id": room_id, "event_id": event_id})

    async def send_to_device(
        self,
        type: str,
        messages: Mapping[str, Mapping[str, JsonObject]],
        *,
        txn_id: str | None = None,
    ) -> None:
        """Send ``{user: {device or "*": content}}``; kept by the node until acknowledged."""
        params = {
            "type": type,
            "txn_id": txn_id or new_txn_id(),
            "messages": {user: dict(devices) for user, devices in messages.items()},
        }
        await self._call("send_to_device", params)

    # --- device keys (§9) ------------------------------------------------------------------

    async def upload_keys(
        self,
        *,
        device_keys: JsonObject | None = None,
        one_time_keys: JsonObject | None = None,
        fallback_key: JsonObject | None = None,
    ) -> JsonObject:
        """Publish this device's keys; ``{one_time_key_counts}``."""
        params = _some(
            device_keys=device_keys, one_time_keys=one_time_keys, fallback_key=fallback_key
        )
        return await self._call("upload_keys", params)

    async def query_keys(self, user_ids: Iterable[str]) -> JsonObject:
        """The identity key objects of the users' devices: ``{devices, failures,
        incomplete?}`` (signatures unchecked: ``protocol.device_keys.check_device_keys``)."""
        return await self._call("query_keys", {"user_ids": list(user_ids)})

    async def claim_keys(self, one_time_keys: Mapping[str, Mapping[str, str]]) -> JsonObject:
        """One one-time (or fallback) key per device: ``{one_time_keys, failures}``."""
        wanted = {user: dict(devices) for user, devices in one_time_keys.items()}
        return await self._call("claim_keys", {"one_time_keys": wanted})

    # --- presence (§6) ----------------------------------------------------------------------

    async def heartbeat(self) -> None:
        """Tell the node this device is still here (the session does it by itself)."""
        await self._call("heartbeat", {})

    async def set_presence(self, status_msg: str) -> None:
        """Set the user's status message; an empty one clears it."""
        await self._call("set_presence", {"status_msg": status_msg})

    async def get_presence(self, user_ids: Iterable[str]) -> list[PresenceInfo]:
        """The presence of those of ``user_ids`` who are contacts (others are left out)."""
        result = await self._call("get_presence", {"user_ids": list(user_ids)})
        return [PresenceInfo.from_json(p) for p in need(result, "presence", list)]
