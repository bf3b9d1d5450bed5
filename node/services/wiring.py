"""The services behind rooms, messages, the stream and presence, built and started together.

``Services.start`` builds them in dependency order and loads their state from the database
(stream positions, rooms, memberships); ``run`` starts their background tasks in the node's
nursery. Kept apart from ``node.app`` so the wiring of one area reads in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from node.config import NodeConfig
from node.hub import Hub
from node.keys import NodeKey
from node.services.device_keys import DeviceKeyService
from node.services.ephemeral import Receipts, Typing
from node.services.memberships import Memberships
from node.services.presence import Presence
from node.services.rooms import RoomService
from node.services.stream import Stream, SyncLimits
from node.services.to_device import ToDevice
from node.services.txns import Transactions
from node.storage.db import Database

__all__ = ["Services"]


@dataclass
class Services:
    """Rooms, the stream and what rides on it, and presence, for one node."""

    memberships: Memberships
    stream: Stream
    rooms: RoomService
    receipts: Receipts
    typing: Typing
    to_device: ToDevice
    presence: Presence
    txns: Transactions
    device_keys: DeviceKeyService

    @classmethod
    async def start(cls, config: NodeConfig, key: NodeKey, db: Database, hub: Hub) -> Services:
        """Build every service and load what the database holds."""
        memberships = Memberships()
        limits = SyncLimits(
            batch_items=config.sync_batch_items,
            catch_up_limit=config.sync_catch_up_limit,
            room_tail=config.sync_room_tail,
        )
        stream = Stream(db, hub, memberships, limits)
        await stream.load()
        txns = Transactions(db)
        rooms = RoomService(
            server_name=config.server_name,
            key=key,
            db=db,
            stream=stream,
            memberships=memberships,
            txns=txns,
        )
        await rooms.load()
        presence = Presence(hub, rooms, timeout_s=config.presence_timeout_s)
        hub.on_attach.append(presence.bound)
        stream.on_live.append(presence.push_online_contacts)
        rooms.on_joined.append(presence.members_joined)
        return cls(
            memberships=memberships,
            stream=stream,
            rooms=rooms,
            receipts=Receipts(db, stream, rooms),
            typing=Typing(hub, memberships, config.typing_timeout_ms),
            to_device=ToDevice(db, stream, rooms.is_local, txns),
            presence=presence,
            txns=txns,
            device_keys=DeviceKeyService(
                db, stream, rooms, check_interval_s=config.session_check_interval_s
            ),
        )

    def run(self, nursery: trio.Nursery) -> None:
        """Start the background work: catch-ups, typing timeouts, presence timeouts, the
        device removal log."""
        self.stream.start(nursery)
        nursery.start_soon(self.typing.run)
        nursery.start_soon(self.presence.run)
        nursery.start_soon(self.txns.run)
        nursery.start_soon(self.device_keys.run)
