"""Idempotent requests: a device's transaction id names a request, whatever happens to the
answer (spec/client.md §4 "Idempotence").

The first request with a txn id does its work and stores ``(user, device, txn id) →
result`` in the same transaction as its effects; a retry — after a lost answer, a reconnect
or a restart — finds the result and does nothing. A retry that arrives while the first is
still running waits for it. Recent results are also kept in memory.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Awaitable, Callable

import trio

from node.storage.db import Database

__all__ = ["Transactions", "TxnKey", "store_txn"]

TxnKey = tuple[str, str, str]
"""``(user id, device id, txn id)``."""

_REMEMBERED = 10_000


class Transactions:
    """Runs a request once per txn key. Owns the ``txns`` table with its callers."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._recent: collections.OrderedDict[TxnKey, str] = collections.OrderedDict()
        self._running: dict[TxnKey, trio.Event] = {}

    async def once(self, key: TxnKey, run: Callable[[], Awaitable[str]]) -> str:
        """``run()``'s result, running it only if no request with ``key`` ran before.

        ``run`` must store the key with :func:`store_txn` in the transaction of its effects.
        """
        while key in self._running:
            await self._running[key].wait()
        known = self._recent.get(key)
        if known is not None:
            return known
        done = self._running[key] = trio.Event()
        try:
            stored = await self._db.read(lambda conn: _lookup(conn, key))
            result = stored if stored is not None else await run()
        finally:
            del self._running[key]
            done.set()
        self._recent[key] = result
        while len(self._recent) > _REMEMBERED:
            self._recent.popitem(last=False)
        return result


def store_txn(conn: sqlite3.Connection, key: TxnKey, result: str, now_ms: int) -> None:
    """Record a request's result (inside the writer's transaction of its effects)."""
    conn.execute(
        "INSERT INTO txns (user_id, device_id, txn_id, result, created_ts) VALUES (?, ?, ?, ?, ?)",
        (*key, result, now_ms),
    )


def _lookup(conn: sqlite3.Connection, key: TxnKey) -> str | None:
    row = conn.execute(
        "SELECT result FROM txns WHERE user_id = ? AND device_id = ? AND txn_id = ?", key
    ).fetchone()
    return None if row is None else str(row[0])
