"""The server's frame reader against RFC 6455 §5: what a client's bytes decode to, and the
close code of every frame no client may send.

The oracle for valid input is wsproto's client: whatever it sends, fragmented and cut into
reads at random, must come out as the same messages and pings.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass
from types import SimpleNamespace
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto import ConnectionType
from wsproto import events as ws
from wsproto.connection import Connection

from node.transport.frame_reader import (
    BinaryMessage,
    Close,
    Event,
    FrameReader,
    Ping,
    Pong,
    ProtocolViolation,
    TextMessage,
    unmask,
)

LIMIT = 1 << 20
MASK = b"\x37\xfa\x21\x3d"


def client_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length_bytes: int | None = None,
) -> bytes:
    """A frame as a client sends it (RFC 6455 §5.2), with ways to get it wrong."""
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    length = len(payload)
    if length_bytes is None:
        length_bytes = 0 if length < 126 else 2 if length < 1 << 16 else 8
    if length_bytes == 0:
        header = bytes((first, length))
    elif length_bytes == 2:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    if not masked:
        return header + payload
    header = bytes((header[0], header[1] | 0x80)) + header[2:]
    return header + MASK + unmask(payload, MASK)


def read_all(data: bytes, *, limit: int = LIMIT, chunk: int | None = None) -> list[Event]:
    """Every event ``data`` decodes to, fed whole or in reads of ``chunk`` bytes."""
    reader = FrameReader(limit)
    events: list[Event] = []
    step = chunk or max(len(data), 1)
    for start in range(0, len(data), step):
        reader.receive_data(data[start : start + step])
        while (event := reader.next_event()) is not None:
            events.append(event)
    return events


def violation(data: bytes, *, limit: int = LIMIT) -> ProtocolViolation:
    """The violation ``data`` raises, byte by byte and whole (the same either way)."""
    with pytest.raises(ProtocolViolation) as whole:
        read_all(data, limit=limit)
    with pytest.raises(ProtocolViolation) as bytewise:
        read_all(data, limit=limit, chunk=1)
    assert bytewise.value.close_code == whole.value.close_code
    return whole.value


# --- valid input: wsproto's client is the oracle -------------------------------------------


@dataclass(frozen=True)
class _Message:
    text: bool
    seed: bytes
    size: int
    cuts: tuple[int, ...]
    """Fragment boundaries, as fractions of the message in 1/1000."""
    pings: tuple[bytes | None, ...]
    """After each fragment but the last: a ping with this payload, or none."""


_messages = st.builds(
    _Message,
    text=st.booleans(),
    seed=st.binary(min_size=1, max_size=16),
    size=st.integers(0, 300) | st.integers(0, 70_000),
    cuts=st.lists(st.integers(0, 1000), max_size=4).map(lambda cuts: tuple(sorted(cuts))),
    pings=st.lists(st.none() | st.binary(max_size=125), min_size=4, max_size=4).map(tuple),
)


def _payload(message: _Message) -> str | bytes:
    if not message.text:
        return (message.seed * (message.size // len(message.seed) + 1))[: message.size]
    # Text of ``size`` characters, some of them several bytes long in UTF-8.
    alphabet = 'aé€𝄞 {}"x'
    text = "".join(alphabet[byte % len(alphabet)] for byte in message.seed)
    return (text * (message.size // len(text) + 1))[: message.size]


def _wsproto_client_bytes(messages: list[_Message], mask: bytes) -> tuple[bytes, list[Event]]:
    """What wsproto's client sends for ``messages``, and the events it must decode to."""
    client = Connection(ConnectionType.CLIENT)
    wire = b""
    expected: list[Event] = []
    # wsproto masks with os.urandom(4): give it a drawn mask so every run is the same run.
    with mock.patch("wsproto.frame_protocol.os", SimpleNamespace(urandom=lambda n: mask)):
        for message in messages:
            payload = _payload(message)
            bounds = [0, *(len(payload) * cut // 1000 for cut in message.cuts), len(payload)]
            for index, (start, end) in enumerate(itertools.pairwise(bounds)):
                last = index == len(bounds) - 2
                part = payload[start:end]
                event: ws.Event = (
                    ws.TextMessage(data=part, message_finished=last)
                    if isinstance(part, str)
                    else ws.BytesMessage(data=part, message_finished=last)
                )
                wire += client.send(event)
                ping = message.pings[index] if not last else None
                if ping is not None:  # RFC 6455 §5.4: control frames between fragments
                    wire += client.send(ws.Ping(payload=ping))
                    expected.append(Ping(ping))
            data = payload.encode() if isinstance(payload, str) else payload
            expected.append(TextMessage(data) if message.text else BinaryMessage(data))
        wire += client.send(ws.CloseConnection(code=1000, reason="bye"))
    expected.append(Close(1000, "bye"))
    return wire, expected


@given(
    messages=st.lists(_messages, max_size=4),
    mask=st.binary(min_size=4, max_size=4),
    reads=st.lists(st.integers(1, 20_000), min_size=1, max_size=8),
)
def test_whatever_wsproto_sends_decodes_to_the_same_messages_and_pings(
    messages: list[_Message], mask: bytes, reads: list[int]
) -> None:
    wire, expected = _wsproto_client_bytes(messages, mask)
    reader = FrameReader(LIMIT)
    events: list[Event] = []
    position = 0
    index = 0
    while position < len(wire):
        size = reads[index % len(reads)]
        reader.receive_data(wire[position : position + size])
        position += size
        index += 1
        while (event := reader.next_event()) is not None:
            events.append(event)
    assert events == expected


def test_a_small_frame_in_one_read_is_one_event() -> None:
    reader = FrameReader(LIMIT)
    reader.receive_data(client_frame(0x1, b'{"id":1,"op":"heartbeat"}'))
    assert reader.next_event() == TextMessage(b'{"id":1,"op":"heartbeat"}')
    assert reader.next_event() is None


def test_many_frames_in_one_read_come_out_in_order() -> None:
    frames = b"".join(client_frame(0x1, str(n).encode()) for n in range(500))
    assert read_all(frames) == [TextMessage(str(n).encode()) for n in range(500)]


def test_control_frames_and_empty_messages() -> None:
    data = (
        client_frame(0x9, b"are you there")
        + client_frame(0xA, b"unsolicited")
        + client_frame(0x1, b"")
        + client_frame(0x2, b"", fin=False)
        + client_frame(0x0, b"")
        + client_frame(0x8)
    )
    assert read_all(data, chunk=3) == [
        Ping(b"are you there"),
        Pong(b"unsolicited"),
        TextMessage(b""),
        BinaryMessage(b""),
        Close(None),
    ]


def test_text_stays_bytes_even_when_it_is_not_utf8() -> None:
    # Decoding is the frame decoder's: invalid UTF-8 is its bad_json (spec/wire.md §3 step 1).
    assert read_all(client_frame(0x1, b"\xff\xfe")) == [TextMessage(b"\xff\xfe")]


def test_nothing_is_read_after_a_close() -> None:
    data = client_frame(0x8, b"\x03\xe8") + client_frame(0x1, b"late") + b"\x00garbage"
    assert read_all(data) == [Close(1000)]


def test_a_message_of_exactly_the_limit_is_read() -> None:
    data = client_frame(0x1, b"a" * 100, fin=False) + client_frame(0x0, b"b" * 28)
    assert read_all(data, limit=128) == [TextMessage(b"a" * 100 + b"b" * 28)]


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 1023, 1024, 1025, 70_001])
@pytest.mark.parametrize("mask", [b"\x00\x00\x00\x00", b"\xff\x01\x80\x7f", MASK])
def test_unmask_is_xor_with_the_repeated_mask(length: int, mask: bytes) -> None:
    data = bytes(range(256)) * (length // 256 + 1)
    data = data[:length]
    assert unmask(data, mask) == bytes(b ^ mask[i % 4] for i, b in enumerate(data))


# --- frames no client may send: RFC 6455 §5 and §7.4 ---------------------------------------


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (client_frame(0x1, b"hi", masked=False), "unmasked client frame (§5.1)"),
        (client_frame(0x1, b"hi", rsv=4), "RSV1 without an extension (§5.2)"),
        (client_frame(0x1, b"hi", rsv=2), "RSV2"),
        (client_frame(0x1, b"hi", rsv=1), "RSV3"),
        (client_frame(0x3), "reserved data opcode"),
        (client_frame(0x7), "reserved data opcode"),
        (client_frame(0xB), "reserved control opcode"),
        (client_frame(0xF), "reserved control opcode"),
        (client_frame(0x9, fin=False), "fragmented ping (§5.5)"),
        (client_frame(0x8, b"\x03\xe8", fin=False), "fragmented close"),
        (client_frame(0x9, b"x" * 126), "ping payload over 125 bytes (§5.5)"),
        (client_frame(0xA, b"x" * 10, length_bytes=2), "pong with a 2-byte length"),
        (client_frame(0x0, b"orphan"), "continuation without a message (§5.4)"),
        (client_frame(0x1, b"a", fin=False) + client_frame(0x1, b"b"), "text inside a message"),
        (client_frame(0x2, b"a", fin=False) + client_frame(0x2, b"b"), "binary inside one"),
        (client_frame(0x1, b"short", length_bytes=2), "2-byte length for 5 bytes (§5.2)"),
        (client_frame(0x1, b"x" * 200, length_bytes=8), "8-byte length for 200 bytes"),
        (b"\x81\xff\x80" + b"\x00" * 7 + MASK, "64-bit length with its MSB set (§5.2)"),
        (client_frame(0x8, b"\x03"), "close payload of 1 byte (§5.5.1)"),
    ],
)
def test_frames_no_client_may_send_fail_with_1002(frame: bytes, why: str) -> None:
    assert violation(frame).close_code == 1002, why


