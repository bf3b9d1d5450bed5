"""Sending queued events to each destination server (spec/federation.md §3.3, §8).

Rooms queue every event for its destinations in the same database transaction that stores
it (``fed_outbox``), and to-device messages for other servers are queued the same way
(``fed_to_device``). Here one task per destination sends those queues in order — events in
transactions of at most 100 events and 3 MiB, to-device messages with the ``to_device`` op
in batches of at most 100 — one request at a time, and deletes what the destination
acknowledged. Ephemeral data (EDUs) waits in memory only and rides along in the next
transaction; it is best-effort, so a failed transaction drops it.

A failure — no link, an error answer, a link lost before the answer — leaves the queues as
they are and waits before retrying: 1 s, doubling to 300 s, times a random factor in
[0.5, 1.5]; a link to the destination coming up ends the wait at once, so a node that
returns is caught up without waiting for new traffic.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections import deque
from collections.abc import Iterable
from functools import partial
from typing import Final

import trio

from node.federation.links import LinkError, Links
from node.federation.peer_link import LinkClosedError
from node.log import get_log
from node.storage.db import Database
from protocol import JsonObject, RemoteProtocolError
from protocol.federation.ops import MAX_EDUS, MAX_PDUS, MAX_TO_DEVICE_MESSAGES

__all__ = ["Outbox"]

log = get_log(__name__)

MAX_TXN_BYTES: Final = 3 * 1024 * 1024
"""§3.3: a transaction's events stay well within the 4 MiB frame."""
FIRST_RETRY_S: Final = 1.0
MAX_RETRY_S: Final = 300.0
TXN_TIMEOUT_S: Final = 120.0
MAX_PENDING_EDUS: Final = 10_000
"""EDUs waiting for one destination; beyond this the oldest are dropped (best-effort)."""

_Row = tuple[int, str, str]
"""(position or id, event id or message id, stored JSON)."""


