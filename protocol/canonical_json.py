"""Canonical JSON: the one byte string every implementation produces for a value.

Signatures, content hashes and event ids are computed over these bytes, so two
implementations that disagree by a single byte cannot talk. The rules (spec/canonical-json.md):

* values are ``null``, ``true``, ``false``, strings, integers in ±(2**53 - 1), arrays and
  objects with string keys — no floats at all, no NaN or Infinity;
* object keys sorted by Unicode code point, no duplicate keys, no insignificant whitespace;
* UTF-8 output, unescaped except ``"``, ``\\`` and the C0 controls;
* at most ``MAX_DEPTH`` nested arrays/objects.

``decode_json`` accepts any JSON text (whitespace and key order are free) whose *value* the
encoder could produce, within a size limit, and raises nothing but ``RemoteProtocolError``.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from protocol.errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError

__all__ = [
    "DEFAULT_MAX_JSON_BYTES",
    "MAX_DEPTH",
    "MAX_SAFE_INTEGER",
    "JsonObject",
    "JsonValue",
    "decode_json",
    "encode_canonical_json",
    "encode_trusted_json",
]

JsonValue = Any
"""A value of Kith's JSON data model (see module docstring). ``Any`` keeps mypy usable."""
JsonObject = dict[str, Any]

# spec/canonical-json.md §1
MAX_SAFE_INTEGER = 2**53 - 1
MAX_DEPTH = 64
DEFAULT_MAX_JSON_BYTES = 4 * 1024 * 1024
_MAX_INT_CHARS = len(str(-MAX_SAFE_INTEGER))

_ENCODER = json.JSONEncoder(
    ensure_ascii=False,
    allow_nan=False,
    separators=(",", ":"),
    sort_keys=True,
)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


# --- encoding ---------------------------------------------------------------------------


def encode_canonical_json(value: JsonValue) -> bytes:
    """Encode ``value`` as canonical JSON bytes (spec/canonical-json.md §2).

    Raises ``LocalProtocolError(bad_json)`` for anything outside the data model: floats,
    integers beyond ±(2**53 - 1), non-string keys, lone surrogates, other types, too deep.
    """
    _check_encodable(value, 0)
    return encode_trusted_json(value)


