"""Device-key ops of the client socket (spec/client.md §9): ``upload_keys``, ``query_keys``
and ``claim_keys``. Users of this node are answered by the device-keys service, users of
other servers by their node (spec/federation.md §10); a server that cannot answer is
missing from the result and named in ``failures``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Protocol, TypeVar

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
_Asked = TypeVar("_Asked")
_Answer = TypeVar("_Answer")


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


async def _ask_each_server(
    wanted: Mapping[str, _Asked],
    own_server: str,
    local: Callable[[_Asked], Awaitable[_Answer]],
    remote: Callable[[str, _Asked], Awaitable[_Answer]],
) -> tuple[dict[str, _Answer], dict[str, str]]:
    """Every server's answer for what is wanted of it, asked at once: this node's directly,
    the others over federation; and the error code of each server that could not answer."""
    answers: dict[str, _Answer] = {}
    failures: dict[str, str] = {}

    async def ask(server: str, asked: _Asked) -> None:
        try:
            answers[server] = await remote(server, asked)
        except RemoteProtocolError as exc:
            failures[server] = exc.code.value

    async with trio.open_nursery() as nursery:
        for server, asked in wanted.items():
            if server != own_server:
                nursery.start_soon(ask, server, asked)
        if own_server in wanted:
            answers[own_server] = await local(wanted[own_server])
    return answers, failures


def key_handlers(
    keys: DeviceKeyService, remote: RemoteKeys, server_name: str
) -> dict[str, Handler]:
    """The handlers of client.md §9, bound to the device-keys service and federation."""

    async def upload_keys(session: Session, params: JsonObject) -> JsonObject:
        user_id, device_id = _me(session)
        return await keys.upload(user_id, device_id, params)

    async def query_keys(session: Session, params: JsonObject) -> JsonObject:
        by_server = _by_server(params["user_ids"])

        async def local(users: list[str]) -> tuple[Devices, list[str]]:
            return await keys.query(users), []

        found, failures = await _ask_each_server(by_server, server_name, local, remote.query_keys)
        left = [user_id for _, missing in found.values() for user_id in missing]
        merged: Devices = {}
        for server, users in by_server.items():
            devices = found[server][0] if server in found else {}
            for user_id in users:
                if user_id in devices:
                    merged[user_id] = devices[user_id]
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
        claimed, failures = await _ask_each_server(
            wanted, server_name, keys.claim, remote.claim_keys
        )
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
