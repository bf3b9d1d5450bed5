"""Request handlers, grouped by API area; each is thin: parse, call a service, encode.

:func:`handlers` is the table the node serves; an op the protocol defines but no area
implements yet is answered ``unknown_op`` by the dispatcher.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.api import accounts, keys, messages, presence, rooms, sync, system
from node.dispatch import Handler

if TYPE_CHECKING:
    from node.app import Node

__all__ = ["handlers"]


def handlers(node: Node) -> dict[str, Handler]:
    """Every op ``node`` answers, on both sockets, mapped to its handler."""
    table: dict[str, Handler] = {
        "ping": system.ping,
        **accounts.handlers(node),
        **rooms.room_handlers(
            node.services.rooms, node.services.memberships, node.db, node.federation
        ),
        **messages.message_handlers(
            node.services.rooms,
            node.services.receipts,
            node.services.typing,
            node.services.to_device,
            node.db,
        ),
        **sync.sync_handlers(node.services.stream),
        **presence.presence_handlers(node.services.presence),
        **keys.key_handlers(node.services.device_keys, node.federation, node.server_name),
    }
    return keys.nudging_on_removal(table, node.services.device_keys)
