"""Every table of the node, declared in one place, and the migrations that create them.

Tables are named for what maps to what. Each service says which tables it owns; no other
module writes them. A migration is a function of a ``sqlite_utils.Database``; ``migrate``
runs the ones a database has not seen yet, in order, recording the version reached in the
``schema_version`` table — so a node upgraded in place migrates at start.

| table | owner | what |
|---|---|---|
| ``users`` | accounts | one row per local user: password hash, admin, deactivated |
| ``devices`` | accounts | a user's devices: token hash, names, stream cursor |
| ``rooms`` | rooms | rooms this node holds, by id |
| ``events`` | rooms | every event of every room, its verdict and stream position |
| ``stream`` | rooms, sync | the node's stream of items for devices, by position |
| ``memberships`` | rooms | local users' membership changes, by position (who sees what) |
| ``txns`` | rooms, to-device | a device's transaction ids and what they produced |
| ``receipts`` | receipts | each user's read position in each room |
| ``to_device`` | to-device | messages waiting for a device's acknowledgement |
| ``signouts`` | accounts (triggers) | devices removed and users deactivated, for the running node |
| ``server_keys`` | federation | each peer's pinned key object (federation.md §1.2) |
| ``fed_outbox`` | rooms, federation | events queued for each destination (federation.md §3.3) |
| ``fed_to_device`` | to-device, federation | to-device messages queued for each destination (§8) |
| ``device_keys`` | device keys | each device's identity key object (client.md §9) |
| ``one_time_keys`` | device keys | each device's one-time keys; claimed ones stay, emptied |
| ``fallback_keys`` | device keys | each device's fallback key |
| ``user_items`` | device keys, sync | stream items for one user's devices, or one device |
| ``device_changes`` | device keys (triggers) | devices with keys removed, for the running node |

A ``stream`` row's ``data`` holds what its item carries besides the event; for an event that
arrived late (client.md §5), the local users who see it.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate"]


def _v1(db: sqlite_utils.Database) -> None:
    db.table("users").create(
        {
            "user_id": str,
            "localpart": str,
            "password_hash": str,
            "admin": int,
            "deactivated": int,
            "created_ts": int,
        },
        pk="user_id",
        not_null={"localpart", "password_hash", "admin", "deactivated", "created_ts"},
    )
    db.table("devices").create(
        {
            "user_id": str,
            "device_id": str,
            "display_name": str,
            "token_hash": str,
            "created_ts": int,
            "last_seen_ts": int,
            "cursor": int,
        },
        pk=("user_id", "device_id"),
        not_null={"token_hash", "created_ts", "last_seen_ts", "cursor"},
    )
    db.table("devices").create_index(["token_hash"], unique=True)
    db.table("rooms").create(
        {"room_id": str, "create_event_id": str, "direct": int, "created_ts": int},
        pk="room_id",
        not_null={"create_event_id", "direct", "created_ts"},
    )
    db.table("events").create(
        {
            "event_id": str,
            "room_id": str,
            "position": int,
            "depth": int,
            "sender": str,
            "type": str,
            "state_key": str,
            "accepted": int,
            "reason": str,
            "json": str,
            "sender_device": str,
            "txn_id": str,
            "redacted_by": str,
        },
        pk="event_id",
        not_null={"room_id", "position", "depth", "sender", "type", "accepted", "json"},
    )
    db.table("events").create_index(["room_id", "depth", "event_id"])
    db.table("events").create_index(["position"], unique=True)
    db.table("events").create_index(["room_id", "position"])
    db.table("stream").create(
        {
            "position": int,
            "kind": str,
            "room_id": str,
            "event_id": str,
            "user_id": str,
            "data": str,
        },
        pk="position",
        not_null={"kind"},
    )
    db.table("stream").create_index(["room_id", "position"])
    db.table("memberships").create(
        {"room_id": str, "user_id": str, "position": int, "membership": str},
        pk=("user_id", "room_id", "position"),
        not_null={"membership"},
    )
    db.table("txns").create(
        {"user_id": str, "device_id": str, "txn_id": str, "result": str, "created_ts": int},
        pk=("user_id", "device_id", "txn_id"),
        not_null={"result", "created_ts"},
    )
    db.table("receipts").create(
        {"room_id": str, "user_id": str, "event_id": str, "position": int},
        pk=("room_id", "user_id"),
        not_null={"event_id", "position"},
    )
    db.table("to_device").create(
        {
            "position": int,
            "user_id": str,
            "device_id": str,
            "sender": str,
            "sender_device": str,
            "type": str,
            "content": str,
        },
        pk="position",
        not_null={"user_id", "device_id", "sender", "sender_device", "type", "content"},
    )
    db.table("to_device").create_index(["user_id", "device_id", "position"])
    # A deleted device — by logout, revocation or the `kith user` command — takes what was
    # waiting for it and its transaction ids along.
    db.execute(
        "CREATE TRIGGER devices_deleted AFTER DELETE ON devices BEGIN "
        "DELETE FROM to_device WHERE user_id = old.user_id AND device_id = old.device_id; "
        "DELETE FROM txns WHERE user_id = old.user_id AND device_id = old.device_id; END"
    )


def _v2(db: sqlite_utils.Database) -> None:
    """The sign-out log: ``kith user`` changes accounts from another process, and the running
    node signs out the connections concerned by reading only the rows added since it last
    looked — work in proportion to changes, not to connected devices. Triggers fill it, so
    no path that removes a device or deactivates a user can forget to."""
    db.execute(
        "CREATE TABLE signouts (id INTEGER PRIMARY KEY, user_id TEXT NOT NULL, "
        "device_id TEXT, reason TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TRIGGER devices_signout AFTER DELETE ON devices BEGIN "
        "INSERT INTO signouts (user_id, device_id, reason) "
        "VALUES (old.user_id, old.device_id, 'revoked'); END"
    )
    db.execute(
        "CREATE TRIGGER users_signout AFTER UPDATE OF deactivated ON users "
        "WHEN new.deactivated AND NOT old.deactivated BEGIN "
        "INSERT INTO signouts (user_id, device_id, reason) "
        "VALUES (new.user_id, NULL, 'user_deactivated'); END"
    )


def _v3(db: sqlite_utils.Database) -> None:
    """Federation: pinned server keys and the per-destination outbox. (Peers read a room's
    history in causal order — depth, then id — through the index ``_v1`` made.)"""
    db.table("server_keys").create(
        {"server_name": str, "ts": int, "json": str}, pk="server_name", not_null={"ts", "json"}
    )
    db.table("fed_outbox").create(
        {"destination": str, "position": int, "event_id": str},
        pk=("destination", "position"),
        not_null={"event_id"},
    )


def _v4(db: sqlite_utils.Database) -> None:
    """Federation: to-device messages queued for other servers (federation.md §8). The id
    is the message's ``message_id`` for its destination, so it must never be reused."""
    db.execute(
        "CREATE TABLE fed_to_device (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "destination TEXT NOT NULL, json TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX fed_to_device_destination ON fed_to_device (destination, id)")


def _v5(db: sqlite_utils.Database) -> None:
    """Device keys (client.md §9). A claimed one-time key keeps its row, without the key,
    so that an upload retried after a claim cannot publish it a second time. Stream items
    that belong to no room — a user's ``device_list_update``, a device's ``key_counts`` —
    are ``user_items``: one row per user it is for, all at the item's one position. A
    removed device takes its keys and items along; if it had published keys, the
    ``device_changes`` log tells the running node, whatever process removed it, so that
    the user's contacts hear of it (client.md §9)."""
    db.execute(
        "CREATE TABLE device_keys (user_id TEXT NOT NULL, device_id TEXT NOT NULL, "
        "json TEXT NOT NULL, created_ts INTEGER NOT NULL, PRIMARY KEY (user_id, device_id))"
    )
    db.execute(
        "CREATE TABLE one_time_keys (user_id TEXT NOT NULL, device_id TEXT NOT NULL, "
        "key_id TEXT NOT NULL, json TEXT, PRIMARY KEY (user_id, device_id, key_id))"
    )
    db.execute(
        "CREATE INDEX one_time_keys_unclaimed ON one_time_keys (user_id, device_id, key_id) "
        "WHERE json IS NOT NULL"
    )
    db.execute(
        "CREATE TABLE fallback_keys (user_id TEXT NOT NULL, device_id TEXT NOT NULL, "
        "key_id TEXT NOT NULL, json TEXT NOT NULL, PRIMARY KEY (user_id, device_id))"
    )
    db.execute(
        "CREATE TABLE user_items (user_id TEXT NOT NULL, position INTEGER NOT NULL, "
        "device_id TEXT, kind TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (user_id, position))"
    )
    db.execute(
        "CREATE TABLE device_changes (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "user_id TEXT NOT NULL, device_id TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TRIGGER devices_keys_deleted AFTER DELETE ON devices BEGIN "
        "INSERT INTO device_changes (user_id, device_id) SELECT old.user_id, old.device_id "
        "WHERE EXISTS (SELECT 1 FROM device_keys "
        "WHERE user_id = old.user_id AND device_id = old.device_id); "
        "DELETE FROM device_keys WHERE user_id = old.user_id AND device_id = old.device_id; "
        "DELETE FROM one_time_keys WHERE user_id = old.user_id AND device_id = old.device_id; "
        "DELETE FROM fallback_keys WHERE user_id = old.user_id AND device_id = old.device_id; "
        "DELETE FROM user_items WHERE user_id = old.user_id AND device_id = old.device_id; END"
    )


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (_v1, _v2, _v3, _v4, _v5)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite_utils.Database) -> int:
    """Bring ``db`` to ``SCHEMA_VERSION``; return the version it had before."""
    if "schema_version" not in db.table_names():
        db.table("schema_version").create({"version": int}, not_null={"version"})
        db.table("schema_version").insert({"version": 0})
    row = db.execute("SELECT version FROM schema_version").fetchone()
    before = int(row[0])
    if before > SCHEMA_VERSION:
        raise RuntimeError(
            f"the database is at schema version {before}; this node knows {SCHEMA_VERSION}"
        )
    for version in range(before, SCHEMA_VERSION):
        with db.conn:
            MIGRATIONS[version](db)
            db.execute("UPDATE schema_version SET version = ?", [version + 1])
    return before
