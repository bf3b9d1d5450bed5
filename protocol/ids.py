"""Identifiers: server names, user ids, room ids, event ids, device ids and key ids.

Every identifier has exactly one spelling (spec/ids.md): server names are lowercase and IPv6
literals are in their compressed form, so comparing two ids is comparing two strings —
which is what "the signing node must be the sender's node" relies on.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

from protocol.b64 import encode_base64_urlsafe
from protocol.errors import ErrorCode, RemoteProtocolError

__all__ = [
    "MAX_DEVICE_ID_LENGTH",
    "MAX_KEY_ID_LENGTH",
    "MAX_LOCALPART_LENGTH",
    "MAX_SERVER_NAME_LENGTH",
    "MAX_USER_ID_LENGTH",
    "ServerName",
    "UserId",
    "canonical_ipv6",
    "event_id_from_hash",
    "parse_server_name",
    "parse_user_id",
    "room_id_from_hash",
    "validate_device_id",
    "validate_event_id",
    "validate_key_id",
    "validate_room_id",
]

# spec/ids.md §1 — limits
MAX_SERVER_NAME_LENGTH = 255
MAX_USER_ID_LENGTH = 255
MAX_LOCALPART_LENGTH = 64
MAX_DEVICE_ID_LENGTH = 64
MAX_KEY_ID_LENGTH = 64
_DNS_MAX_LENGTH = 253

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_IPV4 = re.compile(r"(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_LOCALPART = re.compile(rf"[a-z0-9._=-]{{1,{MAX_LOCALPART_LENGTH}}}")
_HASH_ID = re.compile(r"[A-Za-z0-9_-]{43}")
_DEVICE_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_DEVICE_ID_LENGTH}}}")
_KEY_ID = re.compile(rf"[A-Za-z0-9_]{{1,{MAX_KEY_ID_LENGTH}}}")


def _bad(kind: str, text: object, why: str) -> RemoteProtocolError:
    shown = repr(text) if isinstance(text, str) and len(text) <= 80 else f"<{type(text).__name__}>"
    return RemoteProtocolError(ErrorCode.BAD_IDENTIFIER, f"invalid {kind} {shown}: {why}")


@dataclass(frozen=True, slots=True)
class ServerName:
    """A node's name: ``host[:port]`` where host is a DNS name, IPv4 or ``[IPv6]`` literal."""

    host: str
    """DNS name or IP literal, without brackets for IPv6."""
    port: int | None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class UserId:
    """``@localpart:server`` — a user hosted on ``server``."""

    localpart: str
    server: ServerName

    @property
    def server_name(self) -> str:
        """The server part as written in the id."""
        return str(self.server)

    def __str__(self) -> str:
        return f"@{self.localpart}:{self.server}"


def canonical_ipv6(packed: bytes) -> str:
    """The one text form of a 16-byte IPv6 address (spec/ids.md §2.2, RFC 5952 in hex).

    Lowercase hex groups without leading zeros; the longest run of two or more zero groups
    (the leftmost on a tie) becomes ``::``; no dotted IPv4 tail. Written out here rather
    than taken from a library so the answer never depends on the library's version.
    """
    groups = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, 16, 2)]
    best_start, best_length, start = -1, 1, -1
    for index, group in enumerate([*groups, 1]):
        if group == 0 and start < 0:
            start = index
        elif group != 0 and start >= 0:
            if index - start > best_length:
                best_start, best_length = start, index - start
            start = -1
    texts = [f"{group:x}" for group in groups]
    if best_start < 0:
        return ":".join(texts)
    head = ":".join(texts[:best_start])
    tail = ":".join(texts[best_start + best_length :])
    return f"{head}::{tail}"


def _parse_port(text: str, port: str) -> int:
    if _PORT.fullmatch(port) is None or not 1 <= int(port) <= 65535:
        raise _bad("server name", text, "port must be 1-65535 without leading zeros")
    return int(port)


def _check_dns_or_ipv4(text: str, host: str) -> None:
    if _IPV4.fullmatch(host) is not None:
        if all(int(octet) <= 255 for octet in host.split(".")):
            return
        raise _bad("server name", text, "IPv4 octet above 255")
    if len(host) > _DNS_MAX_LENGTH:
        raise _bad("server name", text, f"DNS name longer than {_DNS_MAX_LENGTH}")
    labels = host.split(".")
    for label in labels:
        if _LABEL.fullmatch(label) is None:
            raise _bad(
                "server name",
                text,
                "DNS labels are 1-63 of a-z 0-9 '-', lowercase, not starting or ending in '-'",
            )
    if labels[-1].isdigit():
        raise _bad("server name", text, "numeric top label that is not an IPv4 address")


