"""An in-memory stand-in for the nodes, for unit tests of the client's end-to-end encryption:
the device-key ops, to-device delivery, room members and sends of client.md, kept in
dicts, with each device's :class:`~client.crypto_device.DeviceCrypto` on top."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client.api import Operations
from client.crypto_device import DeviceCrypto
from client.results import Event
from client.store import Store
from client.updates import ToDevice
from protocol import JsonObject
from protocol.device_keys import check_device_keys


@dataclass
class FakeNodes:
    """Every user's devices, keys, rooms and to-device inboxes in one place."""

    device_keys: dict[str, dict[str, JsonObject]] = field(default_factory=dict)
    one_time: dict[tuple[str, str], dict[str, JsonObject]] = field(default_factory=dict)
    fallback: dict[tuple[str, str], dict[str, JsonObject]] = field(default_factory=dict)
    inbox: dict[tuple[str, str], list[ToDevice]] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)
    sent: list[Event] = field(default_factory=list)
    positions: Any = field(default_factory=lambda: itertools.count(1))
    unreachable: set[str] = field(default_factory=set)
    """Servers whose users' keys cannot be had (``failures``: ``unreachable``)."""
    encryption: dict[str, JsonObject] = field(default_factory=dict)
    """Rooms' ``encryption`` state contents, as ``rooms`` reports them (default: none set)."""

    def remove_device(self, user_id: str, device_id: str) -> None:
        """A device logs out: its keys go."""
        self.device_keys.get(user_id, {}).pop(device_id, None)

    def take_inbox(self, user_id: str, device_id: str) -> list[ToDevice]:
        """The to-device messages waiting for a device (and no more)."""
        return self.inbox.pop((user_id, device_id), [])


class FakeOps(Operations):
    """One device's ops against :class:`FakeNodes`."""

    def __init__(self, nodes: FakeNodes, user_id: str, device_id: str) -> None:
        self.nodes, self.user_id, self.device_id = nodes, user_id, device_id

    async def _call(self, op: str, params: JsonObject) -> JsonObject:
        return getattr(self, f"_{op}")(params)  # type: ignore[no-any-return]

    def _upload_keys(self, params: JsonObject) -> JsonObject:
        me = (self.user_id, self.device_id)
        if "device_keys" in params:
            check_device_keys(params["device_keys"], *me)
            self.nodes.device_keys.setdefault(self.user_id, {})[self.device_id] = params[
                "device_keys"
            ]
        self.nodes.one_time.setdefault(me, {}).update(params.get("one_time_keys", {}))
        if "fallback_key" in params:
            self.nodes.fallback[me] = params["fallback_key"]
        return {"one_time_key_counts": {"signed_curve25519": len(self.nodes.one_time[me])}}

    def _query_keys(self, params: JsonObject) -> JsonObject:
        keys, down = self.nodes.device_keys, self.nodes.unreachable
        asked = [u for u in params["user_ids"] if u.partition(":")[2] not in down]
        devices = {u: dict(keys[u]) for u in asked if keys.get(u)}
        failures = {u.partition(":")[2]: "unreachable" for u in params["user_ids"]}
        return {"devices": devices, "failures": {s: e for s, e in failures.items() if s in down}}

    def _claim_keys(self, params: JsonObject) -> JsonObject:
        found: dict[str, dict[str, JsonObject]] = {}
        for user_id, devices in params["one_time_keys"].items():
            for device_id in devices:
                stock = self.nodes.one_time.get((user_id, device_id), {})
                if stock:
                    name = next(iter(stock))
                    key = {name: stock.pop(name)}
                else:
                    key = self.nodes.fallback.get((user_id, device_id), {})
                if key:
                    found.setdefault(user_id, {})[device_id] = key
        return {"one_time_keys": found, "failures": {}}

    def _send_to_device(self, params: JsonObject) -> JsonObject:
        for user_id, devices in params["messages"].items():
            for device_id, content in devices.items():
                item = ToDevice(
                    next(self.nodes.positions),
                    self.user_id,
                    self.device_id,
                    params["type"],
                    content,
                )
                self.nodes.inbox.setdefault((user_id, device_id), []).append(item)
        return {}

    def _members(self, params: JsonObject) -> JsonObject:
        users = self.nodes.members[params["room_id"]]
        return {
            "members": [
                {"user_id": u, "membership": "join", "level": 0, "creator": False} for u in users
            ]
        }

    def _rooms(self, params: JsonObject) -> JsonObject:
        return {
            "rooms": [
                {
                    "room_id": room_id,
                    "name": None,
                    "topic": None,
                    "direct": False,
                    "encrypted": True,
                    "encryption": self.nodes.encryption.get(room_id),
                    "membership": "join",
                    "member_count": len(users),
                    "unread_count": 0,
                }
                for room_id, users in self.nodes.members.items()
                if self.user_id in users
            ]
        }

    def _send(self, params: JsonObject) -> JsonObject:
        event = Event(
            f"$event{len(self.nodes.sent)}",
            params["room_id"],
            params.get("type", "message"),
            self.user_id,
            params["content"],
            1000 + len(self.nodes.sent),
        )
        self.nodes.sent.append(event)
        return {"event_id": event.event_id}


class Clock:
    """A settable clock in milliseconds."""

    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


async def fake_device(
    nodes: FakeNodes,
    user_id: str,
    device_id: str,
    *,
    folder: Path | None = None,
    clock: Clock | None = None,
    store: Store | None = None,
) -> tuple[DeviceCrypto, Store]:
    """A logged-in device with encryption set up (its keys published)."""
    if store is None:
        path = None if folder is None else folder / f"{user_id}-{device_id}.json"
        store = Store(path, "ws://fake", user_id, device_id, "token")

    async def save() -> None:
        store.save()

    crypto = DeviceCrypto(
        FakeOps(nodes, user_id, device_id), store, save, clock_ms=clock or Clock()
    )
    await crypto.ready()
    return crypto, store
