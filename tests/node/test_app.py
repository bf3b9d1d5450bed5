"""``serve_node``: starts from a config, reports its port, logs the contract line, stops."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from node.app import serve_node
from node.config import NodeConfig
from node.keys import KEY_FILE_NAME, KeyFileError, load_key
from node.log import LogfmtFormatter
from node.transport.websocket import ListenError
from tests.node.logfmt import parse_logfmt
from tests.node.wsclient import TIMEOUT, call, close_code, connect, ping


def _events(caplog: pytest.LogCaptureFixture) -> dict[str, dict[str, str]]:
    formatter = LogfmtFormatter()
    lines = [parse_logfmt(formatter.format(record)) for record in caplog.records]
    return {fields["event"]: fields for fields in lines}


async def test_listening_event_carries_the_real_port_when_port_0_was_asked(
    nursery: trio.Nursery, config: NodeConfig, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="node"):
        port = await nursery.start(serve_node, config)
    listening = _events(caplog)["listening"]
    assert port != 0
    assert listening["level"] == "info"
    assert listening["port"] == str(port)
    assert listening["host"] == "127.0.0.1"
    assert listening["url"] == f"ws://127.0.0.1:{port}"
    assert listening["endpoints"] == "/client,/federation"
    with trio.fail_after(TIMEOUT):
        async with connect(port) as ws:
            assert await call(ws, ping(1)) == {"id": 1, "result": {}}


async def test_first_start_creates_the_key_and_later_starts_reuse_it(
    config: NodeConfig, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="node"):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_node, config)
            nursery.cancel_scope.cancel()
    first = _events(caplog)
    key = load_key(config.data_dir / KEY_FILE_NAME)
    assert first["key_created"]["key_id"] == key.key_id
    assert first["key_created"]["public_key"] == key.public_key
    assert first["listening"]["key_id"] == key.key_id
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="node"):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_node, config)
            nursery.cancel_scope.cancel()
    second = _events(caplog)
    assert "key_created" not in second
    assert second["listening"]["key_id"] == key.key_id


async def test_second_node_on_a_taken_port_raises_listen_error(
    nursery: trio.Nursery, node_port: int, tmp_path: Path
) -> None:
    other = NodeConfig(host="127.0.0.1", port=node_port, data_dir=tmp_path / "other")
    with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{node_port}"):
        await nursery.start(serve_node, other)


async def test_corrupt_key_file_stops_the_start_with_key_file_error(
    nursery: trio.Nursery, config: NodeConfig
) -> None:
    config.data_dir.mkdir()
    (config.data_dir / KEY_FILE_NAME).write_text("ed25519 nonsense\n")
    with pytest.raises(KeyFileError, match="is corrupt"):
        await nursery.start(serve_node, config)


async def test_cancelling_the_node_closes_its_port(config: NodeConfig) -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_node, config)
        nursery.cancel_scope.cancel()
    with trio.fail_after(TIMEOUT), pytest.raises(OSError, match="all attempts to connect"):
        await trio.open_tcp_stream("127.0.0.1", port)


async def test_cancelling_the_node_ends_open_connections(
    nursery: trio.Nursery, config: NodeConfig
) -> None:
    node_scope = trio.CancelScope()

    async def run_node(*, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        with node_scope:
            await serve_node(config, task_status=task_status)

    port = await nursery.start(run_node)
    with trio.fail_after(TIMEOUT):
        async with connect(port) as ws:
            assert await call(ws, ping(1)) == {"id": 1, "result": {}}
            node_scope.cancel()
            # The node drops TCP without a closing handshake; peers reconnect on 1006.
            assert await close_code(ws) == 1006
