"""Fixtures of the conformance suite: the implementation adapter and a node to talk to.

``--impl module:attribute`` picks the adapter the algorithm tests check (default: this
repository's ``protocol``). ``--node-url ws://host:port`` points the wire tests at a running
node; without it a fresh node is started with ``kith serve --port 0`` in a temporary
folder and stopped with SIGTERM at the end, which must exit cleanly. ``--server-name``
tells the federation tests the running node's server name; without it they learn it from
a user they register (``--registration-token``).

The tests of links the node opens itself (``test_federation_dialed.py``) need a fake peer
the node can reach (``tests.conformance.fake_peer_server``): for the node started here it
listens on a free loopback port, named in the node's ``[peers]``; for a node given by
``--node-url`` it listens at ``--peer-listen HOST:PORT`` under ``--peer-name NAME``, which
the node's operator maps in its ``[peers]`` — without those options the tests are
deselected, with the reason in the report's header.
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
from tests.conformance.fake_peer_server import PEER_NAME, FakePeerServer

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
    parser.getgroup("kith conformance").addoption(
        "--peer-listen",
        default=None,
        metavar="HOST:PORT",
        help="where the fake peer listens for the links the node given by --node-url opens "
        "itself; the node's [peers] must map --peer-name to this address",
    )
    parser.getgroup("kith conformance").addoption(
        "--peer-name",
        default=None,
        metavar="NAME",
        help=f"the fake peer's server name (default: {PEER_NAME})",
    )


_DIALED = "test_federation_dialed.py"
_NO_PEER = (
    "the node given by --node-url cannot reach a fake peer: pass --peer-listen HOST:PORT "
    "(and --peer-name NAME) and map NAME to that address in the node's [peers]"
)


def _peer_listen(config: pytest.Config) -> tuple[str, int] | None:
    """Where the fake peer listens: ``--peer-listen``, or a free loopback port for the node
    started here; None for a node given by ``--node-url`` without it."""
    given = config.getoption("--peer-listen")
    if given is None:
        return None if config.getoption("--node-url") else ("127.0.0.1", 0)
    host, _, port = str(given).rpartition(":")
    if not host or not port.isdigit():
        raise pytest.UsageError(f"--peer-listen: {given!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def pytest_report_header(config: pytest.Config) -> str | None:
    """Say why the tests of dialed links do not run, when they do not."""
    return None if _peer_listen(config) else f"{_DIALED}: deselected, {_NO_PEER}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests of dialed links when the node cannot reach a fake peer.

    Deselected rather than skipped: ``kith conformance`` reports every test that ran, and a
    node checked without a fake peer address has not failed them.
    """
    if _peer_listen(config) is not None:
        return
    dialed = [item for item in items if item.path.name == _DIALED]
    if dialed:
        config.hook.pytest_deselected(items=dialed)
        items[:] = [item for item in items if item.path.name != _DIALED]


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
def _peer_server(request: pytest.FixtureRequest) -> Iterator[FakePeerServer | None]:
    """The listening fake peer, started before the node (which must know its address)."""
    listen = _peer_listen(request.config)
    if listen is None:
        yield None
        return
    name = request.config.getoption("--peer-name") or PEER_NAME
    server = FakePeerServer(str(name), *listen)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fake_peer_server(
    _peer_server: FakePeerServer | None, node_url: str
) -> FakePeerServer:  # node_url: the node is up
    """A fake peer the node under test dials itself (federation.md §2.1 ``[peers]``)."""
    if _peer_server is None:
        pytest.skip(_NO_PEER)
    return _peer_server


@pytest.fixture(scope="session")
def node_url(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _peer_server: FakePeerServer | None,
) -> Iterator[str]:
    """Base ``ws://host:port`` URL of the node under test."""
    given = request.config.getoption("--node-url")
    if given:
        yield str(given).rstrip("/")
        return
    data = tmp_path_factory.mktemp("conformance-node")
    # Token registration, so the client tests can make users; cheap hashes, for speed.
    # The fake peer's address in [peers] (§2.1), so the node can dial it.
    peers = ""
    if _peer_server is not None:
        peers = f'[peers]\n"{_peer_server.name}" = "127.0.0.1:{_peer_server.port}"\n'
    (data / "kith.toml").write_text(
        f'[server]\nname = "{_SERVER_NAME}"\n'
        f'[registration]\nmode = "token"\ntoken = "{_TOKEN}"\n[passwords]\ncost = "min"\n' + peers,
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
