"""``kith serve`` as a real process, the way the conformance suite and operators run it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio

import node
from node.keys import KEY_FILE_NAME
from tests.node.logfmt import parse_logfmt
from tests.node.wsclient import TIMEOUT, call, connect, ping

_REPO_ROOT = Path(node.__file__).resolve().parent.parent


class LineReader:
    """Splits a process's stderr into lines as they arrive."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self.lines: list[str] = []

    async def next_line(self) -> str | None:
        """The next complete line, or None at end of stream."""
        while b"\n" not in self._buffer:
            chunk = await self._stream.receive_some()
            if not chunk:
                return None
            self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer[:] = rest
        self.lines.append(line.decode())
        return self.lines[-1]

    async def wait_for_event(self, event: str) -> dict[str, str]:
        """Read until the logfmt line of ``event``; its fields."""
        while (line := await self.next_line()) is not None:
            fields = parse_logfmt(line)
            if fields.get("event") == event:
                return fields
        raise AssertionError(f"stderr ended before event={event}: {self.lines}")

    async def read_to_end(self) -> None:
        """Read everything left until the process closes stderr."""
        while await self.next_line() is not None:
            pass


@asynccontextmanager
async def kith_serve(data_dir: Path) -> AsyncIterator[tuple[trio.Process, LineReader]]:
    """Run ``python -m node serve --port 0 --data DIR``; always killed on the way out."""
    command = [sys.executable, "-m", "node", "serve", "--port", "0", "--data", str(data_dir)]
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                command,
                cwd=_REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                check=False,
            )
        )
        assert process.stderr is not None
        try:
            yield process, LineReader(process.stderr)
        finally:
            if process.returncode is None:
                process.kill()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_serve_answers_pings_and_stops_cleanly_on_a_signal(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    data = tmp_path / "kith-data"
    with trio.fail_after(3 * TIMEOUT):
        async with kith_serve(data) as (process, stderr):
            listening = await stderr.wait_for_event("listening")
            port = int(listening["port"])
            assert listening["url"] == f"ws://127.0.0.1:{port}"
            for path in ("/client", "/federation"):
                async with connect(port, path) as ws:
                    assert await call(ws, ping(path)) == {"id": path, "result": {}}
            process.send_signal(stop_signal)
            await stderr.read_to_end()
            assert await process.wait() == 0
    events = [parse_logfmt(line)["event"] for line in stderr.lines]
    assert events == ["key_created", "listening", "stopping", "stopped"]
    assert parse_logfmt(stderr.lines[2])["signal"] == stop_signal.name
    seed = (data / KEY_FILE_NAME).read_text().split()[2]
    assert not any(seed in line for line in stderr.lines)


async def test_kith_conformance_passes_against_a_served_node(tmp_path: Path) -> None:
    data = tmp_path / "kith-data"
    data.mkdir()
    (data / "kith.toml").write_text('[registration]\nmode = "token"\ntoken = "conform-token"\n')
    results = tmp_path / "results.jsonl"
    with trio.fail_after(20 * TIMEOUT):
        async with kith_serve(data) as (process, stderr):
            url = (await stderr.wait_for_event("listening"))["url"]
            command = [sys.executable, "-m", "node", "conformance", url]
            command += ["--registration-token", "conform-token", "--output", str(results)]
            check = await trio.run_process(
                command,
                cwd=_REPO_ROOT,
                stdout=subprocess.DEVNULL,
                check=False,
            )
            process.send_signal(signal.SIGTERM)
            await stderr.read_to_end()
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    outcomes = {line["outcome"] for line in lines}
    assert check.returncode == 0, [line for line in lines if line["outcome"] != "passed"]
    assert outcomes == {"passed"}
    # The whole suite ran, client protocol tests included.
    assert len(lines) > 300
    assert any("test_client.py" in line["test"] for line in lines)
