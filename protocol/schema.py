"""Declarative checks for the ``params`` of ops (spec/wire.md §5).

An op declares its params as a :class:`Schema` of named :class:`Field` s; the frame decoder
runs it, so a handler only ever sees params of the right shape. Unknown keys are refused
(``bad_params``): the protocol version, not silent tolerance, is how ops evolve.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from protocol.canonical_json import MAX_SAFE_INTEGER, JsonObject
from protocol.errors import ErrorCode, ProtocolError, RemoteProtocolError

__all__ = ["Field", "Schema"]

_JSON_TYPE_NAMES: Mapping[type, str] = {
    str: "a string",
    int: "an integer",
    bool: "a boolean",
    dict: "an object",
    list: "a list",
}


@dataclass(frozen=True, slots=True)
class Field:
    """One named parameter: its JSON type, whether it is required, and its limits."""

    kind: type
    required: bool = True
    max_length: int | None = None
    """Maximum characters of a string or items of a list (or members of an object)."""
    min_length: int = 0
    """Minimum characters of a string or items of a list."""
    minimum: int = -MAX_SAFE_INTEGER
    maximum: int = MAX_SAFE_INTEGER
    check: Callable[[Any], object] | None = None
    """Extra validation (e.g. ``validate_room_id``); raises ``RemoteProtocolError``."""
    items: Field | None = None
    """For lists: the schema of every item."""

    def validate(self, name: str, value: Any) -> None:
        """Raise ``bad_params`` (or ``too_large``) unless ``value`` fits this field."""
        kind: type = type(value)
        if kind is not self.kind:
            raise RemoteProtocolError(
                ErrorCode.BAD_PARAMS, f"'{name}' must be {_JSON_TYPE_NAMES[self.kind]}"
            )
        if self.kind is int and not self.minimum <= value <= self.maximum:
            raise RemoteProtocolError(
                ErrorCode.BAD_PARAMS, f"'{name}' must be in {self.minimum}..{self.maximum}"
            )
        if self.max_length is not None and len(value) > self.max_length:
            raise RemoteProtocolError(
                ErrorCode.TOO_LARGE, f"'{name}' is longer than {self.max_length}"
            )
        if self.min_length and len(value) < self.min_length:
            raise RemoteProtocolError(
                ErrorCode.BAD_PARAMS, f"'{name}' is shorter than {self.min_length}"
            )
        if self.items is not None:
            for index, item in enumerate(value):
                self.items.validate(f"{name}[{index}]", item)
        if self.check is not None:
            try:
                self.check(value)
            except ProtocolError as exc:
                # spec/wire.md §5.2 step 3.6: a size limit stays too_large.
                code = (
                    ErrorCode.TOO_LARGE if exc.code == ErrorCode.TOO_LARGE else ErrorCode.BAD_PARAMS
                )
                raise RemoteProtocolError(code, f"'{name}': {exc.message}") from exc


@dataclass(frozen=True, slots=True)
class Schema:
    """The params object of one op: named fields, nothing else."""

    fields: Mapping[str, Field] = field(default_factory=dict)

    def validate(self, params: Any) -> JsonObject:
        """Return ``params`` if it matches; raise ``RemoteProtocolError(bad_params)``."""
        if type(params) is not dict:
            raise RemoteProtocolError(ErrorCode.BAD_PARAMS, "'params' must be an object")
        for key in params:
            if key not in self.fields:
                raise RemoteProtocolError(ErrorCode.BAD_PARAMS, f"unknown param {key[:64]!r}")
        for name, spec in self.fields.items():
            if name in params:
                spec.validate(name, params[name])
            elif spec.required:
                raise RemoteProtocolError(ErrorCode.BAD_PARAMS, f"missing param {name!r}")
        return params
