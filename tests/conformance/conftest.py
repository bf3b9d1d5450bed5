"""Fixtures of the conformance suite: the implementation adapter and a node to talk to.

``--impl module:attribute`` picks the adapter the algorithm tests check (default: this
repository's ``protocol``). ``--node-url ws://host:port`` points the wire tests at a running
node; without it a fresh node is started with ``kith serve --port 0`` in a temporary
folder and stopped with SIGTERM at the end, which must exit cleanly. ``--server-name``
tells the federation tests the running node's server name; without it they learn it from
a user they register (``--registration-token``).
"""

from __future__ import annotations

import importlib
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.conformance.adapter import Implementation
from tests.conformance.client_session import session

_LISTENING = re.compile(r"\bevent=listening\b.*\bport=(\d+)")
_START_TIMEOUT_S = 20.0
_STOP_TIMEOUT_S = 10.0
_SERVER_NAME = "node.conformance.test"
"""The server name of the node the suite starts itself."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--server-name``: the server name of the node given by ``--node-url``."""
    parser.getgroup("kith conformance").addoption(
        "--server-name",
        default=None,
        help="server name of the node given by --node-url, for the federation tests "
        "(default: learnt from a user registered with --registration-token)",
    )


@pytest.fixture(scope="session")
def impl(request: pytest.FixtureRequest) -> Implementation:
    """The implementation adapter under test."""
    module_name, _, attribute = str(request.config.getoption("--impl")).partition(":")
    adapter: Implementation = getattr(importlib.import_module(module_name), attribute)
    return adapter


def _kith_command() -> list[str]:
    beside_python = Path(sys.executable).with_name("kith")
    if beside_python.exists():
        return [str(beside_python)]
    found = shutil.which("kith")
    if found is None:
        pytest.fail("the `kith` command is not installed; run `make test`")
    return [found]


def _pump_lines(stream: Any, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


_TOKEN = "conformance-" + "x" * 32


@pytest.fixture(scope="session")
def registration_token(request: pytest.FixtureRequest) -> str:
    """The token that registers users on the node under test."""
    given = request.config.getoption("--registration-token")
    if request.config.getoption("--node-url") and not given:
        pytest.skip("checking a running node's client protocol needs --registration-token")
    return str(given) if given else _TOKEN


@pytest.fixture(scope="session")
def node_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Base ``ws://host:port`` URL of the node under test."""
    given = request.config.getoption("--node-url")
    if given:
        yield str(given).rstrip("/")
        return
    data = tmp_path_factory.mktemp("conformance-node")
    # Token registration, so the client tests can make users; cheap hashes, for speed.
    (data / "kith.toml").write_text(
        f'[server]\nname = "{_SERVER_NAME}"\n'
        f'[registration]\nmode = "token"\ntoken = "{_TOKEN}"\n[passwords]\ncost = "min"\n',
        encoding="utf-8",
    )
    command = [*_kith_command(), "serve", "--host", "127.0.0.1", "--port", "0", "--data", str(data)]
    lines: queue.Queue[str | None] = queue.Queue()
    with subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as process:
        pump = threading.Thread(target=_pump_lines, args=(process.stderr, lines), daemon=True)
        pump.start()
        try:
            yield f"ws://127.0.0.1:{_wait_for_port(process, lines)}"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=_STOP_TIMEOUT_S) == 0, "the node did not stop cleanly"
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            pump.join(timeout=_STOP_TIMEOUT_S)


def _wait_for_port(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> int:
    """Read the node's log until its ``event=listening`` line; return the bound port."""
    while True:
        try:
            line = lines.get(timeout=_START_TIMEOUT_S)
        except queue.Empty:
            pytest.fail("the node did not log event=listening in time")
        if line is None:
            pytest.fail(f"the node exited early with code {process.wait()}")
        match = _LISTENING.search(line)
        if match:
            return int(match.group(1))


@pytest.fixture(scope="session")
def server_name(request: pytest.FixtureRequest, node_url: str) -> str:
    """The node under test's server name: who a fake peer asks for (federation.md §2.2)."""
    given = request.config.getoption("--server-name", default=None)
    if given:
        return str(given)
    if not request.config.getoption("--node-url"):
        return _SERVER_NAME
    token = request.config.getoption("--registration-token")
    if not token:
        pytest.skip(
            "checking a running node's federation needs --server-name or --registration-token"
        )
    return trio.run(_server_name_of_a_user, node_url, str(token))


async def _server_name_of_a_user(node_url: str, token: str) -> str:
    """Register a user and read the server name from its user id (ids.md §3)."""
    with trio.fail_after(_START_TIMEOUT_S):
        async with session(node_url) as client:
            user_id = await client.register(token, "probe")
    return user_id.partition(":")[2]
