"""Durability (DESIGN.md "Storage"): a node killed with SIGKILL at any instant loses nothing
it acknowledged, and duplicates nothing.

A real ``kith serve`` process is killed at random moments (seeded) while one device sends
messages with transaction ids — retrying the unanswered one after each restart — and another
device of another user syncs and acknowledges. After the last restart: every acknowledged
message is in the room exactly once, no retried message is there twice, and the reading
device's stream had no gap and never repeated an acknowledged position.
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.conformance.wsclient import Closed, Text, WebSocket, connect

_LISTENING = re.compile(r"\bevent=listening\b.*\bport=(\d+)")
PASSWORD = "durable password"


class LostError(Exception):
    """The node went away in the middle of something."""


class NodeProcess:
    """``kith serve`` in a subprocess that the test kills and restarts."""

    def __init__(self, data: Path, nursery: trio.Nursery) -> None:
        self.data = data
        self.nursery = nursery
        self.process: trio.Process | None = None
        self.port = 0
        self.up = trio.Event()

    async def start(self) -> None:
        command = [sys.executable, "-m", "node", "serve", "--port", "0", "--data", str(self.data)]
        process: trio.Process = await self.nursery.start(
            lambda task_status: trio.run_process(
                command, stderr=subprocess.PIPE, check=False, task_status=task_status
            )
        )
        self.process = process
        assert process.stderr is not None
        buffer = b""
        while (match := _LISTENING.search(buffer.decode(errors="replace"))) is None:
            chunk = await process.stderr.receive_some(4096)
            if not chunk:
                raise AssertionError("the node exited before listening")
            buffer += chunk
        self.port = int(match.group(1))
        self.nursery.start_soon(_drain, process.stderr)
        self.up.set()

    def kill(self) -> None:
        assert self.process is not None
        self.up = trio.Event()
        self.process.send_signal(signal.SIGKILL)


async def _drain(stream: trio.abc.ReceiveStream) -> None:
    with trio.move_on_after(60):
        while await stream.receive_some(4096):
            pass


class Link:
    """One client connection that turns every way of losing the node into :class:`LostError`."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.notices: list[dict[str, Any]] = []
        self._next = 0

    async def _frame(self) -> dict[str, Any]:
        try:
            message = await self.ws.receive()
        except (OSError, trio.BrokenResourceError) as exc:
            raise LostError from exc
        if isinstance(message, Closed) or not isinstance(message, Text):
            raise LostError
        frame: dict[str, Any] = json.loads(message.data)
        return frame

    async def call(self, op: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        try:
            await self.ws.send_text(json.dumps({"id": self._next, "op": op, "params": params}))
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise LostError from exc
        while True:
            frame = await self._frame()
            if "id" not in frame:
                self.notices.append(frame)
            elif frame["id"] == self._next:
                assert "result" in frame, frame
                result: dict[str, Any] = frame["result"]
                return result

    async def notice(self) -> dict[str, Any]:
        return self.notices.pop(0) if self.notices else await self._frame()


async def _with_link(node: NodeProcess, token: str) -> tuple[Link, WebSocket]:
    """Connect and authenticate, waiting for the node to be up; retry while it is not."""
    while True:
        await node.up.wait()
        try:
            ws = await connect(f"ws://127.0.0.1:{node.port}/client", subprotocols=("kith.v1",))
        except OSError:
            await trio.sleep(0.01)
            continue
        link = Link(ws)
        try:
            await link.call("authenticate", access_token=token)
        except LostError:
            await ws.aclose()
            continue
        return link, ws


async def _run(tmp_path: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    data = tmp_path / "node"
    data.mkdir()
    (data / "kith.toml").write_text(
        '[registration]\nmode = "open"\n[passwords]\ncost = "min"\n'
        "[limits]\nrequests_per_second = 100000\nrequest_burst = 100000\n",
        encoding="utf-8",
    )
    acknowledged: dict[str, str] = {}  # txn id → event id, answered by the node
    seen: list[tuple[int, str]] = []  # (position, event id) of messages the reader processed
    acked_position = 0
    violations: list[str] = []
    with trio.fail_after(60 + 10 * kills):
        async with trio.open_nursery() as nursery:
            node = NodeProcess(data, nursery)
            await node.start()
            tokens: dict[str, str] = {}
            async with await connect(f"ws://127.0.0.1:{node.port}/client") as ws:
                setup = Link(ws)
                for name in ("writer", "reader"):
                    result = await setup.call("register", username=name, password=PASSWORD)
                    tokens[name] = result["access_token"]
            writer, writer_ws = await _with_link(node, tokens["writer"])
            room_id = (await writer.call("create_room", public=True))["room_id"]
            await writer_ws.aclose()
            reader, reader_ws = await _with_link(node, tokens["reader"])
            await reader.call("join", room_id=room_id)
            await reader_ws.aclose()
            done = trio.Event()

            async def write() -> None:
                number = 0
                while not done.is_set():
                    link, ws = await _with_link(node, tokens["writer"])
                    try:
                        while not done.is_set():
                            txn = f"t{number}"
                            content = {"body": f"message {number}"}
                            result = await link.call(
                                "send", room_id=room_id, txn_id=txn, content=content
                            )
                            acknowledged[txn] = result["event_id"]
                            number += 1
                    except LostError:
                        pass  # retry the same txn id once the node is back
                    finally:
                        await ws.aclose()

            async def read() -> None:
                nonlocal acked_position
                while True:
                    link, ws = await _with_link(node, tokens["reader"])
                    try:
                        await link.call("sync", since=acked_position)
                        while True:
                            notice = await link.notice()
                            if notice["op"] != "sync_batch":
                                continue
                            for item in notice["params"]["items"]:
                                if item["position"] <= acked_position:
                                    violations.append(
                                        f"acknowledged position {item['position']} again"
                                    )
                                event = item.get("event", {})
                                if event.get("type") == "message":
                                    seen.append((item["position"], event["event_id"]))
                            await link.call("ack", position=notice["params"]["position"])
                            acked_position = notice["params"]["position"]
                    except LostError:
                        pass
                    finally:
                        await ws.aclose()

            nursery.start_soon(write)
            nursery.start_soon(read)
            for _ in range(kills):
                await trio.sleep(rng.uniform(0.05, 0.4))
                node.kill()
                await node.start()
            await trio.sleep(0.2)
            done.set()
            node.kill()
            await node.start()
            link, ws = await _with_link(node, tokens["writer"])
            history: list[dict[str, Any]] = []
            before = None
            while True:
                params: dict[str, Any] = {"room_id": room_id, "limit": 100}
                if before:
                    params["before"] = before
                page = await link.call("history", **params)
                history = page["events"] + history
                before = page["before"]
                if before is None:
                    break
            await ws.aclose()
            nursery.cancel_scope.cancel()
    messages = [e for e in history if e["type"] == "message"]
    ids = [e["event_id"] for e in messages]
    assert len(ids) == len(set(ids))
    bodies = [e["content"]["body"] for e in messages]
    assert len(bodies) == len(set(bodies)), "a retried send was stored twice"
    assert set(acknowledged.values()) <= set(ids), "an acknowledged message was lost"
    assert violations == []
    processed = {event_id for _, event_id in seen}
    acknowledged_by_reader = {event_id for position, event_id in seen if position <= acked_position}
    assert acknowledged_by_reader <= set(ids)
    assert processed <= set(ids)
    assert len(acknowledged) >= kills  # the writer made progress between the kills
    print(f"kills={kills} acknowledged={len(acknowledged)} stored={len(ids)} read={len(processed)}")


async def test_sigkill_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    await _run(tmp_path, kills=5, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
async def test_sigkill_loses_and_duplicates_nothing_many_times(tmp_path: Path, seed: int) -> None:
    await _run(tmp_path, kills=20, seed=seed)
