"""The federation socket's ops (spec/federation.md): their params, as the frame decoder
checks them. Every op here may be sent by either node of a link, on ``/federation`` only.

The checks are of shape and size; what the values mean — a key object's signatures, an
event's fields — is checked by the receiver in the order the spec gives, so that each
failure gets its own code (federation.md §4).
"""

from __future__ import annotations

from typing import Final

from protocol.ids import parse_server_name, validate_event_id, validate_room_id
from protocol.ops import Endpoint, OpKind, OpSpec, Role
from protocol.schema import Field, Schema

__all__ = [
    "FEDERATION_OPS",
    "MAX_BACKFILL_LIMIT",
    "MAX_EDUS",
    "MAX_KEY_OBJECTS",
    "MAX_MISSING_LIMIT",
    "MAX_PDUS",
    "MAX_TO_DEVICE_MESSAGES",
]

# spec/federation.md §3.1, §5, §8 — limits
MAX_PDUS: Final = 100
MAX_EDUS: Final = 100
MAX_KEY_OBJECTS: Final = 16
MAX_MISSING_LIMIT: Final = 100
MAX_MISSING_IDS: Final = 20
MAX_BACKFILL_LIMIT: Final = 1_000
MAX_TO_DEVICE_MESSAGES: Final = 100

_SERVER = Field(str, check=parse_server_name)
_ROOM = Field(str, check=validate_room_id)
_EVENT = Field(str, check=validate_event_id)
_OBJECT = Field(dict)
_NONCE = Field(str, min_length=43, max_length=43)
_KEYS = Field(list, required=False, max_length=MAX_KEY_OBJECTS, items=_OBJECT)


def _request(op: str, summary: str, /, **fields: Field) -> OpSpec:
    return OpSpec(
        name=op,
        kind=OpKind.REQUEST,
        endpoints=frozenset({Endpoint.FEDERATION}),
        senders=frozenset({Role.NODE}),
        params=Schema(fields),
        summary=summary,
    )


FEDERATION_OPS: tuple[OpSpec, ...] = (
    _request(
        "link_hello",
        "Open a link: the initiator's name, the name it wants, its nonce and key object.",
        server_name=_SERVER,
        responder=_SERVER,
        nonce=_NONCE,
        keys=_OBJECT,
    ),
    _request("link_prove", "The initiator's proof of its server name.", proof=_OBJECT),
    _request(
        "txn",
        "Events and ephemeral data; the answer means they are committed.",
        txn_id=Field(str, min_length=1, max_length=64),
        pdus=Field(list, max_length=MAX_PDUS, items=_OBJECT),
        edus=Field(list, max_length=MAX_EDUS, items=_OBJECT),
        keys=_KEYS,
    ),
    _request(
        "get_missing",
        "Events of a room walking back from some events, breadth-first.",
        room_id=_ROOM,
        earliest=Field(list, max_length=MAX_MISSING_IDS, items=_EVENT),
        latest=Field(list, min_length=1, max_length=MAX_MISSING_IDS, items=_EVENT),
        limit=Field(int, minimum=1, maximum=MAX_MISSING_LIMIT),
    ),
    _request(
        "backfill",
        "A page of a room's whole history, oldest first.",
        room_id=_ROOM,
        limit=Field(int, minimum=1, maximum=MAX_BACKFILL_LIMIT),
        **{"from": Field(str, required=False, max_length=64)},
    ),
    _request("sign_invite", "Co-sign an invite of one of the receiver's users.", event=_OBJECT),
    _request(
        "to_device",
        "Durable messages for devices of the receiver's users.",
        messages=Field(list, max_length=MAX_TO_DEVICE_MESSAGES, items=_OBJECT),
    ),
)