def encode_trusted_json(value: JsonValue) -> bytes:
    """Canonical bytes of a value already known to be in the data model: built from decoded
    or validated values. Skips the type walk of :func:`encode_canonical_json`; same bytes."""
    try:
        return _ENCODER.encode(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(ErrorCode.BAD_JSON, "string holds a lone surrogate") from exc


def _refuse(message: str) -> NoReturn:
    raise LocalProtocolError(ErrorCode.BAD_JSON, message)


def _check_encodable(value: JsonValue, depth: int) -> None:
    """Walk ``value`` once, refusing what canonical JSON cannot express."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return
    if kind is int:
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            _refuse(f"integer {value} outside ±(2**53 - 1)")
        return
    if kind is dict:
        if depth >= MAX_DEPTH:
            _refuse(f"nested deeper than {MAX_DEPTH}")
        for key, item in value.items():
            if type(key) is not str:
                _refuse(f"object key {key!r} is not a string")
            _check_encodable(item, depth + 1)
        return
    if kind is list or kind is tuple:
        if depth >= MAX_DEPTH:
            _refuse(f"nested deeper than {MAX_DEPTH}")
        for item in value:
            _check_encodable(item, depth + 1)
        return
    _check_encodable_subclass(value, depth)


def _check_encodable_subclass(value: JsonValue, depth: int) -> None:
    """Slow path for subclasses (``StrEnum`` members, dict subclasses) and refusals."""
    if isinstance(value, float):
        _refuse(f"float {value!r}: canonical JSON has integers only")
    if isinstance(value, str | bool):
        return
    if isinstance(value, int):
        _check_encodable(int(value), depth)
    elif isinstance(value, dict):
        _check_encodable(dict(value), depth)
    elif isinstance(value, list | tuple):
        _check_encodable(list(value), depth)
    else:
        _refuse(f"{type(value).__name__} is not a JSON value")


# --- decoding ---------------------------------------------------------------------------


def _reject(message: str) -> NoReturn:
    raise RemoteProtocolError(ErrorCode.BAD_JSON, message)


def _object_from_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                _reject(f"duplicate key {key[:64]!r}")
            seen.add(key)
    return obj


def _parse_int(text: str) -> int:
    if len(text) > _MAX_INT_CHARS:
        _reject("integer outside ±(2**53 - 1)")
    number = int(text)
    if not -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
        _reject(f"integer {number} outside ±(2**53 - 1)")
    return number


def _parse_float(text: str) -> NoReturn:
    _reject(f"number {text[:32]} is not an integer: canonical JSON has no floats")


def _parse_constant(text: str) -> NoReturn:
    _reject(f"{text} is not JSON")


_DECODER = json.JSONDecoder(
    object_pairs_hook=_object_from_pairs,
    parse_int=_parse_int,
    parse_float=_parse_float,
    parse_constant=_parse_constant,
    strict=True,
)


def decode_json(data: bytes | str, *, max_bytes: int = DEFAULT_MAX_JSON_BYTES) -> JsonValue:
    """Parse JSON text into a value of Kith's data model (spec/canonical-json.md §3).

    ``data`` is UTF-8 bytes (or an already decoded ``str``). Anything else, anything larger
    than ``max_bytes`` and any value the canonical encoder could not produce raises
    ``RemoteProtocolError`` (``bad_json`` or ``too_large``) — never another exception.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        if len(data) > max_bytes:
            raise RemoteProtocolError(ErrorCode.TOO_LARGE, f"JSON larger than {max_bytes} bytes")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError(ErrorCode.BAD_JSON, "invalid UTF-8") from exc
    elif isinstance(data, str):
        text = data
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise RemoteProtocolError(ErrorCode.BAD_JSON, "lone surrogate in text") from exc
        if size > max_bytes:
            raise RemoteProtocolError(ErrorCode.TOO_LARGE, f"JSON larger than {max_bytes} bytes")
    else:
        raise RemoteProtocolError(ErrorCode.BAD_JSON, "JSON input must be bytes or str")
    try:
        value = _DECODER.decode(text)
    except ProtocolError:
        raise
    except RecursionError as exc:
        raise RemoteProtocolError(ErrorCode.BAD_JSON, f"nested deeper than {MAX_DEPTH}") from exc
    except ValueError as exc:  # json.JSONDecodeError and int() edge cases
        raise RemoteProtocolError(ErrorCode.BAD_JSON, f"not JSON: {exc}") from exc
    # Cheap pre-checks decide whether the (slower) walk is needed at all.
    may_be_deep = text.count("[") + text.count("{") > MAX_DEPTH
    may_have_surrogate = "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None
    if may_be_deep or may_have_surrogate:
        _check_decoded(value, 0, strings=may_have_surrogate)
    return value


def _check_decoded(value: JsonValue, depth: int, *, strings: bool) -> None:
    """Refuse decoded values nested too deep or holding lone surrogates from ``\\u`` escapes."""
    kind = type(value)
    if kind is str:
        if strings:
            _check_string(value)
    elif kind is dict:
        if depth >= MAX_DEPTH:
            _reject(f"nested deeper than {MAX_DEPTH}")
        for key, item in value.items():
            if strings:
                _check_string(key)
            _check_decoded(item, depth + 1, strings=strings)
    elif kind is list:
        if depth >= MAX_DEPTH:
            _reject(f"nested deeper than {MAX_DEPTH}")
        for item in value:
            _check_decoded(item, depth + 1, strings=strings)


def _check_string(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RemoteProtocolError(ErrorCode.BAD_JSON, "escaped lone surrogate") from exc
