"""The node's WebSocket byte for byte over a raw socket: handshake answers, frames sent with
the handshake, the closing handshake (RFC 6455 §5.5.1, §7) and frames no client may send.

A raw TCP stream lets a test send what a WebSocket library would not (a frame in the
handshake's segment, an unmasked frame, a header announcing 9 MiB) and see exactly which
bytes the node answers and when it drops TCP.
"""

from __future__ import annotations

import json
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from node.transport.frame_reader import unmask
from node.transport.websocket import CLOSE_TIMEOUT
from tests.node.test_handshake import upgrade_request
from tests.node.wsclient import TIMEOUT

MASK = b"\x0f\xf0\x5a\xa5"


def client_frame(opcode: int, payload: bytes = b"", *, fin: bool = True) -> bytes:
    """A masked frame as a client sends it (RFC 6455 §5.2)."""
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        header = bytes((first, 0x80 | length))
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    return header + MASK + unmask(payload, MASK)


def text(frame: dict[str, object]) -> bytes:
    return client_frame(0x1, json.dumps(frame).encode())


def close(code: int | None = None, reason: bytes = b"") -> bytes:
    return client_frame(0x8, b"" if code is None else code.to_bytes(2, "big") + reason)


def next_server_frame(data: bytes) -> tuple[tuple[int, bytes], bytes] | None:
    """The first frame the node sent in ``data`` as (opcode, payload), and the rest; None
    until all of it is there."""
    if len(data) < 2:
        return None
    first, length = data[0], data[1]
    assert first & 0x80, "the node sends no fragments"
    assert not length & 0x80, "server frames are not masked (RFC 6455 §5.1)"
    offset = 2
    if length == 126:
        offset = 4
        length = int.from_bytes(data[2:4], "big") if len(data) >= offset else 1 << 64
    elif length == 127:
        offset = 10
        length = int.from_bytes(data[2:10], "big") if len(data) >= offset else 1 << 64
    if len(data) < offset + length:
        return None
    return (first & 0x0F, data[offset : offset + length]), data[offset + length :]


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Every frame in ``data``, which must hold complete frames only."""
    frames: list[tuple[int, bytes]] = []
    while data:
        parsed = next_server_frame(data)
        assert parsed is not None, f"incomplete frame {data!r}"
        frame, data = parsed
        frames.append(frame)
    return frames


class RawClient:
    """One TCP connection speaking WebSocket by hand."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.received = b""

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def read_until_closed(self) -> bytes:
        """Everything the node sends until it drops TCP."""
        while chunk := await self.stream.receive_some():
            self.received += chunk
        data, self.received = self.received, b""
        return data

    async def response_head(self) -> bytes:
        """The HTTP response head (up to the blank line); what follows stays buffered."""
        while b"\r\n\r\n" not in self.received:
            chunk = await self.stream.receive_some()
            assert chunk, f"the node closed after {self.received!r}"
            self.received += chunk
        head, _, self.received = self.received.partition(b"\r\n\r\n")
        return head

    async def frames(self, count: int) -> list[tuple[int, bytes]]:
        """The next ``count`` frames the node sends."""
        while True:
            frames: list[tuple[int, bytes]] = []
            rest = self.received
            while len(frames) < count and (parsed := next_server_frame(rest)) is not None:
                frame, rest = parsed
                frames.append(frame)
            if len(frames) == count:
                self.received = rest
                return frames
            chunk = await self.stream.receive_some()
            assert chunk, f"the node closed after {self.received!r}"
            self.received += chunk


