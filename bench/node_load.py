"""Load on one node process, measured from another (the node issue's targets), JSON rows.

Targets on the reference 2-core machine, one ``kith serve`` process:
(1) 16 senders in one room with 20 online members: >= 2,000 messages/s accepted and >=
    40,000 deliveries/s; (2) end-to-end latency at 200 messages/s to 20 members: p99 <= 10 ms;
(3) RSS <= 60 MiB idle, and 1,000 connected idle clients add <= 40 MiB; (4) a device that
missed 10,000 messages is fully caught up in <= 2 s; (5) 1,000 devices heartbeating every
5 s cost <= 5% of a core.

The node runs as its own process (``python -m node serve``) with a config that opens
registration and lifts the per-connection rate limit; this process is the load generator.
It reads frames with the conformance suite's small wsproto client and counts deliveries
without parsing them; the node's CPU and memory come from ``/proc``.
"""

from __future__ import annotations

import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from bench.common import emit
from tests.conformance.wsclient import Text, WebSocket, connect

_LISTENING = re.compile(r"\bevent=listening\b.*\bport=(\d+)")
PASSWORD = "bench password"
CONFIG = """
[registration]
mode = "open"
[passwords]
cost = "min"
[limits]
requests_per_second = 1000000
request_burst = 1000000
max_connections_per_user = 2000
[sync]
catch_up_limit = {catch_up_limit}
"""


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Node:
    """A ``kith serve`` process in a temporary data folder."""

    def __init__(self, catch_up_limit: int = 1000) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        data = Path(self._tmp.name)
        (data / "kith.toml").write_text(CONFIG.format(catch_up_limit=catch_up_limit))
        # The node's log goes to a file: a pipe nobody reads would fill and stall the node.
        self.log = (data / "node.log").open("w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "node", "serve", "--port", "0", "--data", str(data)],
            stderr=self.log,
            text=True,
        )
        deadline = time.monotonic() + 30
        while True:
            match = _LISTENING.search(Path(self.log.name).read_text())
            if match:
                self.port = int(match.group(1))
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the node did not start")
            time.sleep(0.05)
        self.url = f"ws://127.0.0.1:{self.port}/client"

    def rss_mib(self) -> float:
        """Resident memory of the node process."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kib = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        return kib / 1024

    def cpu_seconds(self) -> float:
        """User + system CPU time the node process used so far."""
        user, system = self.cpu_split()
        return user + system

    def cpu_split(self) -> tuple[float, float]:
        """User and system CPU seconds of the node process (loopback TCP work is system)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()
        self._tmp.cleanup()


class Conn:
    """One client connection: requests in order, frames counted or parsed on demand."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self._next = 0

    async def call(self, op: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        await self.ws.send_text(json.dumps({"id": self._next, "op": op, "params": params}))
        while True:
            message = await self.ws.receive()
            assert isinstance(message, Text), message
            frame: dict[str, Any] = json.loads(message.data)
            if frame.get("id") == self._next:
                assert "result" in frame, frame
                result: dict[str, Any] = frame["result"]
                return result


async def _open(node: Node, name: str, *, register: bool) -> Conn:
    conn = Conn(await connect(node.url))
    op = "register" if register else "login"
    await conn.call(op, username=name, password=PASSWORD)
    return conn


async def _room(node: Node, members: int) -> tuple[str, list[Conn]]:
    conns = [await _open(node, f"u{i}", register=True) for i in range(members)]
    room_id = (await conns[0].call("create_room", public=True))["room_id"]
    for conn in conns[1:]:
        await conn.call("join", room_id=room_id)
    return room_id, conns


async def _caught_up(conn: Conn, since: int | None = None) -> None:
    params = {} if since is None else {"since": since}
    await conn.call("sync", **params)
    while True:
        message = await conn.ws.receive()
        assert isinstance(message, Text)
        if '"caught_up":true' in message.data:
            return


async def throughput(
    node: Node, *, senders: int = 16, members: int = 20, seconds: float = 5
) -> None:
    """(1): 16 senders as fast as they can, 20 syncing members counting deliveries."""
    room_id, conns = await _room(node, members)
    readers = [await _open(node, f"u{i}", register=False) for i in range(members)]
    for reader in readers:
        await _caught_up(reader)
    delivered = 0
    sent = 0
    stop = trio.Event()

    async def read(reader: Conn) -> None:
        nonlocal delivered
        while not stop.is_set():
            message = await reader.ws.receive()
            if isinstance(message, Text):
                delivered += message.data.count('"kind":"event"')

    async def send(conn: Conn, index: int) -> None:
        nonlocal sent
        number = 0
        while not stop.is_set():
            await conn.call(
                "send", room_id=room_id, txn_id=f"{index}-{number}", content={"body": f"m{number}"}
            )
            number += 1
            sent += 1

    cpu_before = node.cpu_seconds()
    load_before = _own_cpu()
    async with trio.open_nursery() as nursery:
        for reader in readers:
            nursery.start_soon(read, reader)
        start = time.perf_counter()
        for index, conn in enumerate(conns[:senders]):
            nursery.start_soon(send, conn, index)
        await trio.sleep(seconds)
        stop.set()
        elapsed = time.perf_counter() - start
        cpu = node.cpu_seconds() - cpu_before
        load_cpu = _own_cpu() - load_before
        nursery.cancel_scope.cancel()
    emit(
        {
            "bench": "node_throughput",
            "senders": senders,
            "members_online": members,
            "messages_per_s": round(sent / elapsed),
            "deliveries_per_s": round(delivered / elapsed),
            "node_cpu_share": round(cpu / elapsed, 2),
            "load_generator_cpu_share": round(load_cpu / elapsed, 2),
            "target_messages_per_s": 2000,
            "target_deliveries_per_s": 40000,
        }
    )


async def latency(node: Node, *, rate: int = 200, members: int = 20, seconds: float = 5) -> None:
    """(2): one sender at ``rate`` messages/s; each member's delivery time, p50 and p99."""
    room_id, conns = await _room(node, members)
    readers = [await _open(node, f"u{i}", register=False) for i in range(members)]
    for reader in readers:
        await _caught_up(reader)
    samples: list[float] = []
    stop = trio.Event()

    async def read(reader: Conn) -> None:
        while not stop.is_set():
            message = await reader.ws.receive()
            if isinstance(message, Text) and '"sent_at":' in message.data:
                for item in json.loads(message.data)["params"]["items"]:
                    sent_at = item["event"]["content"].get("sent_at")
                    if sent_at is not None:
                        samples.append((time.perf_counter_ns() - sent_at) / 1e9)

    async with trio.open_nursery() as nursery:
        for reader in readers:
            nursery.start_soon(read, reader)
        interval = 1 / rate
        next_send = time.perf_counter()
        number = 0
        end = next_send + seconds
        while time.perf_counter() < end:
            await trio.sleep(max(0.0, next_send - time.perf_counter()))
            # sent_at uses this process's perf_counter: the readers are in it too.
            content = {"body": "x", "sent_at": time.perf_counter_ns()}
            await conns[0].call("send", room_id=room_id, txn_id=f"l{number}", content=content)
            number += 1
            next_send += interval
        await trio.sleep(0.5)
        stop.set()
        nursery.cancel_scope.cancel()
    samples.sort()
    emit(
        {
            "bench": "node_latency",
            "rate_per_s": rate,
            "members_online": members,
            "deliveries": len(samples),
            "p50_ms": round(statistics.median(samples) * 1000, 2),
            "p99_ms": round(samples[int(len(samples) * 0.99)] * 1000, 2),
            "target_p99_ms": 10,
        }
    )