def parse_server_name(text: str) -> ServerName:
    """Parse ``host[:port]`` (spec/ids.md §2); raise ``bad_identifier`` on anything else."""
    if not isinstance(text, str) or not text:
        raise _bad("server name", text, "empty or not a string")
    return _parse_server_name(text)


@lru_cache(maxsize=4096)
def _parse_server_name(text: str) -> ServerName:
    if len(text) > MAX_SERVER_NAME_LENGTH:
        raise _bad("server name", text, f"longer than {MAX_SERVER_NAME_LENGTH}")
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise _bad("server name", text, "unclosed IPv6 literal")
        literal, rest = text[1:close], text[close + 1 :]
        if "%" in literal:
            raise _bad("server name", text, "IPv6 zone ids are not allowed")
        try:
            address = ipaddress.IPv6Address(literal)
        except ValueError as exc:
            raise _bad("server name", text, "invalid IPv6 literal") from exc
        canonical = canonical_ipv6(address.packed)
        if canonical != literal:
            raise _bad("server name", text, f"IPv6 literal must be written {canonical}")
        if not rest:
            return ServerName(literal, None)
        if not rest.startswith(":"):
            raise _bad("server name", text, "junk after IPv6 literal")
        return ServerName(literal, _parse_port(text, rest[1:]))
    host, colon, port = text.partition(":")
    _check_dns_or_ipv4(text, host)
    return ServerName(host, _parse_port(text, port) if colon else None)


def parse_user_id(text: str) -> UserId:
    """Parse ``@localpart:server`` (spec/ids.md §3)."""
    if not isinstance(text, str) or not text.startswith("@"):
        raise _bad("user id", text, "must start with '@'")
    return _parse_user_id(text)


@lru_cache(maxsize=4096)
def _parse_user_id(text: str) -> UserId:
    if len(text) > MAX_USER_ID_LENGTH:
        raise _bad("user id", text, f"longer than {MAX_USER_ID_LENGTH}")
    localpart, colon, server = text[1:].partition(":")
    if not colon:
        raise _bad("user id", text, "missing ':server'")
    if _LOCALPART.fullmatch(localpart) is None:
        raise _bad(
            "user id", text, f"localpart must be 1-{MAX_LOCALPART_LENGTH} of a-z 0-9 . _ = -"
        )
    try:
        server_name = parse_server_name(server)
    except RemoteProtocolError as exc:
        raise _bad("user id", text, exc.message) from exc
    return UserId(localpart, server_name)


def _validate_hash_id(kind: str, sigil: str, text: str) -> str:
    if not isinstance(text, str) or len(text) != 44 or not text.startswith(sigil):
        raise _bad(kind, text, f"must be '{sigil}' and 43 characters of URL-safe base64")
    body = text[1:]
    # 32 bytes leave 2 spare bits in the last character: only A, E, I, ... , 4, 8 are canonical.
    if _HASH_ID.fullmatch(body) is None or body[-1] not in "AEIMQUYcgkosw048":
        raise _bad(kind, text, f"must be '{sigil}' and 43 characters of URL-safe base64")
    return text


def validate_room_id(text: str) -> str:
    """Check ``!`` + URL-safe base64 of a sha256 digest (spec/ids.md §4); return it."""
    return _validate_hash_id("room id", "!", text)


def validate_event_id(text: str) -> str:
    """Check ``$`` + URL-safe base64 of a sha256 digest (spec/ids.md §4); return it."""
    return _validate_hash_id("event id", "$", text)


def event_id_from_hash(digest: bytes) -> str:
    """The event id for a reference hash (spec/events.md §5)."""
    return "$" + encode_base64_urlsafe(digest)


def room_id_from_hash(digest: bytes) -> str:
    """The room id for the reference hash of a room's create event (spec/ids.md §4)."""
    return "!" + encode_base64_urlsafe(digest)


def validate_device_id(text: str) -> str:
    """Check a device id: 1-64 of ``A-Z a-z 0-9 _ -`` (spec/ids.md §5); return it."""
    if not isinstance(text, str) or _DEVICE_ID.fullmatch(text) is None:
        raise _bad("device id", text, f"must be 1-{MAX_DEVICE_ID_LENGTH} of A-Z a-z 0-9 _ -")
    return text


def validate_key_id(text: str) -> str:
    """Check a bare key id (the part after ``ed25519:``): 1-64 of ``A-Z a-z 0-9 _``."""
    if not isinstance(text, str) or _KEY_ID.fullmatch(text) is None:
        raise _bad("key id", text, f"must be 1-{MAX_KEY_ID_LENGTH} of A-Z a-z 0-9 _")
    return text
