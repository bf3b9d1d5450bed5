"""Accounts and devices (spec/client.md §2). Owns the ``users`` and ``devices`` tables.

A user is ``@<localpart>:<server name>``; their password is stored only as an Argon2id hash
(:mod:`node.services.passwords`). A device is what a login creates: an id of ten characters
``A-Z 0-9`` and an access token of 32 random bytes (URL-safe unpadded base64), stored only
as its SHA-256 — a stolen database holds no usable token.

This service knows nothing of connections: it answers "who is this token", "is this the
password", "make a device", and the node's handlers (``node.api.accounts``) bind and sign out
connections. The ``kith user`` commands use the same service on the same database file, beside
a running node (SQLite WAL), so every check of ``deactivated`` reads the database: a user
deactivated from the command line can no longer log in or authenticate, at once.

Deactivating a user keeps their devices' rows, so a device that comes back with its token is
told ``user_deactivated`` rather than ``bad_credentials`` (spec/client.md §2); no token of a
deactivated user authenticates, which is what revoking them means (§1).
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from node import clock
from node.services.passwords import PasswordHasher
from node.storage.db import Database
from protocol import ErrorCode, RemoteProtocolError, encode_base64_urlsafe, parse_user_id

__all__ = [
    "DEVICE_ID_ALPHABET",
    "DEVICE_ID_LENGTH",
    "MAX_PASSWORD_CHARS",
    "MIN_PASSWORD_CHARS",
    "Accounts",
    "Deactivation",
    "Device",
    "Login",
    "SignOut",
    "SignOutReason",
    "User",
    "hash_token",
]

DEVICE_ID_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
DEVICE_ID_LENGTH: Final = 10
TOKEN_BYTES: Final = 32
MIN_PASSWORD_CHARS: Final = 8
MAX_PASSWORD_CHARS: Final = 1024


class SignOutReason:
    """The ``reason`` of a ``signed_out`` notice: why a device's connections were ended."""

    LOGOUT = "logout"
    REVOKED = "revoked"
    USER_DEACTIVATED = "user_deactivated"


@dataclass(frozen=True, slots=True)
class SignOut:
    """One row of the sign-out log: a device (or, with ``device_id`` None, every device of
    the user) that may no longer act, and the ``signed_out`` reason to give."""

    id: int
    user_id: str
    device_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class User:
    """One row of ``users``, as ``kith user list`` shows it."""

    user_id: str
    admin: bool
    deactivated: bool
    created_ts: int
    devices: int


@dataclass(frozen=True, slots=True)
class Device:
    """One of a user's devices, as the ``devices`` op lists it."""

    device_id: str
    display_name: str | None
    created_ts: int
    last_seen_ts: int


@dataclass(frozen=True, slots=True)
class Login:
    """A device a user just logged in (or registered) with, and its new token."""

    user_id: str
    device_id: str
    access_token: str
    new_device: bool


@dataclass(frozen=True, slots=True)
class Deactivation:
    """What ``deactivate`` did: the devices whose connections must now be signed out."""

    user_id: str
    already: bool
    device_ids: tuple[str, ...]


def hash_token(access_token: str) -> str:
    """The form an access token is stored and looked up in: hex SHA-256 of its text."""
    return hashlib.sha256(access_token.encode()).hexdigest()


def _new_device_id() -> str:
    return "".join(secrets.choice(DEVICE_ID_ALPHABET) for _ in range(DEVICE_ID_LENGTH))


def _error(code: ErrorCode, message: str) -> RemoteProtocolError:
    return RemoteProtocolError(code, message)


def _bad_credentials() -> RemoteProtocolError:
    # One message for an unknown user and a wrong password: they must not be told apart.
    return _error(ErrorCode.BAD_CREDENTIALS, "unknown user or wrong password")


def _bad_token() -> RemoteProtocolError:
    return _error(ErrorCode.BAD_CREDENTIALS, "unknown or revoked access token")


def _check_password_length(password: str) -> None:
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise _error(
            ErrorCode.BAD_PARAMS,
            f"a password has {MIN_PASSWORD_CHARS}-{MAX_PASSWORD_CHARS:,} characters",
        )


