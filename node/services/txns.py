"""Idempotent requests: a device's transaction id names a request, whatever happens to the
answer (spec/client.md §4 "Idempotence").

The first request with a txn id does its work and stores ``(user, device, txn id) →
result`` in the same transaction as its effects; a retry — after a lost answer, a reconnect
or a restart — finds the result and does nothing. A retry that arrives while the first is
still running waits for it.

Lookups are in memory: the first request of a device in this process loads that device's
transactions of the retention window (24 hours) in one read, and every later one is a dict
lookup — a database read per message would cost more than the message. Older
transactions are pruned from memory and from the database once an hour.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable

import trio

from node.clock import now_ms
from node.storage.db import Database

__all__ = ["RETENTION_MS", "Transactions", "TxnKey", "store_txn"]

TxnKey = tuple[str, str, str]
"""``(user id, device id, txn id)``."""

RETENTION_MS = 24 * 3600 * 1000
"""How long a transaction id is remembered (spec/client.md §4: at least 24 hours)."""
_PRUNE_EVERY_S = 3600.0


class Transactions:
    """Runs a request once per txn key. Owns the ``txns`` table with its callers."""

    def __init__(self, db: Database, clock_ms: Callable[[], int] = now_ms) -> None:
        self._db = db
        self._clock_ms = clock_ms
        self._known: dict[tuple[str, str], dict[str, tuple[str, int]]] = {}
        self._running: dict[TxnKey, trio.Event] = {}

    async def once(self, key: TxnKey, run: Callable[[], Awaitable[str]]) -> str:
        """``run()``'s result, running it only if no request with ``key`` ran before.

        ``run`` must store the key with :func:`store_txn` in the transaction of its effects.
        """
        while key in self._running:
            await self._running[key].wait()
        done = self._running[key] = trio.Event()
        try:
            device = await self._device(key[0], key[1])
            known = device.get(key[2])
            if known is not None:
                return known[0]
            result = await run()
            device[key[2]] = (result, self._clock_ms())
            return result
        finally:
            del self._running[key]
            done.set()

    async def seen(self, key: TxnKey) -> bool:
        """Whether a request with ``key`` ran (for callers that store many keys at once)."""
        return key[2] in await self._device(key[0], key[1])

    def remember(self, keys: list[TxnKey], result: str) -> None:
        """Note keys a caller stored with :func:`store_txn` (after the commit)."""
        now = self._clock_ms()
        for user_id, device_id, txn_id in keys:
            device = self._known.get((user_id, device_id))
            if device is not None:  # otherwise loaded, with these, when first needed
                device[txn_id] = (result, now)

    async def _device(self, user_id: str, device_id: str) -> dict[str, tuple[str, int]]:
        """The device's remembered transactions, loaded from the database on first use."""
        device = self._known.get((user_id, device_id))
        if device is None:
            since = self._clock_ms() - RETENTION_MS
            rows = await self._db.read(lambda conn: _load(conn, user_id, device_id, since))
            device = self._known.setdefault((user_id, device_id), rows)
        return device

    def forget_device(self, user_id: str, device_id: str) -> None:
        """The device is gone (its rows went with it)."""
        self._known.pop((user_id, device_id), None)

    async def prune(self) -> None:
        """Drop transactions older than the retention window, in memory and on disk."""
        cutoff = self._clock_ms() - RETENTION_MS
        for device in self._known.values():
            for txn_id in [t for t, (_, ts) in device.items() if ts < cutoff]:
                del device[txn_id]
        await self._db.write(
            lambda conn: conn.execute("DELETE FROM txns WHERE created_ts < ?", (cutoff,))
        )

    async def run(self) -> None:
        """Prune once an hour (in the node's nursery)."""
        while True:
            await trio.sleep(_PRUNE_EVERY_S)
            await self.prune()


def store_txn(conn: sqlite3.Connection, key: TxnKey, result: str, now_ms: int) -> None:
    """Record a request's result (inside the writer's transaction of its effects)."""
    conn.execute(
        "INSERT INTO txns (user_id, device_id, txn_id, result, created_ts) VALUES (?, ?, ?, ?, ?)",
        (*key, result, now_ms),
    )


def _load(
    conn: sqlite3.Connection, user_id: str, device_id: str, since: int
) -> dict[str, tuple[str, int]]:
    rows = conn.execute(
        "SELECT txn_id, result, created_ts FROM txns WHERE user_id = ? AND device_id = ? "
        "AND created_ts >= ?",
        (user_id, device_id, since),
    ).fetchall()
    return {str(txn_id): (str(result), int(ts)) for txn_id, result, ts in rows}
