"""Device-key ops of the client socket (spec/client.md §9): ``upload_keys``, ``query_keys``
and ``claim_keys``. Users of this node are answered by the device-keys service, users of
other servers by their node (spec/federation.md §10); a server that cannot answer is
missing from the result and named in ``failures``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, Protocol

import trio

from node.dispatch import Handler
from node.services.device_keys import Claim, DeviceKeyService
from node.session import Session
from protocol import JsonObject, RemoteProtocolError, parse_user_id
from protocol.device_keys import fit_answer
from protocol.wire import MAX_FRAME_BYTES, Endpoint

__all__ = ["RemoteKeys", "key_handlers", "nudging_on_removal"]

QUERY_ANSWER_BYTES: Final = MAX_FRAME_BYTES[Endpoint.CLIENT] - 320 * 1024
"""Device objects of one ``query_keys`` answer: the frame keeps room for ``failures`` and
``incomplete`` (1,000 user ids at most)."""

Devices = dict[str, dict[str, JsonObject]]


class RemoteKeys(Protocol):
    """Other servers' answers (the federation facade)."""

    async def query_keys(self, server: str, user_ids: list[str]) -> tuple[Devices, list[str]]:
        """The devices of ``user_ids`` of ``server``, and users it left out; raises
        ``RemoteProtocolError`` with the code to report in ``failures``."""
        ...

    async def claim_keys(self, server: str, wanted: dict[str, dict[str, str]]) -> Claim:
        """One key of each named device of ``server``'s users; raises as ``query_keys``."""
        ...


def _me(session: Session) -> tuple[str, str]:
    assert session.user_id is not None
    assert session.device_id is not None
    return session.user_id, session.device_id


def _by_server(user_ids: list[str]) -> dict[str, list[str]]:
    servers: dict[str, list[str]] = {}
    for user_id in dict.fromkeys(user_ids):
        servers.setdefault(parse_user_id(user_id).server_name, []).append(user_id)
    return servers


def key_handlers(
    keys: DeviceKeyService, remote: RemoteKeys, server_name: str
) -> dict[str, Handler]:
    """The handlers of client.md §9, bound to the device-keys service and federation."""

    async def upload_keys(session: Session, params: JsonObject) -> JsonObject:
        user_id, device_id = _me(session)
        return await keys.upload(user_id, device_id, params)

    async def query_keys(session: Session, params: JsonObject) -> JsonObject:
        by_server = _by_server(params["user_ids"])
        found: dict[str, Devices] = {}
        left: list[str] = []
        failures: dict[str, str] = {}

        async def ask(server: str, users: list[str]) -> None:
            try:
                found[server], missing = await remote.query_keys(server, users)
                left.extend(missing)
            except RemoteProtocolError as exc:
                failures[server] = exc.code.value

        async with trio.open_nursery() as nursery:
            for server, users in by_server.items():
                if server != server_name:
                    nursery.start_soon(ask, server, users)
            found[server_name] = await keys.query(by_server.get(server_name, []))
        merged: Devices = {}
        for server, users in by_server.items():
            for user_id in users:
                if user_id in found.get(server, {}):
                    merged[user_id] = found[server][user_id]
        devices, more = fit_answer(merged, QUERY_ANSWER_BYTES)
        answer: JsonObject = {"devices": devices, "failures": failures}
        if more or left:
            answer["incomplete"] = more + left
        return answer

    async def claim_keys(session: Session, params: JsonObject) -> JsonObject:
        wanted: dict[str, dict[str, dict[str, str]]] = {}
        for user_id, devices in params["one_time_keys"].items():
            server = parse_user_id(user_id).server_name
            wanted.setdefault(server, {})[user_id] = devices
        claimed: dict[str, Claim] = {}
        failures: dict[str, str] = {}

        async def ask(server: str, targets: dict[str, dict[str, str]]) -> None:
            try:
                claimed[server] = await remote.claim_keys(server, targets)
            except RemoteProtocolError as exc:
                failures[server] = exc.code.value

        async with trio.open_nursery() as nursery:
            for server, targets in wanted.items():
                if server != server_name:
                    nursery.start_soon(ask, server, targets)
            claimed[server_name] = await keys.claim(wanted.get(server_name, {}))
        merged: Claim = {}
        for by_user in claimed.values():
            merged.update(by_user)
        return {"one_time_keys": merged, "failures": failures}

    return {"upload_keys": upload_keys, "query_keys": query_keys, "claim_keys": claim_keys}


def nudging_on_removal(handlers: dict[str, Handler], keys: DeviceKeyService) -> dict[str, Handler]:
    """``handlers`` whose ops that remove a device (``logout``, ``revoke_device``) tell the
    device-keys service at once, so contacts hear of it without waiting for its next look
    at the removal log."""

    def nudging(handler: Handler) -> Callable[[Session, JsonObject], Awaitable[JsonObject]]:
        async def handle(session: Session, params: JsonObject) -> JsonObject:
            try:
                return await handler(session, params)
            finally:
                keys.nudge()

        return handle

    return {
        op: nudging(handler) if op in ("logout", "revoke_device") else handler
        for op, handler in handlers.items()
    }
