"""``register``, ``login``, ``authenticate``, ``logout`` and the device ops (spec/client.md §2).

Thin: check the node's registration mode, call :class:`~node.services.accounts.Accounts`,
bind or sign out through :class:`~node.services.signins.SignIns`, encode. The three ops that
bind a connection check the per-user connection limit (§7) before they create or change
anything, and bind only once the database has committed the device.

Logs name who and what (``event=login user_id=... device_id=...``), never a password, a
token or a hash.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from node.config import NodeConfig
from node.dispatch import Handler
from node.log import get_log
from node.services.accounts import Accounts, Login, SignOutReason
from node.services.signins import SignIns
from node.session import Session
from protocol import ErrorCode, JsonObject, RemoteProtocolError

if TYPE_CHECKING:
    from node.app import Node

__all__ = ["AccountsApi", "handlers"]

log = get_log(__name__)


def _optional_str(params: JsonObject, name: str) -> str | None:
    value = params.get(name)
    return value if isinstance(value, str) else None


def _me(session: Session) -> tuple[str, str]:
    """The user and device the connection acts as (the dispatcher only lets bound ones in)."""
    if session.user_id is None or session.device_id is None:
        raise RemoteProtocolError(ErrorCode.NOT_AUTHENTICATED, "log in or authenticate first")
    return session.user_id, session.device_id


def _login_result(login: Login) -> JsonObject:
    return {
        "user_id": login.user_id,
        "device_id": login.device_id,
        "access_token": login.access_token,
    }


class AccountsApi:
    """The handlers of the account ops, over one node's services."""

    def __init__(self, config: NodeConfig, accounts: Accounts, signins: SignIns) -> None:
        self._config = config
        self._accounts = accounts
        self._signins = signins

    def _registration_allowed(self, token: str | None) -> bool:
        mode = self._config.registration_mode
        if mode == "open":
            return True
        if mode == "token" and token is not None and self._config.registration_token:
            # compare_digest: the time taken does not tell how much of the token was right.
            return hmac.compare_digest(token.encode(), self._config.registration_token.encode())
        return False

    async def register(self, session: Session, params: JsonObject) -> JsonObject:
        """``register``: create an account if the registration mode allows, and log in."""
        conn = session.peer.connection_id
        if not self._registration_allowed(_optional_str(params, "registration_token")):
            log.info("registration_refused", mode=self._config.registration_mode, conn=conn)
            raise RemoteProtocolError(
                ErrorCode.REGISTRATION_CLOSED,
                "this node does not register accounts this way"
                if self._config.registration_mode != "closed"
                else "this node's administrator creates its accounts",
            )
        user_id = self._accounts.user_id(str(params["username"]))
        with self._signins.slot(session, user_id):
            login = await self._accounts.register(
                str(params["username"]),
                str(params["password"]),
                device_name=_optional_str(params, "device_name"),
            )
            self._signins.bind(session, login.user_id, login.device_id)
        log.info("registered", user_id=login.user_id, device_id=login.device_id, conn=conn)
        return _login_result(login)

    async def login(self, session: Session, params: JsonObject) -> JsonObject:
        """``login``: check the password, then a fresh token for a new or named device."""
        conn = session.peer.connection_id
        username = str(params["username"])
        try:
            user_id = await self._accounts.check_password(username, str(params["password"]))
        except RemoteProtocolError as exc:
            log.info("login_failed", username=username, reason=exc.code, conn=conn)
            raise
        with self._signins.slot(session, user_id):
            login = await self._accounts.issue_device(
                user_id,
                device_id=_optional_str(params, "device_id"),
                device_name=_optional_str(params, "device_name"),
            )
            self._signins.bind(session, login.user_id, login.device_id)
        log.info(
            "login",
            user_id=login.user_id,
            device_id=login.device_id,
            new_device=login.new_device,
            conn=conn,
        )
        return _login_result(login)

    async def authenticate(self, session: Session, params: JsonObject) -> JsonObject:
        """``authenticate``: bind the connection to the device an access token belongs to."""
        conn = session.peer.connection_id
        token = str(params["access_token"])
        try:
            user_id, device_id = await self._accounts.token_owner(token)
            with self._signins.slot(session, user_id):
                await self._accounts.token_used(token)
                self._signins.bind(session, user_id, device_id)
        except RemoteProtocolError as exc:
            log.info("authenticate_failed", reason=exc.code, conn=conn)
            raise
        log.debug("authenticated", user_id=user_id, device_id=device_id, conn=conn)
        return {"user_id": user_id, "device_id": device_id}

    async def logout(self, session: Session, params: JsonObject) -> JsonObject:
        """``logout``: delete this device; all its connections are signed out (§1)."""
        user_id, device_id = _me(session)
        try:
            await self._accounts.remove_device(user_id, device_id)
        except RemoteProtocolError as exc:
            if exc.code is not ErrorCode.NOT_FOUND:
                raise
            # Revoked by another connection a moment ago: the outcome is the same.
        log.info("logout", user_id=user_id, device_id=device_id, conn=session.peer.connection_id)
        await self._signins.sign_out(user_id, device_id, SignOutReason.LOGOUT)
        return {}

    async def devices(self, session: Session, params: JsonObject) -> JsonObject:
        """``devices``: the user's devices; ``current`` marks this connection's."""
        user_id, device_id = _me(session)
        return {
            "devices": [
                {
                    "device_id": device.device_id,
                    "display_name": device.display_name,
                    "created_ts": device.created_ts,
                    "last_seen_ts": device.last_seen_ts,
                    "current": device.device_id == device_id,
                }
                for device in await self._accounts.devices(user_id)
            ]
        }

    async def rename_device(self, session: Session, params: JsonObject) -> JsonObject:
        """``rename_device``: set the display name of one of the user's devices."""
        user_id, _ = _me(session)
        await self._accounts.rename_device(
            user_id, str(params["device_id"]), str(params["display_name"])
        )
        return {}

    async def revoke_device(self, session: Session, params: JsonObject) -> JsonObject:
        """``revoke_device``: delete one of the user's devices and sign it out (§1)."""
        user_id, current = _me(session)
        device_id = str(params["device_id"])
        await self._accounts.remove_device(user_id, device_id)
        log.info(
            "device_revoked",
            user_id=user_id,
            device_id=device_id,
            by_device=current,
            conn=session.peer.connection_id,
        )
        await self._signins.sign_out(user_id, device_id, SignOutReason.REVOKED)
        return {}


def handlers(node: Node) -> dict[str, Handler]:
    """The account ops of ``node``, by op name."""
    api = AccountsApi(node.config, node.accounts, node.signins)
    return {
        "register": api.register,
        "login": api.login,
        "authenticate": api.authenticate,
        "logout": api.logout,
        "devices": api.devices,
        "rename_device": api.rename_device,
        "revoke_device": api.revoke_device,
    }
