"""Presence ops of the client socket (spec/client.md §6)."""

from __future__ import annotations

from node.dispatch import Handler
from node.services.presence import Presence
from node.session import Session
from protocol import JsonObject

__all__ = ["presence_handlers"]


def presence_handlers(presence: Presence) -> dict[str, Handler]:
    """``heartbeat``, ``set_presence`` and ``get_presence``, bound to the presence service."""

    async def heartbeat(session: Session, params: JsonObject) -> JsonObject:
        presence.heartbeat(session)
        return {}

    async def set_presence(session: Session, params: JsonObject) -> JsonObject:
        assert session.user_id is not None
        presence.set_status(session.user_id, params["status_msg"])
        return {}

    async def get_presence(session: Session, params: JsonObject) -> JsonObject:
        assert session.user_id is not None
        return {"presence": presence.of_contacts(session.user_id, params["user_ids"])}

    return {"heartbeat": heartbeat, "set_presence": set_presence, "get_presence": get_presence}
