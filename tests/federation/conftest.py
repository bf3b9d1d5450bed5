"""Fixtures of the federation tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.federation.cluster import Cluster


@pytest.fixture
async def cluster(nursery: trio.Nursery, tmp_path: Path) -> Cluster:
    """Two real nodes, ``a.test`` and ``b.test``, each behind its fault proxy."""
    cluster = Cluster(nursery, tmp_path)
    await cluster.start("a", "b")
    return cluster