async def memory(node: Node, *, clients: int = 1000) -> None:
    """(3) and (5): RSS idle, with 1,000 idle synced clients, and their heartbeats' CPU."""
    await trio.sleep(1)
    idle = node.rss_mib()
    await _room(node, 2)
    conns = []
    for _ in range(clients):
        conn = await _open(node, "u1", register=False)
        await _caught_up(conn)
        conns.append(conn)
    await trio.sleep(1)
    loaded = node.rss_mib()
    emit(
        {
            "bench": "node_memory",
            "rss_idle_mib": round(idle, 1),
            "idle_clients": clients,
            "rss_with_clients_mib": round(loaded, 1),
            "added_mib": round(loaded - idle, 1),
            "target_idle_mib": 60,
            "target_added_mib": 40,
        }
    )
    period = 5.0
    window = 20.0
    user_before, system_before = node.cpu_split()
    start = time.perf_counter()

    async def beat(conn: Conn, offset: float) -> None:
        await trio.sleep(offset)
        while time.perf_counter() - start < window:
            await conn.call("heartbeat")
            await trio.sleep(period)

    async with trio.open_nursery() as nursery:
        for i, conn in enumerate(conns):
            nursery.start_soon(beat, conn, period * i / len(conns))
    elapsed = time.perf_counter() - start
    user, system = node.cpu_split()
    emit(
        {
            "bench": "node_heartbeats",
            "devices": clients,
            "period_s": period,
            "node_cpu_share": round((user - user_before + system - system_before) / elapsed, 3),
            "node_user_cpu_share": round((user - user_before) / elapsed, 3),
            "node_system_cpu_share": round((system - system_before) / elapsed, 3),
            "target_cpu_share": 0.05,
        }
    )
    for conn in conns:
        await conn.ws.aclose()


async def catch_up(node: Node, *, missed: int = 10_000, limited: bool) -> None:
    """(4): a device away for ``missed`` messages syncs from its cursor."""
    room_id, conns = await _room(node, 2)
    away = await _open(node, "u1", register=False)
    await _caught_up(away)
    head = (await away.call("sync"))["position"]
    await away.ws.aclose()
    for number in range(missed):
        await conns[0].call("send", room_id=room_id, txn_id=f"c{number}", content={"body": "m"})
    back = await _open(node, "u1", register=False)
    start = time.perf_counter()
    await _caught_up(back, since=head)
    emit(
        {
            "bench": "node_catch_up",
            "missed_messages": missed,
            "limited": limited,
            "seconds": round(time.perf_counter() - start, 3),
            "target_seconds": 2,
        }
    )


def _run(scenario: Callable[[Node], Awaitable[None]], **node_options: Any) -> None:
    node = Node(**node_options)
    try:
        trio.run(scenario, node)
    finally:
        node.stop()


def main() -> None:
    """Every node load benchmark, each on a fresh node."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    _run(throughput)
    _run(latency)
    _run(memory)
    _run(lambda node: catch_up(node, limited=True))
    _run(lambda node: catch_up(node, limited=False), catch_up_limit=20_000)


if __name__ == "__main__":
    main()