@asynccontextmanager
async def raw(port: int, request: bytes = b"", then: bytes = b"") -> AsyncIterator[RawClient]:
    """Connect, send ``request`` (a valid upgrade by default) and ``then`` in one write."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        client = RawClient(stream)
        await client.send((request or upgrade_request()) + then)
        yield client


@asynccontextmanager
async def opened(port: int) -> AsyncIterator[RawClient]:
    """A raw client whose handshake the node accepted."""
    async with raw(port) as client:
        assert (await client.response_head()).startswith(b"HTTP/1.1 101 ")
        yield client


def status_and_body(response: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    headers = dict(line.lower().split(b": ", 1) for line in lines)
    return int(status_line.split()[1]), headers, body


PING = {"id": 1, "op": "ping", "params": {}}
PONG = json.dumps({"id": 1, "result": {}}, separators=(",", ":")).encode()


# --- the handshake ---------------------------------------------------------------------------


async def test_a_frame_sent_in_the_handshakes_segment_is_answered(node_port: int) -> None:
    # wsproto's server dropped bytes that came with the request: such a client hung.
    with trio.fail_after(TIMEOUT):
        async with raw(node_port, then=text(PING) + close(1000)) as client:
            response = await client.read_until_closed()
    head, _, rest = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert server_frames(rest) == [(0x1, PONG), (0x8, b"\x03\xe8")]


async def test_a_plain_http_request_gets_400_with_a_reason(node_port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with raw(node_port, b"GET /client HTTP/1.1\r\nHost: node\r\n\r\n") as client:
            status, headers, body = status_and_body(await client.read_until_closed())
    assert status == 400
    assert headers[b"connection"] == b"close"
    assert b"Upgrade" in body


async def test_another_websocket_version_gets_426_naming_13(node_port: int) -> None:
    request = upgrade_request(replace={"Sec-WebSocket-Version": "8"})
    with trio.fail_after(TIMEOUT):
        async with raw(node_port, request) as client:
            status, headers, _ = status_and_body(await client.read_until_closed())
    assert status == 426
    assert headers[b"sec-websocket-version"] == b"13"


async def test_an_unknown_path_gets_404_saying_what_is_served(node_port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with raw(node_port, upgrade_request("/chat?x=/client")) as client:
            status, _, body = status_and_body(await client.read_until_closed())
    assert (status, body) == (404, b"not found: a Kith node serves /client and /federation")


async def test_an_oversized_request_gets_431(node_port: int) -> None:
    request = upgrade_request(extra=(("X-Padding", "x" * 20_000),))
    with trio.fail_after(TIMEOUT):
        async with raw(node_port, request) as client:
            status, _, _ = status_and_body(await client.read_until_closed())
    assert status == 431


# --- the closing handshake -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "answer"),
    [
        (close(1000, b"bye"), b"\x88\x02\x03\xe8"),
        (close(4000), b"\x88\x02\x0f\xa0"),
        (close(), b"\x88\x00"),  # no code: an empty close, 1005 is never sent
    ],
)
async def test_the_peers_close_is_echoed_then_tcp_is_dropped(
    node_port: int, sent: bytes, answer: bytes
) -> None:
    with trio.fail_after(TIMEOUT):
        async with opened(node_port) as client:
            await client.send(sent + text(PING))  # nothing after a close is read
            assert await client.read_until_closed() == answer


async def test_a_ping_is_answered_with_a_pong_of_the_same_payload(node_port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with opened(node_port) as client:
            await client.send(client_frame(0x9, b"hello") + text(PING))
            assert await client.frames(2) == [(0xA, b"hello"), (0x1, PONG)]
            await client.send(close(1000))
            assert await client.read_until_closed() == b"\x88\x02\x03\xe8"


async def test_a_fragmented_message_with_a_ping_inside_is_answered(node_port: int) -> None:
    body = json.dumps(PING).encode()
    fragments = (
        client_frame(0x1, body[:5], fin=False)
        + client_frame(0x9, b"mid")
        + client_frame(0x0, body[5:9], fin=False)
        + client_frame(0x0, body[9:])
    )
    with trio.fail_after(TIMEOUT):
        async with opened(node_port) as client:
            for byte in range(len(fragments)):  # one byte per write: every read is partial
                await client.send(fragments[byte : byte + 1])
            assert await client.frames(2) == [(0xA, b"mid"), (0x1, PONG)]
            await client.send(close(1000))
            await client.read_until_closed()


async def test_the_nodes_close_waits_for_the_peers_then_drops_tcp(node_port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with opened(node_port) as client:
            await client.send(client_frame(0x1, b'{"id": 1,'))
            (_, error), (opcode, payload) = await client.frames(2)
            assert json.loads(error)["error"]["code"] == "bad_json"
            assert (opcode, payload[:2]) == (0x8, b"\x03\xef")  # 1007
            await client.send(close(1007))
            assert await client.read_until_closed() == b""


async def test_a_peer_that_never_answers_the_close_is_dropped_after_the_timeout(
    node_port: int, network_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(CLOSE_TIMEOUT + TIMEOUT):
        async with opened(node_port) as client:
            await client.send(client_frame(0x2, b"binary"))
            await client.frames(2)  # bad_frame, then the close 1003
            started = trio.current_time()
            assert await client.read_until_closed() == b""
    assert trio.current_time() - started >= CLOSE_TIMEOUT


# --- what no client may send -----------------------------------------------------------------


async def test_invalid_utf8_text_answers_bad_json_then_closes_with_1007(node_port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with opened(node_port) as client:
            await client.send(client_frame(0x1, b'{"id": "\xff"}'))
            (_, error), (opcode, payload) = await client.frames(2)
            assert json.loads(error) == {"id": None, "error": json.loads(error)["error"]}
            assert json.loads(error)["error"]["code"] == "bad_json"
            assert (opcode, payload[:2]) == (0x8, b"\x03\xef")


@pytest.mark.parametrize(
    "frame",
    [
        b"\x81\x05hello",  # not masked (RFC 6455 §5.1)
        b"\xc1\x85" + MASK + unmask(b"hello", MASK),  # RSV1 without an extension (§5.2)
        client_frame(0x3),  # a reserved opcode
        client_frame(0x0, b"orphan"),  # a continuation with no message (§5.4)
        close(1005),  # a code no endpoint may send (§7.4.1)
    ],
)
async def test_a_frame_no_client_may_send_closes_with_1002_unanswered(
    node_port: int, frame: bytes
) -> None:
    with trio.fail_after(TIMEOUT):
        async with opened(node_port) as client:
            await client.send(frame)
            [(opcode, payload)] = await client.frames(1)
            assert (opcode, payload[:2]) == (0x8, b"\x03\xea")
            await client.send(close(1002))
            assert await client.read_until_closed() == b""


async def test_a_message_far_over_the_limit_is_refused_from_its_header(node_port: int) -> None:
    header = struct.pack("!BBQ", 0x81, 0x80 | 127, 9 * 1024 * 1024) + MASK
    with trio.fail_after(TIMEOUT):
        async with opened(node_port) as client:
            await client.send(header)  # none of the 9 MiB follows: the header is enough
            [(opcode, payload)] = await client.frames(1)
            assert (opcode, payload[:2]) == (0x8, b"\x03\xf1")  # 1009, no error frame first
            await client.send(close(1009))
            assert await client.read_until_closed() == b""