@pytest.mark.parametrize(
    "code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
)
def test_close_codes_that_may_not_be_sent_fail_with_1002(code: int) -> None:
    assert violation(client_frame(0x8, code.to_bytes(2, "big"))).close_code == 1002


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1014, 3000, 4999]
)
def test_close_codes_that_may_be_sent_are_read(code: int) -> None:
    frame = client_frame(0x8, code.to_bytes(2, "big") + "fin ✓".encode())
    assert read_all(frame) == [Close(code, "fin ✓")]


def test_a_close_reason_that_is_not_utf8_fails_with_1007() -> None:
    assert violation(client_frame(0x8, b"\x03\xe8\xc3\x28")).close_code == 1007


def test_a_message_over_the_limit_fails_with_1009_from_its_header_alone() -> None:
    header = client_frame(0x1, b"x" * 70_000)[:14]  # 8-byte length and mask, no payload
    reader = FrameReader(65_536)
    reader.receive_data(header)
    with pytest.raises(ProtocolViolation) as caught:
        reader.next_event()
    assert caught.value.close_code == 1009


def test_fragments_adding_up_to_more_than_the_limit_fail_with_1009() -> None:
    data = client_frame(0x1, b"a" * 100, fin=False) + client_frame(0x0, b"b" * 29)
    assert violation(data, limit=128).close_code == 1009