class Outbox:
    """One sender per destination with queued events."""

    def __init__(
        self,
        db: Database,
        links: Links,
        *,
        first_retry_s: float = FIRST_RETRY_S,
        max_retry_s: float = MAX_RETRY_S,
        rng: random.Random | None = None,
    ) -> None:
        self._db = db
        self._links = links
        self._first_retry_s = first_retry_s
        self._max_retry_s = max_retry_s
        self._rng = rng or random.Random()
        self._wake: dict[str, trio.Event] = {}
        self._edus: dict[str, deque[JsonObject]] = {}
        self._nursery: trio.Nursery | None = None
        self._txn_ids = 0
        self.sent_events = 0
        """Events acknowledged by their destinations since start (for benchmarks)."""

    async def start(self, nursery: trio.Nursery) -> None:
        """Start a sender for every destination with anything queued at start (catch-up)."""
        self._nursery = nursery
        destinations = await self._db.read(
            lambda conn: [
                r[0]
                for r in conn.execute(
                    "SELECT destination FROM fed_outbox UNION SELECT destination FROM fed_to_device"
                )
            ]
        )
        self.notify(destinations)

    def queue_edu(self, destinations: Iterable[str], edu: JsonObject) -> None:
        """Send ``edu`` to these servers with their next transaction (§8, best-effort)."""
        chosen = list(destinations)
        for destination in chosen:
            pending = self._edus.setdefault(destination, deque(maxlen=MAX_PENDING_EDUS))
            pending.append(edu)
        self.notify(chosen)

    def notify(self, destinations: Iterable[str]) -> None:
        """New events are queued for these destinations (called after the commit)."""
        for destination in destinations:
            wake = self._wake.get(destination)
            if wake is not None:
                wake.set()
            elif self._nursery is not None:
                self._wake[destination] = trio.Event()
                self._nursery.start_soon(self._send_loop, destination)

    async def _send_loop(self, destination: str) -> None:
        failures = 0
        while True:
            self._wake[destination] = wake = trio.Event()
            events, messages = await self._db.read(lambda conn: _queued(conn, destination))
            pending = self._edus.get(destination)
            edus = (
                [pending.popleft() for _ in range(min(len(pending), MAX_EDUS))] if pending else []
            )
            if not events and not messages and not edus:
                await wake.wait()
                continue
            batch = _fit(events)
            try:
                if batch or edus:
                    await self._send_txn(destination, batch, edus)
                    if batch:
                        await self._db.write(
                            partial(_acknowledged, destination=destination, upto=batch[-1][0])
                        )
                        self.sent_events += len(batch)
                if messages:
                    sent = _fit(messages)
                    await self._send_to_device(destination, sent)
                    await self._db.write(
                        partial(_delivered, destination=destination, upto=sent[-1][0])
                    )
            except (LinkError, LinkClosedError, RemoteProtocolError, trio.TooSlowError) as exc:
                failures += 1
                delay = min(self._max_retry_s, self._first_retry_s * 2 ** (failures - 1))
                delay *= self._rng.uniform(0.5, 1.5)
                log.info(
                    "outbox_retry",
                    destination=destination,
                    events=len(batch),
                    messages=len(messages),
                    failures=failures,
                    delay_s=round(delay, 3),
                    why=str(exc)[:200],
                )
                with trio.move_on_after(delay):
                    if isinstance(exc, (LinkError, LinkClosedError)):
                        # §3.3: a link that is (or comes) up is used at once.
                        await self._links.wait_for_link(destination)
                    else:  # the peer answered with an error or not in time: wait
                        await trio.sleep_forever()
                continue
            failures = 0

    async def _send_to_device(self, destination: str, batch: list[_Row]) -> None:
        link = await self._links.get(destination)
        messages = [{**json.loads(text), "message_id": message_id} for _, message_id, text in batch]
        await link.request("to_device", {"messages": messages}, timeout=TXN_TIMEOUT_S)

    async def _send_txn(self, destination: str, batch: list[_Row], edus: list[JsonObject]) -> None:
        link = await self._links.get(destination)
        pdus: list[JsonObject] = [json.loads(text) for _, _, text in batch]
        self._txn_ids += 1
        txn_id = f"{batch[0][0]}-{batch[-1][0]}" if batch else f"edus-{self._txn_ids}"
        result = await link.request(
            "txn", {"txn_id": txn_id, "pdus": pdus, "edus": edus}, timeout=TXN_TIMEOUT_S
        )
        outcomes = result.get("pdus")
        if isinstance(outcomes, list):
            for (_, event_id, _), outcome in zip(batch, outcomes, strict=False):
                if isinstance(outcome, dict) and outcome.get("outcome") not in (
                    "accepted",
                    "duplicate",
                ):
                    log.info(
                        "outbox_event_not_accepted",
                        destination=destination,
                        event_id=event_id,
                        outcome=str(outcome.get("outcome"))[:32],
                        reason=str(outcome.get("reason"))[:64],
                    )


def _queued(conn: sqlite3.Connection, destination: str) -> tuple[list[_Row], list[_Row]]:
    """The first events and the first to-device messages queued for ``destination``."""
    events = conn.execute(
        "SELECT o.position, o.event_id, e.json FROM fed_outbox o "
        "JOIN events e ON e.event_id = o.event_id "
        "WHERE o.destination = ? ORDER BY o.position LIMIT ?",
        (destination, MAX_PDUS),
    ).fetchall()
    messages = conn.execute(
        "SELECT id, CAST(id AS TEXT), json FROM fed_to_device WHERE destination = ? "
        "ORDER BY id LIMIT ?",
        (destination, MAX_TO_DEVICE_MESSAGES),
    ).fetchall()
    return events, messages


def _acknowledged(conn: sqlite3.Connection, *, destination: str, upto: int) -> None:
    conn.execute(
        "DELETE FROM fed_outbox WHERE destination = ? AND position <= ?", (destination, upto)
    )


def _delivered(conn: sqlite3.Connection, *, destination: str, upto: int) -> None:
    conn.execute("DELETE FROM fed_to_device WHERE destination = ? AND id <= ?", (destination, upto))


def _fit(rows: list[_Row]) -> list[_Row]:
    """The longest prefix of ``rows`` within :data:`MAX_TXN_BYTES` (at least one row)."""
    total = 0
    for index, (_, _, text) in enumerate(rows):
        total += len(text.encode())
        if total > MAX_TXN_BYTES and index > 0:
            return rows[:index]
    return rows
