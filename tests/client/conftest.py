"""Fixtures of the client tests: a real node on 127.0.0.1 (port 0, its own data folder,
open registration, cheap password hashes) and a fake clock that never counts network time."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from node.config import NodeConfig
from tests.client.helpers import NodeRunner
from tests.node.session_client import node_config


@pytest.fixture
def config(tmp_path: Path) -> NodeConfig:
    """A node's settings: free loopback port, its own data folder, open registration."""
    return node_config(tmp_path)


@pytest.fixture
async def node(nursery: trio.Nursery, config: NodeConfig) -> NodeRunner:
    """A node running for the test; ``node.url`` is its client URL."""
    runner = NodeRunner(config)
    await runner.start(nursery)
    return runner


@pytest.fixture
def network_clock() -> trio.testing.MockClock:
    """A fake clock for tests that wait (backoff, heartbeats) over real sockets.

    It jumps to the next deadline only once every task has been blocked for 20 ms of real
    time, long after an in-process socket has delivered, so round trips never count as idle
    while waits of seconds pass at once (tests/node/conftest.py has the same).
    """
    return trio.testing.MockClock(autojump_threshold=0.02)
