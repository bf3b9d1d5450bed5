"""A fake peer against one of our nodes started in-process.

The adversarial checks themselves — the link's handshake (spec/federation.md §2.2), the
checks of §4 each refused with its reason, fetches and invites refused, the node serving on
after each — are black-box and live in the conformance suite
(``tests/conformance/test_federation_*.py``), where they run against any node. This module
keeps the way to point that suite's fake peer at a node of these tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tests.conformance.fake_peer import FakePeer, open_fake_peer

__all__ = ["PEER", "FakePeer", "fake_peer"]

PEER = "evil.test"
"""The fake server's name: each of these tests starts a fresh node, so it can be fixed."""


@asynccontextmanager
async def fake_peer(
    port: int, *, node_name: str = "localhost", name: str = PEER
) -> AsyncIterator[FakePeer]:
    """A fake peer on the ``/federation`` endpoint of the node at ``127.0.0.1:port``."""
    async with open_fake_peer(f"ws://127.0.0.1:{port}", node_name, name) as peer:
        yield peer
