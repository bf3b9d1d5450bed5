"""Ops: the named operations frames carry, and where each may be sent (spec/wire.md §5).

Every area of the protocol declares its ops as :class:`OpSpec` values in its own module
(``SYSTEM_OPS`` here, ``protocol.client_api.CLIENT_OPS`` for the client socket);
``protocol.wire.OPS`` is their union, the one registry frame decoding consults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from protocol.schema import Schema

__all__ = [
    "ENDPOINT_PATHS",
    "SYSTEM_OPS",
    "Endpoint",
    "OpKind",
    "OpSpec",
    "Role",
    "registry",
]


class Endpoint(StrEnum):
    """The two sockets a node serves."""

    CLIENT = "client"
    FEDERATION = "federation"


ENDPOINT_PATHS: Mapping[str, Endpoint] = {
    "/client": Endpoint.CLIENT,
    "/federation": Endpoint.FEDERATION,
}


class Role(StrEnum):
    """Who is at the other end of a socket: a user's device or another node."""

    CLIENT = "client"
    NODE = "node"


class OpKind(StrEnum):
    """A request is answered; a notice is not."""

    REQUEST = "request"
    NOTICE = "notice"


@dataclass(frozen=True, slots=True)
class OpSpec:
    """One operation: its kind, where it may be sent, by whom, and its params."""

    name: str
    kind: OpKind
    endpoints: frozenset[Endpoint]
    senders: frozenset[Role]
    params: Schema
    summary: str


def registry(*groups: tuple[OpSpec, ...]) -> Mapping[str, OpSpec]:
    """One mapping of op names to specs; a name declared twice is a programming error."""
    ops: dict[str, OpSpec] = {}
    for group in groups:
        for spec in group:
            if spec.name in ops:
                raise ValueError(f"op {spec.name!r} is declared twice")
            ops[spec.name] = spec
    return ops


SYSTEM_OPS: tuple[OpSpec, ...] = (
    OpSpec(
        name="ping",
        kind=OpKind.REQUEST,
        endpoints=frozenset(Endpoint),
        senders=frozenset(Role),
        params=Schema({}),
        summary="Liveness check; the result is an empty object.",
    ),
)
