"""To-device messages: from one device to others, kept until each target acknowledges it
(spec/client.md §4 ``send_to_device``, §5 items of kind ``to_device``).

End-to-end encryption depends on these: room keys travel as to-device messages, and a lost
key is a message nobody can read. So each message is stored — one row per target device, at
its own stream position — and deleted only when that device acknowledges a position at or
after it. Owns the ``to_device`` and ``fed_to_device`` tables with the stream, and its
``txns`` rows.

Messages for users of other servers are queued for their server in ``fed_to_device`` in the
same transaction (spec/federation.md §8); federation sends them on and, at the other end,
hands them to :meth:`ToDevice.receive_remote`, which stores them for the target devices
once, whatever number of times the sending node tries.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from node.clock import now_ms
from node.log import get_log
from node.services.stream import Item, Stream
from node.services.txns import Transactions, TxnKey, store_txn
from node.storage.db import Database
from protocol import ErrorCode, JsonObject, RemoteProtocolError, parse_user_id
from protocol.federation.ephemeral import ToDeviceMessage

log = get_log(__name__)

_Target = tuple[str, str, str, str, str, JsonObject]
"""(user, device, sender, sender device, type, content): one message for one device."""

__all__ = ["ToDevice"]


class ToDevice:
    """Stores and delivers to-device messages between local devices."""

    def __init__(
        self,
        db: Database,
        stream: Stream,
        is_local: Callable[[str], bool],
        txns: Transactions,
    ) -> None:
        self._db = db
        self._stream = stream
        self._is_local = is_local
        self._txns = txns
        self.on_outbox: Callable[[set[str]], None] = lambda destinations: None
        """Told, after a commit, which servers have new messages queued (federation)."""

    async def send(
        self,
        key: TxnKey,
        event_type: str,
        messages: dict[str, dict[str, JsonObject]],
    ) -> None:
        """Queue ``messages`` (user → device or ``"*"`` → content) from device ``key[:2]``."""
        sender, sender_device, _ = key
        local = [user_id for user_id in messages if self._is_local(user_id)]

        async def run() -> str:
            devices = await self._db.read(lambda conn: _devices_of(conn, local))
            targets: list[_Target] = []
            outgoing: list[tuple[str, JsonObject]] = []
            for user_id, by_device in messages.items():
                if user_id not in local:  # its server expands "*" (federation.md §8)
                    server = parse_user_id(user_id).server_name
                    outgoing += [
                        (server, _message(key, event_type, user_id, device_id, content))
                        for device_id, content in by_device.items()
                    ]
                    continue
                if user_id not in devices:
                    raise RemoteProtocolError(ErrorCode.NOT_FOUND, f"no user {user_id}")
                for device_id, content in by_device.items():
                    targets += [
                        (user_id, d, sender, sender_device, event_type, content)
                        for d in _chosen(devices[user_id], device_id)
                    ]
            await self._store([key], targets, outgoing)
            return "{}"

        await self._txns.once(key, run)

    async def receive_remote(self, peer: str, messages: list[ToDeviceMessage]) -> None:
        """federation.md §8: store messages a peer's users sent to this node's devices,
        each once (its ``message_id``), and return once they are committed. Messages whose
        sender is not the peer's, or for users or devices this node does not have, are
        dropped."""
        fresh: dict[TxnKey, ToDeviceMessage] = {}
        for message in messages:
            key = (message.sender, message.sender_device, f"fed:{message.message_id}")
            if parse_user_id(message.sender).server_name != peer or not self._is_local(
                message.user_id
            ):
                log.info("to_device_dropped", peer=peer, reason="forbidden", user=message.user_id)
            elif key not in fresh and not await self._txns.seen(key):
                fresh[key] = message
        users = sorted({m.user_id for m in fresh.values()})
        devices = await self._db.read(lambda conn: _devices_of(conn, users))
        targets: list[_Target] = []
        for m in fresh.values():
            targets += [
                (m.user_id, d, m.sender, m.sender_device, m.type, m.content)
                for d in _chosen(devices.get(m.user_id, []), m.device_id)
            ]
        if fresh:
            await self._store(list(fresh), targets, [])
            self._txns.remember(list(fresh), "{}")

    async def _store(
        self, keys: list[TxnKey], targets: list[_Target], outgoing: list[tuple[str, JsonObject]]
    ) -> None:
        """One transaction: the messages for local devices, those for other servers, and the
        txn keys that make them idempotent."""
        rows: list[tuple[int, str, str, str, str, str, str]] = []
        items: list[Item] = []
        for user_id, device_id, sender, sender_device, event_type, content in targets:
            position = self._stream.allocate()
            message = {
                "sender": sender,
                "sender_device": sender_device,
                "type": event_type,
                "content": content,
            }
            rows.append(
                (
                    position,
                    user_id,
                    device_id,
                    sender,
                    sender_device,
                    event_type,
                    json.dumps(content),
                )
            )
            items.append(
                Item(
                    position,
                    "to_device",
                    {"position": position, "kind": "to_device", **message},
                    device=(user_id, device_id),
                )
            )
        last = self._stream.head
        destinations = {server for server, _ in outgoing}

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO to_device (position, user_id, device_id, sender, sender_device, "
                "type, content) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.executemany(
                "INSERT INTO fed_to_device (destination, json) VALUES (?, ?)",
                [(server, json.dumps(message)) for server, message in outgoing],
            )
            now = now_ms()
            for key in keys:
                store_txn(conn, key, "{}", now)

        def committed(_: None) -> None:
            self._stream.publish(items, last)
            if destinations:
                self.on_outbox(destinations)

        await self._db.write(job, on_commit=committed)


def _chosen(held: list[str], device_id: str) -> list[str]:
    """The user's devices a message for ``device_id`` (``"*"``: all) goes to; unknown ids
    are skipped (client.md §4)."""
    return list(held) if device_id == "*" else [device_id] if device_id in held else []


def _message(
    key: TxnKey, event_type: str, user_id: str, device_id: str, content: JsonObject
) -> JsonObject:
    """A message for a user of another server, as federation.md §8 sends it (less its id)."""
    return {
        "sender": key[0],
        "sender_device": key[1],
        "type": event_type,
        "user_id": user_id,
        "device_id": device_id,
        "content": content,
    }


def _devices_of(conn: sqlite3.Connection, users: list[str]) -> dict[str, list[str]]:
    """Each known user's device ids (users absent from the result do not exist)."""
    found: dict[str, list[str]] = {}
    for user_id in users:
        exists = conn.execute(
            "SELECT 1 FROM users WHERE user_id = ? AND deactivated = 0", (user_id,)
        ).fetchone()
        if exists is None:
            continue
        found[user_id] = [
            row[0]
            for row in conn.execute(
                "SELECT device_id FROM devices WHERE user_id = ? ORDER BY device_id", (user_id,)
            )
        ]
    return found
