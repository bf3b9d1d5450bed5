"""The floor under the heartbeat target: what trio alone costs for the same traffic.

A bare trio TCP server — no WebSocket, no JSON, no node — answers 1,000 connections that
each send one small message every 5 s, the traffic of target (5) in ``bench.node_load``.
Its CPU share is what any trio server pays for 200 wake-ups a second; the node's row minus
this one is what the node's own code costs. Two servers are measured: one reading through
``trio.SocketStream`` and one that waits for readability and reads the socket directly (as
the node does). Run: ``python -m bench.trio_floor``.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import trio

from bench.common import emit

_REQUEST = b'{"id":1,"op":"heartbeat","params":{}}'
_ANSWER = b'{"id":1,"result":{}}'


async def _stream_handler(stream: trio.SocketStream) -> None:
    while await stream.receive_some(65536):
        await stream.send_all(_ANSWER)


async def _raw_handler(stream: trio.SocketStream) -> None:
    sock = stream.socket
    fd = sock.fileno()
    while True:
        await trio.lowlevel.wait_readable(sock)
        try:
            if not os.read(fd, 65536):
                return
        except BlockingIOError:
            continue
        os.write(fd, _ANSWER)


async def _serve(raw: bool) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    print(listeners[0].socket.getsockname()[1], flush=True)
    handler = _raw_handler if raw else _stream_handler
    await trio.serve_listeners(handler, listeners)


def _cpu(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


async def _load(
    port: int, pid: int, *, raw: bool, clients: int, period: float, window: float
) -> None:
    streams = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(clients)]
    for stream in streams:
        stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
    await trio.sleep(1)
    user_before, system_before = _cpu(pid)
    start = time.perf_counter()

    async def beat(stream: trio.SocketStream, offset: float) -> None:
        await trio.sleep(offset)
        while time.perf_counter() - start < window:
            await stream.send_all(_REQUEST)
            await stream.receive_some(100)
            await trio.sleep(period)

    async with trio.open_nursery() as nursery:
        for index, stream in enumerate(streams):
            nursery.start_soon(beat, stream, period * index / clients)
    elapsed = time.perf_counter() - start
    user, system = _cpu(pid)
    emit(
        {
            "bench": "trio_floor_heartbeats",
            "reader": "raw socket" if raw else "SocketStream",
            "devices": clients,
            "period_s": period,
            "server_cpu_share": round((user - user_before + system - system_before) / elapsed, 3),
            "server_user_cpu_share": round((user - user_before) / elapsed, 3),
            "server_system_cpu_share": round((system - system_before) / elapsed, 3),
        }
    )


def main(clients: int = 1000, period: float = 5.0, window: float = 20.0) -> None:
    """Both floors, each on a fresh server process."""
    for raw in (False, True):
        command = [sys.executable, "-m", "bench.trio_floor", "--serve", "raw" if raw else "stream"]
        server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            load = functools.partial(
                _load, port, server.pid, raw=raw, clients=clients, period=period, window=window
            )
            trio.run(load)
        finally:
            server.kill()
            server.wait()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        trio.run(_serve, sys.argv[2] == "raw")
    else:
        main()
