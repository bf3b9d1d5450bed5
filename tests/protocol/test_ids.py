"""Identifiers have one spelling each; every parser returns a value or ``bad_identifier``."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import (
    ErrorCode,
    RemoteProtocolError,
    ServerName,
    parse_server_name,
    parse_user_id,
    validate_device_id,
    validate_event_id,
    validate_key_id,
    validate_room_id,
)
from protocol.ids import canonical_ipv6, event_id_from_hash, room_id_from_hash

PARSERS: list[Callable[[Any], object]] = [
    parse_server_name,
    parse_user_id,
    validate_room_id,
    validate_event_id,
    validate_device_id,
    validate_key_id,
]

labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
dns_names = (
    st.lists(labels, min_size=1, max_size=4)
    .map(".".join)
    .filter(lambda name: not name.rsplit(".", 1)[-1].isdigit())
)
ports = st.none() | st.integers(1, 65535)


@st.composite
def server_names(draw: st.DrawFn) -> str:
    host = draw(
        dns_names
        | st.ip_addresses(v=4).map(str)
        | st.ip_addresses(v=6).map(lambda a: f"[{ipaddress.IPv6Address(a).compressed}]")
    )
    port = draw(ports)
    return host if port is None else f"{host}:{port}"


@pytest.mark.parametrize("parse", PARSERS)
@given(text=st.text(max_size=80) | st.binary(max_size=10) | st.integers() | st.none())
def test_every_parser_returns_or_raises_bad_identifier(
    parse: Callable[[Any], object], text: Any
) -> None:
    try:
        parse(text)
    except RemoteProtocolError as exc:
        assert exc.code is ErrorCode.BAD_IDENTIFIER


@given(server_names())
def test_valid_server_names_round_trip(name: str) -> None:
    parsed = parse_server_name(name)
    assert str(parsed) == name


@given(st.from_regex(r"[a-z0-9._=-]{1,20}", fullmatch=True), server_names())
def test_valid_user_ids_round_trip(localpart: str, server: str) -> None:
    user = parse_user_id(f"@{localpart}:{server}")
    assert (user.localpart, user.server_name, str(user)) == (
        localpart,
        server,
        f"@{localpart}:{server}",
    )


def test_server_name_parts() -> None:
    assert parse_server_name("[2001:db8::1]:8448") == ServerName("2001:db8::1", 8448)
    assert parse_server_name("example.org") == ServerName("example.org", None)


@pytest.mark.parametrize(
    "name", ["Example.org", "[0::1]", "[::FFFF:1.2.3.4]", "example.org:007", "exa mple"]
)
def test_identifiers_with_a_second_spelling_are_refused(name: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_server_name(name)


@given(st.binary(min_size=32, max_size=32))
def test_hash_ids_of_any_digest_validate(digest: bytes) -> None:
    assert validate_event_id(event_id_from_hash(digest)).startswith("$")
    assert validate_room_id(room_id_from_hash(digest)).startswith("!")


def test_user_id_length_limit_counts_the_whole_id() -> None:
    server = ".".join(["a" * 60] * 3)  # 182 characters
    parse_user_id("@" + "x" * 64 + ":" + server)
    with pytest.raises(RemoteProtocolError):
        parse_user_id("@" + "x" * 64 + ":" + server + ".bbbbbbbbbbbbbbb")


@given(st.ip_addresses(v=6))
def test_canonical_ipv6_is_rfc5952_hex(address: ipaddress.IPv6Address) -> None:
    text = canonical_ipv6(address.packed)
    assert ipaddress.IPv6Address(text) == address
    assert "." not in text
    assert text == text.lower()
    # Python 3.11 prints the same text for every address without an IPv4 tail.
    if "." not in address.compressed:
        assert text == address.compressed
    assert parse_server_name(f"[{text}]").host == text
