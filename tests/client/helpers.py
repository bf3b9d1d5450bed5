"""Helpers of the client tests: a node that can be stopped and started again on the same
port and data folder, signed-up sessions, and readers of the update stream."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

import client
import node
from node.app import serve_node
from node.config import NodeConfig
from tests.node.session_client import PASSWORD

__all__ = [
    "PASSWORD",
    "REPO",
    "TIMEOUT",
    "NodeRunner",
    "bodies",
    "caught_up",
    "is_message",
    "seeded_backoff",
    "signed_up",
    "updates_until",
]

REPO = Path(node.__file__).resolve().parent.parent
"""The repository's root: where ``python -m node`` runs from in process tests."""
TIMEOUT = 10
"""Bound on every network test: generous for a loaded machine, instant when all is well."""


def seeded_backoff(seed: int = 7, **settings: Any) -> client.Backoff:
    """A backoff whose jitter is the same on every run."""
    return client.Backoff(rng=random.Random(seed), **settings)


class NodeRunner:
    """A real node in the test's nursery that the test can stop and start again.

    The second start reuses the first one's port (and the same data folder), as a node
    restarted by its operator would, so clients reconnect to the same URL.
    """

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.port = 0
        self._scope: trio.CancelScope | None = None
        self._stopped = trio.Event()

    @property
    def url(self) -> str:
        """The node's client URL."""
        return f"ws://127.0.0.1:{self.port}"

    async def start(self, nursery: trio.Nursery) -> None:
        """Start the node (on its earlier port, if it ran before)."""
        if self.port:
            self.config = dataclasses.replace(self.config, port=self.port)
        self._stopped = trio.Event()
        self.port = await nursery.start(self._serve)

    async def _serve(self, *, task_status: trio.TaskStatus[int]) -> None:
        try:
            with trio.CancelScope() as self._scope:
                await serve_node(self.config, task_status=task_status)
        finally:
            self._stopped.set()

    async def stop(self) -> None:
        """Stop the node and wait until it is gone (its connections closed)."""
        assert self._scope is not None
        self._scope.cancel()
        await self._stopped.wait()


@asynccontextmanager
async def signed_up(url: str, name: str, **options: Any) -> AsyncIterator[client.Session]:
    """A session registered as ``@name:localhost`` (its own in-memory store by default)."""
    options.setdefault("backoff", seeded_backoff())
    async with client.connect(url, **options) as session:
        await session.register(name, PASSWORD)
        yield session


async def updates_until(
    stream: client.UpdateStream, done: Callable[[client.Update], bool]
) -> list[client.Update]:
    """Updates from ``stream`` up to and including the first that ``done`` accepts."""
    seen: list[client.Update] = []
    async for update in stream:
        seen.append(update)
        if done(update):
            return seen
    raise AssertionError(f"the stream ended first: {seen}")


def bodies(updates: list[client.Update]) -> list[str]:
    """The text of the messages among ``updates``, in order."""
    return [
        u.event.body
        for u in updates
        if isinstance(u, client.EventItem) and u.event.body is not None
    ]


def is_message(body: str) -> Callable[[client.Update], bool]:
    """A predicate: the update is the message ``body``."""
    return lambda u: isinstance(u, client.EventItem) and u.event.body == body


def caught_up(update: client.Update) -> bool:
    """A predicate: the stream caught up."""
    return isinstance(update, client.CaughtUp)