def test_events_before_a_violation_are_delivered_first_then_it_sticks() -> None:
    reader = FrameReader(LIMIT)
    reader.receive_data(client_frame(0x1, b"ok") + client_frame(0x1, b"bad", masked=False))
    assert reader.next_event() == TextMessage(b"ok")
    for _ in range(2):
        with pytest.raises(ProtocolViolation) as caught:
            reader.next_event()
        assert caught.value.close_code == 1002
    reader.receive_data(client_frame(0x1, b"more"))
    with pytest.raises(ProtocolViolation):
        reader.next_event()


# --- any bytes: events or a violation, never anything else ---------------------------------

_frames = st.builds(
    lambda first, second, extended, payload: bytes((first, second)) + extended + payload,
    first=st.integers(0, 255) | st.sampled_from([0x81, 0x01, 0x80, 0x82, 0x88, 0x89, 0x8A]),
    second=st.integers(0, 255) | st.integers(0x80, 0xFD),
    extended=st.binary(max_size=12),
    payload=st.binary(max_size=200),
)


@given(
    data=st.binary(max_size=2000) | st.lists(_frames, max_size=8).map(b"".join),
    reads=st.lists(st.integers(1, 300), min_size=1, max_size=6),
    limit=st.sampled_from([0, 1, 125, 300, LIMIT]),
)
def test_any_bytes_give_events_or_a_violation_with_a_close_code(
    data: bytes, reads: list[int], limit: int
) -> None:
    reader = FrameReader(limit)
    position = index = 0
    try:
        while position < len(data):
            size = reads[index % len(reads)]
            reader.receive_data(data[position : position + size])
            position += size
            index += 1
            while (event := reader.next_event()) is not None:
                if isinstance(event, TextMessage | BinaryMessage):
                    assert len(event.data) <= limit
                if isinstance(event, Ping | Pong):
                    assert len(event.payload) <= 125
    except ProtocolViolation as failed:
        assert failed.close_code in (1002, 1007, 1009)
        with pytest.raises(ProtocolViolation):
            reader.next_event()