class Accounts:
    """Users and devices of one node, in its database."""

    def __init__(
        self,
        db: Database,
        server_name: str,
        *,
        password_cost: str = "interactive",
        now_ms: Callable[[], int] = clock.now_ms,
    ) -> None:
        self._db = db
        self._server_name = server_name
        self.passwords = PasswordHasher(password_cost)
        self._now_ms = now_ms

    def user_id(self, localpart: str) -> str:
        """``@localpart:<server name>``; ``bad_identifier`` if not a valid localpart (ids.md §3)."""
        return str(parse_user_id(f"@{localpart}:{self._server_name}"))

    # --- users ----------------------------------------------------------------------------

    async def create_user(self, localpart: str, password: str, *, admin: bool = False) -> str:
        """Create a user; their id.

        ``bad_identifier``, ``bad_params`` (the password's length) or ``user_exists``.
        """
        user_id = self.user_id(localpart)
        _check_password_length(password)
        await self._check_free(user_id)
        password_hash = await self.passwords.hash(password)
        await self._db.write(lambda conn: self._insert_user(conn, user_id, password_hash, admin))
        return user_id

    async def _check_free(self, user_id: str) -> None:
        # Checked before hashing, so a taken name costs no Argon2 work; the insert re-checks.
        if await self._db.read(lambda conn: _user_row(conn, user_id)) is not None:
            raise _error(ErrorCode.USER_EXISTS, f"{user_id} is taken")

    def _insert_user(
        self, conn: sqlite3.Connection, user_id: str, password_hash: str, admin: bool
    ) -> None:
        localpart = user_id[1:].partition(":")[0]
        try:
            conn.execute(
                "INSERT INTO users (user_id, localpart, password_hash, admin, deactivated,"
                " created_ts) VALUES (?, ?, ?, ?, 0, ?)",
                (user_id, localpart, password_hash, int(admin), self._now_ms()),
            )
        except sqlite3.IntegrityError:
            raise _error(ErrorCode.USER_EXISTS, f"{user_id} is taken") from None

    async def check_password(self, localpart: str, password: str) -> str:
        """The user id if ``password`` is this user's; else ``bad_credentials``.

        Takes as long for an unknown or malformed name as for a wrong password. A deactivated
        user is told ``user_deactivated`` only after the password checks out, so the error
        does not reveal deactivated accounts to whoever guesses names.
        """
        try:
            user_id: str | None = self.user_id(localpart)
        except RemoteProtocolError:
            user_id = None
        row = None if user_id is None else await self._db.read(lambda c: _user_row(c, user_id))
        matches = await self.passwords.verify(None if row is None else row[0], password)
        if row is None or not matches or user_id is None:
            raise _bad_credentials()
        if row[1]:
            raise _error(ErrorCode.USER_DEACTIVATED, "this account was deactivated")
        return user_id

    async def change_password(
        self, localpart: str, password: str, *, revoke_devices: bool = False
    ) -> int:
        """Set a user's password; with ``revoke_devices`` delete all their devices too.

        Returns how many devices were deleted. ``not_found`` for an unknown user.
        """
        user_id = self.user_id(localpart)
        _check_password_length(password)
        if await self._db.read(lambda conn: _user_row(conn, user_id)) is None:
            raise _error(ErrorCode.NOT_FOUND, f"no user {user_id}")
        password_hash = await self.passwords.hash(password)

        def job(conn: sqlite3.Connection) -> int:
            conn.execute(
                "UPDATE users SET password_hash = ? WHERE user_id = ?", (password_hash, user_id)
            )
            if not revoke_devices:
                return 0
            return conn.execute("DELETE FROM devices WHERE user_id = ?", (user_id,)).rowcount

        return await self._db.write(job)

    async def deactivate(self, localpart: str) -> Deactivation:
        """Mark a user deactivated for good; ``not_found`` for an unknown user.

        Their devices' tokens stop working at once; the caller signs out their connections.
        """
        user_id = self.user_id(localpart)

        def job(conn: sqlite3.Connection) -> Deactivation:
            row = _user_row(conn, user_id)
            if row is None:
                raise _error(ErrorCode.NOT_FOUND, f"no user {user_id}")
            conn.execute("UPDATE users SET deactivated = 1 WHERE user_id = ?", (user_id,))
            devices = conn.execute(
                "SELECT device_id FROM devices WHERE user_id = ? ORDER BY device_id", (user_id,)
            ).fetchall()
            return Deactivation(user_id, bool(row[1]), tuple(d for (d,) in devices))

        return await self._db.write(job)

    async def is_active(self, user_id: str) -> bool:
        """True if ``user_id`` is a user of this node and not deactivated."""
        row = await self._db.read(
            lambda conn: conn.execute(
                "SELECT deactivated FROM users WHERE user_id = ?", (user_id,)
            ).fetchone()
        )
        return row is not None and not row[0]

    async def users(self) -> list[User]:
        """Every user of the node, by user id."""

        def query(conn: sqlite3.Connection) -> list[User]:
            rows = conn.execute(
                "SELECT u.user_id, u.admin, u.deactivated, u.created_ts, count(d.device_id)"
                " FROM users u LEFT JOIN devices d ON d.user_id = u.user_id"
                " GROUP BY u.user_id ORDER BY u.user_id"
            ).fetchall()
            return [User(r[0], bool(r[1]), bool(r[2]), r[3], r[4]) for r in rows]

        return await self._db.read(query)

    async def check_server_name(self) -> str | None:
        """A user id of another server name than the node's, if the database holds one.

        A node renamed after creating users would hand out ids that no longer name it.
        """
        server = self._server_name

        def query(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT user_id FROM users WHERE substr(user_id, instr(user_id, ':') + 1) != ?"
                " LIMIT 1",
                (server,),
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._db.read(query)

    # --- devices --------------------------------------------------------------------------

    async def register(
        self, localpart: str, password: str, *, device_name: str | None = None
    ) -> Login:
        """Create a user and their first device, in one transaction."""
        user_id = self.user_id(localpart)
        _check_password_length(password)
        await self._check_free(user_id)
        password_hash = await self.passwords.hash(password)
        token = encode_base64_urlsafe(secrets.token_bytes(TOKEN_BYTES))

        def job(conn: sqlite3.Connection) -> Login:
            self._insert_user(conn, user_id, password_hash, admin=False)
            return self._issue(conn, user_id, token, None, device_name)

        return await self._db.write(job)

    async def issue_device(
        self,
        user_id: str,
        *,
        device_id: str | None = None,
        device_name: str | None = None,
    ) -> Login:
        """A fresh token for ``device_id`` if it is one of the user's, else for a new device.

        Call after :meth:`check_password` (this is the second half of ``login``).
        ``user_deactivated`` if the user was deactivated in the meantime.
        """
        token = encode_base64_urlsafe(secrets.token_bytes(TOKEN_BYTES))

        def job(conn: sqlite3.Connection) -> Login:
            # Re-checked in the transaction: a deactivation may have landed while hashing.
            row = _user_row(conn, user_id)
            if row is None or row[1]:
                raise _error(ErrorCode.USER_DEACTIVATED, "this account was deactivated")
            return self._issue(conn, user_id, token, device_id, device_name)

        return await self._db.write(job)

    def _issue(
        self,
        conn: sqlite3.Connection,
        user_id: str,
        token: str,
        device_id: str | None,
        device_name: str | None,
    ) -> Login:
        """Replace ``device_id``'s token if the user has it, else make a new device."""
        now = self._now_ms()
        if device_id is not None:
            updated = conn.execute(
                "UPDATE devices SET token_hash = ?, last_seen_ts = ?,"
                " display_name = coalesce(?, display_name) WHERE user_id = ? AND device_id = ?",
                (hash_token(token), now, device_name, user_id, device_id),
            ).rowcount
            if updated:
                return Login(user_id, device_id, token, new_device=False)
        while True:
            new_id = _new_device_id()
            try:
                conn.execute(
                    "INSERT INTO devices (user_id, device_id, display_name, token_hash,"
                    " created_ts, last_seen_ts, cursor) VALUES (?, ?, ?, ?, ?, ?, 0)",
                    (user_id, new_id, device_name, hash_token(token), now, now),
                )
            except sqlite3.IntegrityError:
                continue  # 36^10 ids: a collision is astronomically rare, but not impossible
            return Login(user_id, new_id, token, new_device=True)

    async def token_owner(self, access_token: str) -> tuple[str, str]:
        """The ``(user_id, device_id)`` a token belongs to (reads only).

        ``bad_credentials`` for a token that is not (or no longer) valid, ``user_deactivated``
        for a device of a deactivated user.
        """
        token_hash = hash_token(access_token)

        def query(conn: sqlite3.Connection) -> tuple[str, str, int] | None:
            row = conn.execute(
                "SELECT d.user_id, d.device_id, u.deactivated FROM devices d"
                " JOIN users u ON u.user_id = d.user_id WHERE d.token_hash = ?",
                (token_hash,),
            ).fetchone()
            return None if row is None else (row[0], row[1], row[2])

        found = await self._db.read(query)
        if found is None:
            raise _bad_token()
        user_id, device_id, deactivated = found
        if deactivated:
            raise _error(ErrorCode.USER_DEACTIVATED, "this account was deactivated")
        return user_id, device_id

    async def token_used(self, access_token: str) -> None:
        """Record that the token's device was seen now; ``bad_credentials`` if it was revoked
        since :meth:`token_owner` (the second half of ``authenticate``)."""
        token_hash, now = hash_token(access_token), self._now_ms()

        def job(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE devices SET last_seen_ts = ? WHERE token_hash = ?", (now, token_hash)
            ).rowcount

        if not await self._db.write(job):
            raise _bad_token()

    async def devices(self, user_id: str) -> list[Device]:
        """The user's devices, oldest first."""

        def query(conn: sqlite3.Connection) -> list[Device]:
            rows = conn.execute(
                "SELECT device_id, display_name, created_ts, last_seen_ts FROM devices"
                " WHERE user_id = ? ORDER BY created_ts, device_id",
                (user_id,),
            ).fetchall()
            return [Device(*row) for row in rows]

        return await self._db.read(query)

    async def rename_device(self, user_id: str, device_id: str, display_name: str) -> None:
        """Set a device's display name; ``not_found`` unless it is one of the user's."""

        def job(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?",
                (display_name, user_id, device_id),
            ).rowcount

        if not await self._db.write(job):
            raise _error(ErrorCode.NOT_FOUND, f"no device {device_id!r}")

    async def remove_device(self, user_id: str, device_id: str) -> None:
        """Delete a device and so its token; ``not_found`` unless it is one of the user's."""

        def job(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM devices WHERE user_id = ? AND device_id = ?", (user_id, device_id)
            ).rowcount

        if not await self._db.write(job):
            raise _error(ErrorCode.NOT_FOUND, f"no device {device_id!r}")

    async def signouts_after(self, after: int) -> list[SignOut]:
        """The sign-out log after ``after`` (schema ``signouts``): devices removed and users
        deactivated, by whatever process, in order. The log's newest id with ``after=-1``
        is :meth:`last_signout`."""

        def query(conn: sqlite3.Connection) -> list[SignOut]:
            rows = conn.execute(
                "SELECT id, user_id, device_id, reason FROM signouts WHERE id > ? ORDER BY id",
                (after,),
            ).fetchall()
            return [SignOut(*row) for row in rows]

        return await self._db.read(query)

    async def last_signout(self) -> int:
        """The id of the newest sign-out logged (0 when none): where a node starts reading."""
        return await self._db.read(
            lambda conn: int(
                conn.execute("SELECT coalesce(max(id), 0) FROM signouts").fetchone()[0]
            )
        )

    async def forget_signouts(self, upto: int) -> None:
        """Drop the log up to ``upto``: the node has acted on it."""
        await self._db.write(
            lambda conn: conn.execute("DELETE FROM signouts WHERE id <= ?", (upto,))
        )


def _user_row(conn: sqlite3.Connection, user_id: str) -> tuple[str, int] | None:
    """``(password_hash, deactivated)`` of a user, or None."""
    row = conn.execute(
        "SELECT password_hash, deactivated FROM users WHERE user_id = ?", (user_id,)
    ).fetchone()
    return None if row is None else (str(row[0]), int(row[1]))
