"""Two nodes that federate, each its own ``kith serve`` process, for the federation benchmarks.

Each node has a data folder with a ``kith.toml``: its server name, a loopback port chosen
before either node starts (so ``[peers]`` can name the other's, and a restarted node comes
back where its peer expects it), open registration, the minimum password cost and no
per-connection rate limit. A node runs as ``python -m node serve --data DIR``, its log going
to ``node.log`` in that folder (a pipe nobody reads would fill and stall it); it listens once
its ``event=listening`` line appears. Stopping sends SIGTERM, the node's clean shutdown.

What a node holds is read from its database (``kith.db``, WAL mode) over a read-only
connection of this process, so counting never asks the node for anything. Setup that needs
the node's internals (seeding a big room) runs the node in this process from the same folder
with :meth:`NodeProcess.in_process`, while its process is down.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import trio

import node.app
from node.config import load_config

__all__ = ["NodeProcess", "Window", "pair"]

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
POLL_S = 0.02
"""How often a wait looks at a log or a database: rarely enough not to load the node."""

_LISTENING = re.compile(rb"\bevent=listening\b.*\bport=(\d+)")
_CONFIG = """\
[listen]
host = "127.0.0.1"
port = {port}

[server]
name = "{name}"

[registration]
mode = "open"

[passwords]
cost = "min"

[limits]
requests_per_second = 1000000
request_burst = 1000000

[peers]
"{peer}" = "127.0.0.1:{peer_port}"
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class NodeProcess:
    """One node: its data folder and, while it is up, the ``kith serve`` process serving it."""

    def __init__(self, data: Path, name: str, port: int, *, peer: str, peer_port: int) -> None:
        self.data = data
        self.name = name
        self.port = port
        data.mkdir(parents=True)
        config = _CONFIG.format(name=name, port=port, peer=peer, peer_port=peer_port)
        (data / "kith.toml").write_text(config)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._db: sqlite3.Connection | None = None

    @property
    def url(self) -> str:
        """The node's client endpoint."""
        return f"ws://127.0.0.1:{self.port}/client"

    async def start(self) -> None:
        """Start the node's process; return once it listens."""
        log_path = self.data / "node.log"
        self._log = log_path.open("ab")
        offset = self._log.tell()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "node", "serve", "--data", str(self.data)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with log_path.open("rb") as log:
                log.seek(offset)
                match = _LISTENING.search(log.read())
            if match:
                if int(match.group(1)) != self.port:
                    raise RuntimeError(f"{self.name} listens on {int(match.group(1))}")
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start; see {log_path}")
            await trio.sleep(POLL_S)
        self._db = sqlite3.connect(
            f"file:{self.data / node.app.DATABASE_FILE_NAME}?mode=ro", uri=True
        )

    async def stop(self) -> None:
        """Stop the process as a shutdown does (SIGTERM) and wait until it has exited."""
        process = self.process
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(STOP_TIMEOUT_S):
            while process.poll() is None:
                await trio.sleep(POLL_S)
        self.close()

    def close(self) -> None:
        """Kill the process if it still runs (a benchmark that failed) and let go of it."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def cpu_seconds(self) -> float:
        """User and system CPU seconds of the running process (0 while it is down)."""
        if self.process is None:
            return 0.0
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _count(self, sql: str, *params: str) -> int:
        if self._db is None:
            raise RuntimeError(f"{self.name} is not running")
        count: int = self._db.execute(sql, params).fetchone()[0]
        return count

    def stored(self, room_id: str) -> int:
        """How many events of the room the node has stored (committed)."""
        return self._count("SELECT COUNT(*) FROM events WHERE room_id = ?", room_id)

    def queued(self) -> int:
        """How many events wait in the node's outbox."""
        return self._count("SELECT COUNT(*) FROM fed_outbox")

    @contextlib.asynccontextmanager
    async def in_process(self) -> AsyncIterator[node.app.Node]:
        """Run the node in this process from its data folder, for setup; its process is down."""
        if self.process is not None:
            raise RuntimeError(f"{self.name} runs as a process")
        config = load_config(self.data)
        async with trio.open_nursery() as nursery:
            with _recording():
                await nursery.start(node.app.serve_node, config)
            yield _BUILT.pop(self.name)
            nursery.cancel_scope.cancel()


def pair(data: Path) -> tuple[NodeProcess, NodeProcess]:
    """Nodes a.test and b.test in ``data``, each configured with the other as a peer."""
    port_a, port_b = _free_port(), _free_port()
    a = NodeProcess(data / "a.test", "a.test", port_a, peer="b.test", peer_port=port_b)
    b = NodeProcess(data / "b.test", "b.test", port_b, peer="a.test", peer_port=port_a)
    return a, b


_BUILT: dict[str, node.app.Node] = {}
"""The node :meth:`NodeProcess.in_process` started, by server name, until it takes it."""


@dataclass
class _RecordedNode(node.app.Node):
    """A node that leaves itself in :data:`_BUILT` once ``serve_node`` has built it."""

    def __post_init__(self) -> None:
        _BUILT[self.server_name] = self


@contextlib.contextmanager
def _recording() -> Iterator[None]:
    """Have ``serve_node`` build :class:`_RecordedNode`: it reports only its port."""
    namespace = vars(node.app)
    original = namespace["Node"]
    namespace["Node"] = _RecordedNode
    try:
        yield
    finally:
        namespace["Node"] = original


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Window:
    """A measured window: wall time, and CPU seconds of each node process and of the bench.

    A node down when the window opens (to be started in it) counts all of its process's CPU.
    """

    def __init__(self, *nodes: NodeProcess) -> None:
        self._nodes = nodes
        self._cpu = [n.cpu_seconds() for n in nodes]
        self._own = _own_cpu()
        self._start = time.perf_counter()
        self.seconds = 0.0
        self.cpu: dict[str, float] = {}

    def elapsed(self) -> float:
        """Seconds since the window opened."""
        return time.perf_counter() - self._start

    def close(self) -> None:
        """End the window: fix its seconds and each process's CPU seconds."""
        self.seconds = self.elapsed()
        for n, before in zip(self._nodes, self._cpu, strict=True):
            self.cpu[f"{n.name.split('.')[0]}_cpu_seconds"] = round(n.cpu_seconds() - before, 2)
        self.cpu["bench_cpu_seconds"] = round(_own_cpu() - self._own, 2)
