"""The opening handshake parser against RFC 6455 §4.2: what it accepts, what it refuses
with which status, and that any bytes at all give one of those answers."""

from __future__ import annotations

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request

from node.transport.handshake import (
    HandshakeError,
    ServerHandshake,
    UpgradeRequest,
    accept_token,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's example key
BASE_HEADERS = [
    ("Host", "127.0.0.1:7447"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", KEY),
    ("Sec-WebSocket-Version", "13"),
]


def upgrade_request(
    target: str = "/client",
    *,
    method: str = "GET",
    version: str = "1.1",
    without: tuple[str, ...] = (),
    replace: dict[str, str] | None = None,
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """An opening request; ``without`` drops headers, ``replace`` changes their values."""
    replace = replace or {}
    lines = [f"{method} {target} HTTP/{version}"]
    for name, value in BASE_HEADERS:
        if name not in without:
            lines.append(f"{name}: {replace.get(name, value)}")
    lines += [f"{name}: {value}" for name, value in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse(data: bytes, *, chunk: int | None = None) -> tuple[ServerHandshake, UpgradeRequest]:
    handshake = ServerHandshake()
    step = chunk or len(data)
    request = None
    for start in range(0, len(data), step):
        handshake.receive_data(data[start : start + step])
        request = handshake.next_request()
        if start + step < len(data):
            assert request is None, "the request was complete before its end"
    assert request is not None
    return handshake, request


def refusal(data: bytes) -> HandshakeError:
    handshake = ServerHandshake()
    handshake.receive_data(data)
    with pytest.raises(HandshakeError) as caught:
        handshake.next_request()
    return caught.value


def test_the_accept_token_is_rfc_6455s_example() -> None:
    assert accept_token(KEY.encode()) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_valid_request_is_read_even_one_byte_at_a_time() -> None:
    data = upgrade_request("/client?device=abc", extra=(("Sec-WebSocket-Protocol", "kith.v1"),))
    _, request = parse(data, chunk=1)
    assert request == UpgradeRequest(
        target="/client?device=abc",
        path="/client",
        host="127.0.0.1:7447",
        subprotocols=("kith.v1",),
        key=KEY.encode(),
    )


def test_subprotocols_come_from_every_header_line_in_order() -> None:
    extra = (("Sec-WebSocket-Protocol", "chat.v2 ,kith.v1"), ("sec-websocket-protocol", ", x,"))
    _, request = parse(upgrade_request(extra=extra))
    assert request.subprotocols == ("chat.v2", "kith.v1", "x")


def test_header_tokens_are_case_insensitive() -> None:
    data = upgrade_request(replace={"Upgrade": "WebSocket", "Connection": "keep-alive, UPGRADE"})
    _, request = parse(data)
    assert request.path == "/client"


@pytest.mark.parametrize("subprotocol", [None, "kith.v1"])
def test_the_101_is_what_a_websocket_client_accepts(subprotocol: str | None) -> None:
    client = WSConnection(ConnectionType.CLIENT)
    offered = ["chat", "kith.v1"] if subprotocol else []
    handshake, _ = parse(
        client.send(Request(host="localhost", target="/client", subprotocols=offered))
    )
    client.receive_data(handshake.accept(subprotocol))
    events = list(client.events())
    assert len(events) == 1
    assert isinstance(events[0], AcceptConnection)
    assert events[0].subprotocol == subprotocol


def test_a_subprotocol_that_was_not_offered_cannot_be_selected() -> None:
    handshake, _ = parse(upgrade_request())
    with pytest.raises(ValueError, match="not offered"):
        handshake.accept("kith.v1")


def test_bytes_after_the_request_are_handed_over_after_the_101() -> None:
    first_frame = b"\x81\x85\x00\x00\x00\x00hello"
    handshake, _ = parse(upgrade_request() + first_frame)
    assert handshake.accept(None).startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert handshake.trailing_data == first_frame


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (upgrade_request(method="POST"), "not GET"),
        (upgrade_request(version="1.0"), "HTTP/1.0"),
        (upgrade_request(without=("Host",)), "no Host"),
        (upgrade_request(extra=(("Host", "other"),)), "two Hosts"),
        (upgrade_request(without=("Upgrade",)), "no Upgrade"),
        (upgrade_request(replace={"Upgrade": "h2c"}), "Upgrade to something else"),
        (upgrade_request(without=("Connection",)), "no Connection"),
        (upgrade_request(replace={"Connection": "keep-alive"}), "Connection without upgrade"),
        (upgrade_request(without=("Sec-WebSocket-Key",)), "no key"),
        (upgrade_request(replace={"Sec-WebSocket-Key": "c2hvcnQ="}), "key of 5 bytes"),
        (upgrade_request(replace={"Sec-WebSocket-Key": "!" * 24}), "key not base64"),
        (upgrade_request(extra=(("Sec-WebSocket-Key", KEY),)), "two keys"),
        (upgrade_request(extra=(("Content-Length", "5"),)) + b"hello", "a body"),
        (upgrade_request(extra=(("Transfer-Encoding", "chunked"),)), "a chunked body"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", "TLS to a plain port"),
        (b"GET /client\r\n\r\n", "no HTTP version"),
    ],
)
def test_requests_that_are_not_valid_upgrades_get_400(data: bytes, why: str) -> None:
    refused = refusal(data)
    assert refused.status == 400, why
    assert refused.message


def test_another_websocket_version_gets_426_naming_version_13() -> None:
    refused = refusal(upgrade_request(replace={"Sec-WebSocket-Version": "8"}))
    assert refused.status == 426
    assert refused.headers == ((b"Sec-WebSocket-Version", b"13"),)


def test_no_websocket_version_gets_400_naming_version_13() -> None:
    refused = refusal(upgrade_request(without=("Sec-WebSocket-Version",)))
    assert refused.status == 400
    assert refused.headers == ((b"Sec-WebSocket-Version", b"13"),)


@pytest.mark.parametrize("complete", [False, True])
def test_a_request_larger_than_the_bound_gets_431(complete: bool) -> None:
    handshake = ServerHandshake(max_request_bytes=1024)
    request = upgrade_request(extra=(("X-Padding", "x" * 1024),))
    handshake.receive_data(request if complete else request[:-4])
    with pytest.raises(HandshakeError) as caught:
        handshake.next_request()
    assert caught.value.status == 431


def test_a_request_of_exactly_the_bound_is_read_and_what_follows_is_not_counted() -> None:
    request = upgrade_request()
    handshake = ServerHandshake(max_request_bytes=len(request))
    handshake.receive_data(request + b"\x81\x80" + b"\x00" * 2000)
    assert handshake.next_request() is not None


def test_a_refusal_is_a_complete_http_response_that_closes() -> None:
    handshake = ServerHandshake()
    handshake.receive_data(b"GET /client HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(HandshakeError) as caught:
        handshake.next_request()
    refused = caught.value
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/client", headers=[("Host", "x")]))
    client.receive_data(handshake.reject(refused.status, b"no upgrade", refused.headers))
    response = client.next_event()
    assert isinstance(response, h11.Response)
    assert response.status_code == 400
    assert (b"connection", b"close") in list(response.headers)
    data = client.next_event()
    assert isinstance(data, h11.Data)
    assert data.data == b"no upgrade"
    assert isinstance(client.next_event(), h11.EndOfMessage)


# --- any bytes: a request, a refusal or "need more", never a crash -------------------------

_header_names = st.sampled_from(
    [
        "Host",
        "Upgrade",
        "Connection",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Protocol",
        "Content-Length",
        "Transfer-Encoding",
        "X-Other",
    ]
)
_header_values = st.sampled_from(
    ["websocket", "Upgrade", KEY, "13", "8", "kith.v1, chat", "0", "chunked", "", "a,,b"]
) | st.text(max_size=30)
_requests = st.builds(
    lambda method, target, version, headers, tail: (
        (
            f"{method} {target} HTTP/{version}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in headers)
            + "\r\n"
        ).encode("utf-8", errors="surrogatepass")
        + tail
    ),
    method=st.sampled_from(["GET", "POST", "get", "G ET"]),
    target=st.sampled_from(["/client", "/federation?x=1", "/", "*"]) | st.text(max_size=20),
    version=st.sampled_from(["1.1", "1.0", "2.0", "1.x", "11"]),
    headers=st.lists(st.tuples(_header_names, _header_values), max_size=10).map(
        lambda headers: [("Host", "h"), *headers]
    ),
    tail=st.binary(max_size=40),
)

_base_names = st.sampled_from([name for name, _ in BASE_HEADERS])
_near_valid = st.builds(
    lambda request, tail: request + tail,
    st.builds(
        upgrade_request,
        target=st.sampled_from(["/client", "/federation?x", "/elsewhere"]),
        without=st.lists(_base_names, max_size=2).map(tuple),
        replace=st.dictionaries(_base_names, _header_values, max_size=2),
        extra=st.lists(st.tuples(_header_names, _header_values), max_size=3).map(tuple),
    ),
    st.binary(max_size=40),
)


@given(
    data=st.binary(max_size=3000) | _requests | _near_valid,
    reads=st.lists(st.integers(1, 500), min_size=1, max_size=6),
)
def test_any_bytes_give_a_request_a_refusal_or_a_wait(data: bytes, reads: list[int]) -> None:
    handshake = ServerHandshake(max_request_bytes=1024)
    request = None
    position = index = 0
    try:
        while request is None and position < len(data):
            size = reads[index % len(reads)]
            handshake.receive_data(data[position : position + size])
            position += size
            index += 1
            request = handshake.next_request()
    except HandshakeError as refused:
        assert refused.status in (400, 426, 431, 501)  # 501: h11, an unknown transfer coding
        response = handshake.reject(refused.status, refused.message.encode(), refused.headers)
        assert response.startswith(f"HTTP/1.1 {refused.status} ".encode())
        return
    if request is not None:
        subprotocol = request.subprotocols[0] if request.subprotocols else None
        assert handshake.accept(subprotocol).startswith(b"HTTP/1.1 101 ")
        assert data.endswith(handshake.trailing_data)
