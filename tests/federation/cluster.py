"""Several real nodes on loopback for federation tests, each reached through a fault proxy.

Every node's ``[peers]`` table sends its links to the other nodes' proxies, so a test can
cut, stall or delay the traffic into any node (``tests.faultproxy``). Proxies start first
— their ports go into the nodes' settings — and learn their node's port once it listens; a
restarted node gets a new port and its proxy follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from node.app import serve_node
from node.config import NodeConfig
from tests.faultproxy import FaultProxy


@dataclass
class Member:
    """One node of a cluster: its settings, its proxy and the scope it runs in."""

    name: str
    config: NodeConfig
    proxy: FaultProxy
    port: int = 0
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    stopped: trio.Event = field(default_factory=trio.Event)


class Cluster:
    """Nodes named ``<letter>.test``; start, stop and restart them."""

    def __init__(self, nursery: trio.Nursery, tmp_path: Path) -> None:
        self._nursery = nursery
        self._tmp_path = tmp_path
        self.members: dict[str, Member] = {}

    def __getitem__(self, name: str) -> Member:
        return self.members[name]

    async def start(self, *letters: str, **settings: Any) -> None:
        """Start a node per letter (``a`` → server name ``a.test``), all linked by proxies."""
        proxies: dict[str, FaultProxy] = {}
        for letter in letters:
            proxy = FaultProxy("127.0.0.1", 0)
            await self._nursery.start(proxy.serve)
            proxies[letter] = proxy
        for letter in letters:
            peers = {
                f"{other}.test": f"127.0.0.1:{proxy.port}"
                for other, proxy in proxies.items()
                if other != letter
            }
            config = NodeConfig(
                host="127.0.0.1",
                port=0,
                data_dir=self._tmp_path / letter,
                server_name=f"{letter}.test",
                password_cost="min",
                registration_mode="open",
                peers=peers,
                **settings,
            )
            self.members[letter] = Member(letter, config, proxies[letter])
        for letter in letters:
            await self.run(letter)

    async def run(self, letter: str) -> None:
        """Start (or restart) one node and point its proxy at it."""
        member = self.members[letter]
        member.scope = trio.CancelScope()
        member.stopped = trio.Event()

        async def serve(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                with member.scope:
                    await serve_node(member.config, task_status=task_status)
            finally:
                member.stopped.set()

        member.port = await self._nursery.start(serve)
        member.proxy.target_port = member.port

    async def stop(self, letter: str) -> None:
        """Stop one node as a shutdown does (its links close); wait until it is down."""
        member = self.members[letter]
        member.proxy.target_port = 0
        member.proxy.cut()
        member.scope.cancel()
        await member.stopped.wait()
        member.proxy.heal()
