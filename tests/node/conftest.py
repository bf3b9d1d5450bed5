"""Fixtures: a real node on 127.0.0.1 with a free port and a fresh data folder."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from node.app import serve_node
from node.config import NodeConfig
from node.log import ROOT_LOGGER


@pytest.fixture(autouse=True)
def _restore_node_logger() -> Iterator[None]:
    """Undo ``configure_logging`` (run by CLI tests) so caplog sees the node's records."""
    logger = logging.getLogger(ROOT_LOGGER)
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture
def config(tmp_path: Path) -> NodeConfig:
    """Settings for a node on a free loopback port with its own data folder."""
    return NodeConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "kith-data")


@pytest.fixture
async def node_port(nursery: trio.Nursery, config: NodeConfig) -> int:
    """Start a node for the test (stopped when the test ends); its bound port."""
    port: int = await nursery.start(serve_node, config)
    return port
