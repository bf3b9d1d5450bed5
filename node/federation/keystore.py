"""Peers' pinned key objects (spec/federation.md §1.2) and the keys that verify their events.

A node learns a peer's key object when a link opens (the peer's ``link_hello`` or its
answer) and when a peer relays events of third servers (``keys`` of ``txn``,
``get_missing`` and ``backfill``). Every object goes through :func:`pin`: the first one seen
for a server is trusted, later ones must be newer and co-signed by a current pinned key.
Pins live in the ``server_keys`` table and in memory, so verifying an event never waits.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping

import nacl.signing

from node.log import get_log
from node.storage.db import Database
from protocol import ErrorCode, JsonObject, RemoteProtocolError, parse_user_id
from protocol.federation.keys import ServerKeys, parse_key_object, pin

__all__ = ["KeyStore"]

log = get_log(__name__)


class KeyStore:
    """The pinned key object of every server this node has met, its own included."""

    def __init__(self, db: Database, own: ServerKeys) -> None:
        self._db = db
        self._pins: dict[str, ServerKeys] = {own.server_name: own}
        self._own_name = own.server_name

    async def load(self) -> None:
        """Read every pin from the database (the node's own object is always current)."""
        rows = await self._db.read(
            lambda conn: conn.execute("SELECT server_name, json FROM server_keys").fetchall()
        )
        for server_name, text in rows:
            if server_name != self._own_name:
                self._pins[server_name] = parse_key_object(json.loads(text))

    def get(self, server_name: str) -> ServerKeys | None:
        """The pinned object of ``server_name``, if any."""
        return self._pins.get(server_name)

    def objects(self, server_names: Iterable[str]) -> list[JsonObject]:
        """The pinned key objects of these servers, as received (to relay them, §3.1)."""
        found = (self._pins.get(name) for name in dict.fromkeys(server_names))
        return [keys.source for keys in found if keys is not None]

    async def learn(self, obj: object) -> ServerKeys:
        """Check a received key object and pin it by §1.2; return what is pinned now.

        Raises the ``RemoteProtocolError`` of §1.1 or §1.2; an object for this node's own
        name is refused (``forbidden``): nobody else speaks for this node's keys.
        """
        received = parse_key_object(obj)
        name = received.server_name
        if name == self._own_name:
            own = self._pins[name]
            if received.source == own.source:
                return own
            raise RemoteProtocolError(ErrorCode.FORBIDDEN, "a key object of this node's own name")
        pinned = self._pins.get(name)
        kept = pin(pinned, received)
        if kept is not pinned:
            await self._db.write(lambda conn: _store(conn, kept))
            self._pins[name] = kept
            log.info(
                "server_keys_pinned",
                server=name,
                key_ts=kept.ts,
                keys=",".join(sorted(kept.verify_keys)),
                first=pinned is None,
            )
        return kept

    async def learn_all(self, objects: Iterable[object]) -> None:
        """Pin every object that checks; one that does not is logged and skipped (the
        events it would have verified are then refused with ``unknown_key``)."""
        for obj in objects:
            try:
                await self.learn(obj)
            except RemoteProtocolError as exc:
                log.info("server_keys_refused", code=exc.code, why=exc.message[:200])

    def event_keys(self, event: JsonObject) -> Mapping[str, Mapping[str, nacl.signing.VerifyKey]]:
        """The keys that may verify ``event`` (§1.3), for ``protocol.verify_event``.

        Only the sender's server's keys matter; the event's fields are checked by
        ``verify_event`` itself, so a malformed sender simply finds no keys here.
        """
        try:
            origin = parse_user_id(event["sender"]).server_name
            ts = event["origin_server_ts"]
        except (KeyError, TypeError, RemoteProtocolError):
            return {}
        keys = self._pins.get(origin)
        if keys is None or type(ts) is not int:
            return {}
        return {origin: keys.keys_for_event(ts)}


def _store(conn: sqlite3.Connection, keys: ServerKeys) -> None:
    conn.execute(
        "INSERT INTO server_keys (server_name, ts, json) VALUES (?, ?, ?) "
        "ON CONFLICT (server_name) DO UPDATE SET ts = excluded.ts, json = excluded.json",
        (keys.server_name, keys.ts, json.dumps(keys.source, separators=(",", ":"))),
    )
