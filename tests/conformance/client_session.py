"""A JSON-frame session over the conformance suite's own WebSocket client: requests matched
to answers by id, notices (pushes) kept in arrival order. Speaks only spec/wire.md."""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tests.conformance.wsclient import Text, WebSocket, connect

SUBPROTOCOL = "kith.v1"
PASSWORD = "conformance password"
RUN = secrets.token_hex(4)
"""Part of every user name, so runs against one long-lived node never collide."""
_names = itertools.count(1)


def fresh_name(label: str) -> str:
    """A user name no earlier run used."""
    return f"{label}{next(_names)}-{RUN}"


class Session:
    """One connection to the node's ``/client`` endpoint."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.notices: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self.user_id: str | None = None
        self.device_id: str | None = None
        self.token: str | None = None

    async def _frame(self) -> dict[str, Any]:
        message = await self.ws.receive()
        assert isinstance(message, Text), f"expected a text frame, got {message!r}"
        frame: dict[str, Any] = json.loads(message.data)
        return frame

    async def request(self, op: str, **params: Any) -> dict[str, Any]:
        """Send a request; its answer frame (notices received meanwhile are kept)."""
        request_id = next(self._ids)
        frame = {"id": request_id, "op": op, "params": params}
        await self.ws.send_text(json.dumps(frame, ensure_ascii=False))
        while True:
            answer = await self._frame()
            if "id" not in answer:
                self.notices.append(answer)
            elif answer["id"] == request_id:
                return answer
            else:
                raise AssertionError(f"an answer to a request not made: {answer!r}")

    async def result(self, op: str, **params: Any) -> dict[str, Any]:
        """The result of a request that must succeed."""
        answer = await self.request(op, **params)
        assert "result" in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    async def error(self, op: str, **params: Any) -> str:
        """The error code of a request that must fail."""
        answer = await self.request(op, **params)
        assert "error" in answer, answer
        assert isinstance(answer["error"]["message"], str)
        code: str = answer["error"]["code"]
        return code

    async def notice(self) -> dict[str, Any]:
        """The next notice."""
        if self.notices:
            return self.notices.pop(0)
        frame = await self._frame()
        assert "id" not in frame, frame
        return frame

    async def register(self, token: str, label: str = "user") -> str:
        """Register a fresh user with the node's token; bound as its first device."""
        result = await self.result(
            "register", username=fresh_name(label), password=PASSWORD, registration_token=token
        )
        self.user_id, self.device_id = result["user_id"], result["device_id"]
        self.token = result["access_token"]
        user_id: str = result["user_id"]
        return user_id

    async def batches(self) -> list[dict[str, Any]]:
        """``sync_batch`` params up to the first that is ``caught_up``."""
        found = []
        while True:
            notice = await self.notice()
            if notice["op"] == "sync_batch":
                found.append(notice["params"])
                if notice["params"]["caught_up"]:
                    return found

    async def items_until(self, predicate: Any) -> list[dict[str, Any]]:
        """Stream items from ``sync_batch`` notices until one matches ``predicate``."""
        items: list[dict[str, Any]] = []
        while not any(predicate(item) for item in items):
            notice = await self.notice()
            if notice["op"] == "sync_batch":
                items.extend(notice["params"]["items"])
        return items


@asynccontextmanager
async def session(node_url: str) -> AsyncIterator[Session]:
    """A fresh connection to ``/client``."""
    async with await connect(node_url + "/client", subprotocols=(SUBPROTOCOL,)) as ws:
        yield Session(ws)
