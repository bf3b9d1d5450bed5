"""Olm state sealed for storage (spec/e2ee.md §2.7): JSON with base64 bytes, sealed with
``primitives.seal`` under the caller's 32-byte key.

Sealed state is authenticated, so it can only be malformed if it was written by another
version or under another layout; reading it still checks every field, and any surprise is
``bad_message`` like any other bytes that do not parse.
"""

from __future__ import annotations

import json
from typing import Any, Final

from protocol.crypto.primitives import (
    KEY_BYTES,
    RandomBytes,
    b64decode,
    b64encode,
    open_sealed,
    seal,
)
from protocol.errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError

__all__ = ["StateReader", "b64", "open_state", "seal_state"]

_FORMAT: Final = 1


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.BAD_MESSAGE, message)


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise LocalProtocolError(ErrorCode.BAD_KEY, f"a pickle key is {KEY_BYTES} bytes")


def seal_state(key: bytes, random_bytes: RandomBytes, kind: str, state: dict[str, Any]) -> bytes:
    """``state`` (JSON of str, int, bool, None, lists and dicts) sealed under ``key``."""
    _check_key(key)
    document = {"format": _FORMAT, "kind": kind, "state": state}
    return seal(key, random_bytes, json.dumps(document, sort_keys=True).encode())


def open_state(key: bytes, data: bytes, kind: str) -> StateReader:
    """The state :func:`seal_state` sealed, as a reader; ``bad_message`` otherwise."""
    _check_key(key)
    if not isinstance(data, bytes):
        raise _bad("sealed state is bytes")
    plain = open_sealed(key, data)
    try:
        document = json.loads(plain)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad("sealed state is not JSON") from exc
    outer = StateReader(document, "sealed state")
    if outer.integer("format") != _FORMAT or outer.text("kind") != kind:
        raise _bad(f"sealed state is not a {kind} of format {_FORMAT}")
    return outer.object("state")


class StateReader:
    """Typed access to one JSON object of stored state; ``bad_message`` on any mismatch."""

    def __init__(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise _bad(f"{where} is not an object")
        self._value: dict[str, Any] = value
        self._where = where

    def _get(self, name: str) -> Any:
        if name not in self._value:
            raise _bad(f"{self._where} has no {name}")
        return self._value[name]

    def object(self, name: str) -> StateReader:
        return StateReader(self._get(name), f"{self._where}.{name}")

    def optional_object(self, name: str) -> StateReader | None:
        return None if self._get(name) is None else self.object(name)

    def objects(self, name: str) -> list[StateReader]:
        items = self._get(name)
        if not isinstance(items, list):
            raise _bad(f"{self._where}.{name} is not a list")
        return [StateReader(item, f"{self._where}.{name}[]") for item in items]

    def text(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str):
            raise _bad(f"{self._where}.{name} is not a string")
        return value

    def integer(self, name: str) -> int:
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _bad(f"{self._where}.{name} is not a non-negative integer")
        return value

    def flag(self, name: str) -> bool:
        value = self._get(name)
        if not isinstance(value, bool):
            raise _bad(f"{self._where}.{name} is not a boolean")
        return value

    def raw(self, name: str, length: int | None = KEY_BYTES) -> bytes:
        try:
            value = b64decode(self.text(name))
        except ProtocolError as exc:
            raise _bad(f"{self._where}.{name} is not base64") from exc
        if length is not None and len(value) != length:
            raise _bad(f"{self._where}.{name} is not {length} bytes")
        return value

    def optional_bytes(self, name: str) -> bytes | None:
        return None if self._get(name) is None else self.raw(name)


def b64(data: bytes) -> str:
    """Bytes as stored: unpadded base64."""
    return b64encode(data)
