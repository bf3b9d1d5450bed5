"""The device's stream on the client socket (spec/client.md §5): ``sync`` and ``ack``."""

from __future__ import annotations

from node.dispatch import Handler
from node.services.stream import Stream
from node.session import Session
from protocol import JsonObject

__all__ = ["sync_handlers"]


def sync_handlers(stream: Stream) -> dict[str, Handler]:
    """The handlers of client.md §5, bound to the node's stream."""

    async def sync(session: Session, params: JsonObject) -> JsonObject:
        return {"position": await stream.sync(session, params.get("since"))}

    async def ack(session: Session, params: JsonObject) -> JsonObject:
        assert session.user_id is not None
        assert session.device_id is not None
        await stream.ack(session.user_id, session.device_id, params["position"])
        return {}

    return {"sync": sync, "ack": ack}
