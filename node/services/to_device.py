"""To-device messages: from one device to others, kept until each target acknowledges it
(spec/client.md §4 ``send_to_device``, §5 items of kind ``to_device``).

End-to-end encryption depends on these: room keys travel as to-device messages, and a lost
key is a message nobody can read. So each message is stored — one row per target device, at
its own stream position — and deleted only when that device acknowledges a position at or
after it. Owns the ``to_device`` table with the stream, and its ``txns`` rows.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable

from node.services.stream import Item, Stream
from node.services.txns import Transactions, TxnKey, store_txn
from node.storage.db import Database
from protocol import ErrorCode, JsonObject, RemoteProtocolError

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

    async def send(
        self,
        key: TxnKey,
        event_type: str,
        messages: dict[str, dict[str, JsonObject]],
    ) -> None:
        """Queue ``messages`` (user → device or ``"*"`` → content) from device ``key[:2]``."""
        for user_id in messages:
            if not self._is_local(user_id):
                raise RemoteProtocolError(
                    ErrorCode.NOT_FOUND, f"{user_id} is on another node (no federation yet)"
                )

        async def run() -> str:
            devices = await self._db.read(lambda conn: _devices_of(conn, list(messages)))
            targets: list[tuple[str, str, JsonObject]] = []
            for user_id, by_device in messages.items():
                if user_id not in devices:
                    raise RemoteProtocolError(ErrorCode.NOT_FOUND, f"no user {user_id}")
                for device_id, content in by_device.items():
                    chosen = devices[user_id] if device_id == "*" else [device_id]
                    targets += [(user_id, d, content) for d in chosen if d in devices[user_id]]
            await self._store(key, event_type, targets)
            return "{}"

        await self._txns.once(key, run)

    async def _store(
        self, key: TxnKey, event_type: str, targets: list[tuple[str, str, JsonObject]]
    ) -> None:
        sender, sender_device, _ = key
        rows: list[tuple[int, str, str, str, str, str, str]] = []
        items: list[Item] = []
        for user_id, device_id, content in targets:
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

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO to_device (position, user_id, device_id, sender, sender_device, "
                "type, content) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            store_txn(conn, key, "{}", int(time.time() * 1000))

        await self._db.write(job, on_commit=lambda _: self._stream.publish(items, last))


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
