"""Helpers for tests of accounts, sessions and limits: a node with test settings, and a
client that matches answers to requests while keeping the notices pushed in between."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from trio_websocket import WebSocketConnection

from node.app import DATABASE_FILE_NAME, serve_node
from node.config import NodeConfig
from node.services.accounts import Accounts
from node.storage.db import Database
from tests.node.wsclient import connect, receive, send

PASSWORD = "correct horse battery"


def node_config(tmp_path: Path, **settings: Any) -> NodeConfig:
    """A node on a free loopback port, cheap password hashes, open registration."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "data_dir": tmp_path / "kith-data",
        "password_cost": "min",
        "registration_mode": "open",
    }
    values.update(settings)
    return NodeConfig(**values)


async def start_node(nursery: trio.Nursery, config: NodeConfig) -> int:
    """Start a node in ``nursery`` (stopped with it); its bound port."""
    port: int = await nursery.start(serve_node, config)
    return port


@asynccontextmanager
async def open_accounts(config: NodeConfig) -> AsyncIterator[Accounts]:
    """The node's accounts through a database connection of our own, as ``kith user`` does."""
    db = await Database.open(config.data_dir / DATABASE_FILE_NAME)
    try:
        yield Accounts(db, config.server_name, password_cost=config.password_cost)
    finally:
        await db.aclose()


@dataclass
class Client:
    """One WebSocket to the node: requests with fresh ids, notices kept in arrival order."""

    ws: WebSocketConnection
    notices: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def request(self, op: str, **params: Any) -> dict[str, Any]:
        """Send ``op`` and return its answer frame (result or error)."""
        request_id = next(self._ids)
        await send(self.ws, {"id": request_id, "op": op, "params": params})
        while True:
            frame = await receive(self.ws)
            if "id" not in frame:
                self.notices.append(frame)
            elif frame["id"] == request_id:
                return frame
            else:
                raise AssertionError(f"unexpected frame {frame!r}")

    async def result(self, op: str, **params: Any) -> dict[str, Any]:
        """The result of ``op``, which must succeed."""
        answer = await self.request(op, **params)
        assert "result" in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    async def error(self, op: str, **params: Any) -> str:
        """The error code ``op`` is answered with (it must fail)."""
        answer = await self.request(op, **params)
        assert "error" in answer, answer
        code: str = answer["error"]["code"]
        return code

    async def notice(self) -> dict[str, Any]:
        """The next notice pushed: one received already, or the next frame."""
        if self.notices:
            return self.notices.pop(0)
        frame = await receive(self.ws)
        assert "id" not in frame, frame
        return frame

    async def register(
        self, username: str, password: str = PASSWORD, **more: Any
    ) -> dict[str, Any]:
        """Register ``username`` (the node's mode must allow it); the result."""
        return await self.result("register", username=username, password=password, **more)


@asynccontextmanager
async def client(port: int, path: str = "/client") -> AsyncIterator[Client]:
    """A :class:`Client` on a fresh connection, closed on the way out."""
    async with connect(port, path) as ws:
        yield Client(ws)


def signed_out(reason: str) -> dict[str, Any]:
    """The ``signed_out`` notice (spec/client.md §1)."""
    return {"op": "signed_out", "params": {"reason": reason}}
