"""Test helpers for rooms, messages and the stream: logged-in clients of a real node, and
readers for the ``sync_batch`` pushes a device receives."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from tests.node.session_client import Client, client

_txns = itertools.count(1)


def txn() -> str:
    """A fresh transaction id."""
    return f"t{next(_txns)}"


@asynccontextmanager
async def user(
    port: int, name: str, *, register: bool = True, device: str | None = None
) -> AsyncIterator[Client]:
    """A connection logged in as ``@name:localpart`` (registered first unless told not to)."""
    async with client(port) as connection:
        if register:
            await connection.register(name)
        else:
            params: dict[str, Any] = {"username": name, "password": "correct horse battery"}
            if device is not None:
                params["device_id"] = device
            await connection.result("login", **params)
        yield connection


async def say(connection: Client, room_id: str, body: str) -> str:
    """Send a text message; its event id."""
    result = await connection.result(
        "send", room_id=room_id, txn_id=txn(), content={"body": body, "msgtype": "text"}
    )
    event_id: str = result["event_id"]
    return event_id


async def batches_until_caught_up(connection: Client) -> list[dict[str, Any]]:
    """Every ``sync_batch`` up to and including the first with ``caught_up``."""
    batches = []
    while True:
        notice = await connection.notice()
        if notice["op"] != "sync_batch":
            continue
        batches.append(notice["params"])
        if notice["params"]["caught_up"]:
            return batches


async def items_until(
    connection: Client, predicate: Any, *, limit_s: float = 5
) -> list[dict[str, Any]]:
    """Stream items from ``sync_batch`` pushes until one matches ``predicate``."""
    items: list[dict[str, Any]] = []
    with trio.fail_after(limit_s):
        while not any(predicate(item) for item in items):
            notice = await connection.notice()
            if notice["op"] == "sync_batch":
                items.extend(notice["params"]["items"])
    return items


def is_membership(user_id: str, membership: str) -> Any:
    """A predicate for :func:`items_until`: ``user_id``'s membership event of that kind."""
    return lambda item: (
        item["kind"] == "event"
        and item["event"]["type"] == "member"
        and item["event"]["state_key"] == user_id
        and item["event"]["content"]["membership"] == membership
    )


def is_message(body: str) -> Any:
    """A predicate for :func:`items_until`: the message with this body."""
    return lambda item: bodies([item]) == [body]


def bodies(items: list[dict[str, Any]]) -> list[str]:
    """The message bodies among stream items, in order."""
    return [
        item["event"]["content"]["body"]
        for item in items
        if item["kind"] == "event" and item["event"]["type"] == "message"
    ]
