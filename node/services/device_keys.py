"""Device keys: identity keys, one-time keys and fallback keys devices publish on their node,
handed to other devices that query and claim them (spec/client.md §9).

A claim takes one one-time key in one database transaction — the writer runs one job at a
time, so two claims never get the same key — and empties its row rather than deleting it, so
that an upload retried after the claim cannot publish the key again. When a claim leaves a
device with fewer than :data:`LOW_STOCK` one-time keys, the device gets a ``key_counts``
item on its stream, stored with the claim.

When a device publishes its identity keys for the first time, or a device that had them is
removed, the user's device list changed: the local users who share a joined room with the
user, and the user's own devices, get a ``device_list_update`` item, and listeners of
``on_local_change`` (federation) tell the other servers of those rooms. Removals are read from
the ``device_changes`` log that a trigger fills, whatever process removed the device.

Owns the ``device_keys``, ``one_time_keys``, ``fallback_keys`` and ``device_changes``
tables, and, with the stream, ``user_items``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import trio

from node.clock import now_ms
from node.log import get_log
from node.services.rooms import RoomService
from node.services.stream import Item, Stream
from node.storage.db import Database
from protocol import ErrorCode, JsonObject, RemoteProtocolError
from protocol.device_keys import (
    MAX_STORED_ONE_TIME_KEYS,
    ONE_TIME_KEY_ALGORITHM,
    DeviceKeys,
    check_device_keys,
    check_one_time_keys,
)

__all__ = ["LOW_STOCK", "DeviceKeyService"]

log = get_log(__name__)

LOW_STOCK: Final = 10
"""client.md §9: a claim that leaves a device fewer one-time keys than this tells it so."""

Claim = dict[str, dict[str, dict[str, JsonObject]]]
"""user → device → ``{key id: key}``: what a claim hands out."""


@dataclass(frozen=True, slots=True)
class _Upload:
    user_id: str
    device_id: str
    device: DeviceKeys | None
    """The identity keys to store, when this upload brings them for the first time."""
    one_time: dict[str, JsonObject]
    fallback: dict[str, JsonObject]


def _forbidden(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.FORBIDDEN, message)


class DeviceKeyService:
    """Stores, hands out and announces the keys of this node's devices."""

    def __init__(
        self,
        db: Database,
        stream: Stream,
        rooms: RoomService,
        *,
        check_interval_s: float,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self._db = db
        self._check_interval_s = check_interval_s
        self._stream = stream
        self._rooms = rooms
        self._clock_ms = clock_ms
        self._removals = trio.Lock()
        self._nudged = trio.Event()
        self.on_local_change: list[Callable[[str], None]] = []
        """Told, after the commit, each local user whose device list changed (federation)."""

    # --- uploading ------------------------------------------------------------------------

    async def upload(self, user_id: str, device_id: str, params: JsonObject) -> JsonObject:
        """``upload_keys`` of device ``device_id``: check everything, store it in one
        transaction, and return ``{one_time_key_counts}``."""
        stored_json = await self._db.read(lambda conn: _stored_keys(conn, user_id, device_id))
        stored = check_device_keys(json.loads(stored_json)) if stored_json else None
        fresh: DeviceKeys | None = None
        if "device_keys" in params:
            fresh = check_device_keys(params["device_keys"], user_id, device_id)
            if stored is not None and _key_pair(stored) != _key_pair(fresh):
                raise _forbidden("a device's identity keys never change")
        device = stored or fresh
        wants_keys = "one_time_keys" in params or "fallback_key" in params
        if device is None and wants_keys:
            raise _forbidden("a device publishes its identity keys first, or with its keys")
        assert device is not None or not wants_keys
        upload = _Upload(
            user_id,
            device_id,
            fresh if stored is None else None,
            check_one_time_keys(params.get("one_time_keys", {}), device) if device else {},
            check_one_time_keys(params["fallback_key"], device, fallback=True)
            if device and "fallback_key" in params
            else {},
        )
        audience = self._audience(user_id) if upload.device is not None else frozenset()
        position = self._stream.allocate() if audience else 0
        last = self._stream.head
        now = self._clock_ms()

        def job(conn: sqlite3.Connection) -> tuple[JsonObject, list[Item]]:
            new = _store_upload(conn, upload, now)
            items = _list_items(conn, user_id, audience, position) if new and audience else []
            return {"one_time_key_counts": _counts(conn, user_id, device_id)}, items

        def committed(result: tuple[JsonObject, list[Item]]) -> None:
            self._stream.publish(result[1], last)
            if result[1]:
                log.info("device_keys_published", user_id=user_id, device_id=device_id)
                self._changed(user_id)

        answer, _ = await self._db.write(job, on_commit=committed)
        return answer

    # --- querying and claiming ------------------------------------------------------------

    async def query(self, user_ids: Iterable[str]) -> dict[str, dict[str, JsonObject]]:
        """The identity key objects of the devices of this node's ``user_ids`` (users
        without published keys are left out)."""
        local = sorted({u for u in user_ids if self._rooms.is_local(u)})
        return await self._db.read(lambda conn: _query(conn, local))

    async def claim(self, wanted: dict[str, dict[str, str]]) -> Claim:
        """One key of each named device of this node's users, each one-time key handed out
        once; the fallback key when none is left; nothing for unknown devices or
        algorithms. Devices left low get their ``key_counts`` item in the same transaction."""
        targets = [
            (user_id, device_id, algorithm)
            for user_id, devices in sorted(wanted.items())
            if self._rooms.is_local(user_id)
            for device_id, algorithm in sorted(devices.items())
            if algorithm == ONE_TIME_KEY_ALGORITHM
        ]
        if not targets:
            return {}
        positions = [self._stream.allocate() for _ in targets]
        last = self._stream.head

        def job(conn: sqlite3.Connection) -> tuple[Claim, list[Item]]:
            return _claim(conn, targets, positions)

        def committed(result: tuple[Claim, list[Item]]) -> None:
            self._stream.publish(result[1], last)

        claimed, _ = await self._db.write(job, on_commit=committed)
        return claimed

    # --- device lists ---------------------------------------------------------------------

    def _audience(self, user_id: str) -> frozenset[str]:
        """The local users who share a joined room with ``user_id``, and the user if local."""
        users: set[str] = {user_id} if self._rooms.is_local(user_id) else set()
        for room_id in self._rooms.rooms_joined_by(user_id):
            users.update(self._rooms.local_joined(room_id))
        return frozenset(users)

    def _changed(self, user_id: str) -> None:
        for listener in self.on_local_change:
            listener(user_id)

    async def announce(self, user_ids: list[str]) -> None:
        """Give each user's local contacts a ``device_list_update`` item (one position
        each): for a change of a local user this node noticed, or one another server told
        (federation.md §8.1)."""
        audiences = [(u, self._audience(u)) for u in user_ids]
        audiences = [(u, a) for u, a in audiences if a]
        if not audiences:
            return
        positions = [self._stream.allocate() for _ in audiences]
        last = self._stream.head

        def job(conn: sqlite3.Connection) -> list[Item]:
            return [
                item
                for (user_id, audience), position in zip(audiences, positions, strict=True)
                for item in _list_items(conn, user_id, audience, position)
            ]

        await self._db.write(job, on_commit=lambda items: self._stream.publish(items, last))

    def nudge(self) -> None:
        """A device was removed here: look at the removal log now, not at the next tick."""
        self._nudged.set()

    async def removals(self) -> int:
        """Act on the ``device_changes`` log: announce each user whose device with keys
        was removed, then drop the rows. How many users."""
        async with self._removals:
            rows = await self._db.read(
                lambda conn: conn.execute(
                    "SELECT id, user_id FROM device_changes ORDER BY id"
                ).fetchall()
            )
            if not rows:
                return 0
            users = sorted({user_id for _, user_id in rows})
            await self.announce(users)
            upto = rows[-1][0]
            await self._db.write(
                lambda conn: conn.execute("DELETE FROM device_changes WHERE id <= ?", (upto,))
            )
            for user_id in users:
                log.info("device_list_changed", user_id=user_id, reason="device_removed")
                self._changed(user_id)
            return len(users)

    async def run(self) -> None:
        """Watch the removal log (in the node's nursery): at once when nudged, and every
        ``check_interval_s`` for removals by another process (``kith user``)."""
        while True:
            try:
                await self.removals()
            except Exception:
                log.exception("device_changes_failed")
            with trio.move_on_after(self._check_interval_s):
                await self._nudged.wait()
            self._nudged = trio.Event()


# --- storage (on the database's threads) -------------------------------------------------


def _key_pair(device: DeviceKeys) -> tuple[str, str]:
    return device.curve25519, device.ed25519


def _stored_keys(conn: sqlite3.Connection, user_id: str, device_id: str) -> str | None:
    row = conn.execute(
        "SELECT json FROM device_keys WHERE user_id = ? AND device_id = ?", (user_id, device_id)
    ).fetchone()
    return None if row is None else str(row[0])


def _store_upload(conn: sqlite3.Connection, upload: _Upload, now: int) -> bool:
    """Store an upload; True if it published the device's identity keys for the first time."""
    user_id, device_id = upload.user_id, upload.device_id
    if (
        conn.execute(
            "SELECT 1 FROM devices WHERE user_id = ? AND device_id = ?", (user_id, device_id)
        ).fetchone()
        is None
    ):
        raise RemoteProtocolError(ErrorCode.NOT_FOUND, "the device was removed")
    new = False
    if upload.device is not None:
        stored = _stored_keys(conn, user_id, device_id)
        if stored is None:
            conn.execute(
                "INSERT INTO device_keys (user_id, device_id, json, created_ts) "
                "VALUES (?, ?, ?, ?)",
                (user_id, device_id, json.dumps(upload.device.obj), now),
            )
            new = True
        elif _key_pair(check_device_keys(json.loads(stored))) != _key_pair(upload.device):
            raise _forbidden("a device's identity keys never change")  # a concurrent upload
    for key_id, key in upload.one_time.items():
        # An id seen before — unclaimed or claimed — is never stored again.
        conn.execute(
            "INSERT OR IGNORE INTO one_time_keys (user_id, device_id, key_id, json) "
            "VALUES (?, ?, ?, ?)",
            (user_id, device_id, key_id, json.dumps(key)),
        )
    if _counts(conn, user_id, device_id)[ONE_TIME_KEY_ALGORITHM] > MAX_STORED_ONE_TIME_KEYS:
        raise RemoteProtocolError(
            ErrorCode.TOO_LARGE, f"a device has at most {MAX_STORED_ONE_TIME_KEYS} one-time keys"
        )
    for key_id, key in upload.fallback.items():
        conn.execute(
            "INSERT OR REPLACE INTO fallback_keys (user_id, device_id, key_id, json) "
            "VALUES (?, ?, ?, ?)",
            (user_id, device_id, key_id, json.dumps(key)),
        )
    return new


def _counts(conn: sqlite3.Connection, user_id: str, device_id: str) -> dict[str, int]:
    row = conn.execute(
        "SELECT count(*) FROM one_time_keys WHERE user_id = ? AND device_id = ? "
        "AND json IS NOT NULL",
        (user_id, device_id),
    ).fetchone()
    return {ONE_TIME_KEY_ALGORITHM: int(row[0])}


def _list_items(
    conn: sqlite3.Connection, user_id: str, audience: frozenset[str], position: int
) -> list[Item]:
    """A ``device_list_update`` about ``user_id`` for ``audience``, stored and to publish."""
    data = {"user_id": user_id}
    conn.executemany(
        "INSERT INTO user_items (user_id, position, device_id, kind, data) "
        "VALUES (?, ?, NULL, 'device_list_update', ?)",
        [(member, position, json.dumps(data)) for member in sorted(audience)],
    )
    payload = {"position": position, "kind": "device_list_update", **data}
    return [Item(position, "device_list_update", payload, audience=audience)]


def _active(conn: sqlite3.Connection, user_id: str) -> bool:
    """A deactivated user's devices can no longer read: their keys are not handed out."""
    row = conn.execute(
        "SELECT 1 FROM users WHERE user_id = ? AND deactivated = 0", (user_id,)
    ).fetchone()
    return row is not None


def _query(conn: sqlite3.Connection, user_ids: list[str]) -> dict[str, dict[str, JsonObject]]:
    found: dict[str, dict[str, JsonObject]] = {}
    for user_id in user_ids:
        if not _active(conn, user_id):
            continue
        for device_id, text in conn.execute(
            "SELECT device_id, json FROM device_keys WHERE user_id = ? ORDER BY device_id",
            (user_id,),
        ):
            found.setdefault(user_id, {})[device_id] = json.loads(text)
    return found


def _claim(
    conn: sqlite3.Connection, targets: list[tuple[str, str, str]], positions: list[int]
) -> tuple[Claim, list[Item]]:
    claimed: Claim = {}
    items: list[Item] = []
    active = {user_id: _active(conn, user_id) for user_id, _, _ in targets}
    for (user_id, device_id, _), position in zip(targets, positions, strict=True):
        if not active[user_id]:
            continue
        row: Any = conn.execute(
            "SELECT key_id, json FROM one_time_keys WHERE user_id = ? AND device_id = ? "
            "AND json IS NOT NULL ORDER BY key_id LIMIT 1",
            (user_id, device_id),
        ).fetchone()
        if row is not None:
            conn.execute(
                "UPDATE one_time_keys SET json = NULL "
                "WHERE user_id = ? AND device_id = ? AND key_id = ?",
                (user_id, device_id, row[0]),
            )
        else:
            row = conn.execute(
                "SELECT key_id, json FROM fallback_keys WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            ).fetchone()
            if row is None:
                continue
        claimed.setdefault(user_id, {})[device_id] = {row[0]: json.loads(row[1])}
        counts = _counts(conn, user_id, device_id)
        if counts[ONE_TIME_KEY_ALGORITHM] < LOW_STOCK:
            items.append(_key_counts_item(conn, user_id, device_id, counts, position))
    return claimed, items


def _key_counts_item(
    conn: sqlite3.Connection, user_id: str, device_id: str, counts: dict[str, int], position: int
) -> Item:
    """A ``key_counts`` item for one device; it replaces the device's earlier one, which
    says less (so a device claimed from while away gets one, not one per claim)."""
    data = {"one_time_key_counts": counts}
    conn.execute(
        "DELETE FROM user_items WHERE user_id = ? AND device_id = ? AND kind = 'key_counts'",
        (user_id, device_id),
    )
    conn.execute(
        "INSERT INTO user_items (user_id, position, device_id, kind, data) "
        "VALUES (?, ?, ?, 'key_counts', ?)",
        (user_id, position, device_id, json.dumps(data)),
    )
    payload = {"position": position, "kind": "key_counts", **data}
    return Item(position, "key_counts", payload, device=(user_id, device_id))
