"""Federation as the node and its client API see it (spec/federation.md).

Builds the key store, the links, the outbox and the inbound handler around the node's
rooms, and offers the actions that need another node: inviting a user of another server
(§7), joining a room this node does not hold (§6), and asking for the device keys of
other servers' users (§10).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable
from typing import Any, Final

import trio

from node.clock import now_ms
from node.config import ConfigError, NodeConfig
from node.federation.channel import Channel
from node.federation.ephemeral import EphemeralRelay
from node.federation.inbound import FetchLimits, Inbound
from node.federation.keystore import KeyStore
from node.federation.links import LinkError, Links
from node.federation.outbox import Outbox
from node.federation.peer_link import LinkClosedError, LinkIdentity
from node.keys import KeyRing, NodeKey
from node.log import get_log
from node.services.accounts import Accounts
from node.services.wiring import Services
from node.storage.db import Database
from protocol import ErrorCode, EventType, JsonObject, RemoteProtocolError, parse_user_id
from protocol.device_keys import fit_answer, parse_claim_answer, parse_query_answer
from protocol.events import verify_countersignature
from protocol.federation.keys import parse_key_object
from protocol.wire import MAX_FRAME_BYTES, Endpoint

__all__ = ["Federation"]

log = get_log(__name__)

KEYS_TIMEOUT_S: Final = 10.0
"""§10: how long a client's ``query_keys``/``claim_keys`` waits for another server."""
_KEYS_ANSWER_BYTES: Final = MAX_FRAME_BYTES[Endpoint.FEDERATION] - 512 * 1024


class Federation:
    """This node's federation: links, outbox, inbound handling, remote invites and joins."""

    def __init__(
        self,
        config: NodeConfig,
        keyring: KeyRing,
        db: Database,
        services: Services,
        accounts: Accounts,
        *,
        clock_ms: Callable[[], int] = now_ms,
        limits: FetchLimits | None = None,
    ) -> None:
        self.server_name = config.server_name
        self._keyring = keyring
        self._clock_ms = clock_ms
        self._rooms = rooms = services.rooms
        self._device_keys = services.device_keys
        # One key object per start: a fresh ``ts`` on every link would make peers re-pin it.
        key_object = keyring.key_object(config.server_name, clock_ms())
        own = parse_key_object(key_object)
        self.keystore = KeyStore(db, own)
        self.inbound = Inbound(
            server_name=config.server_name,
            key=self._current_key,
            keystore=self.keystore,
            rooms=rooms,
            db=db,
            user_is_active=accounts.is_active,
            on_edus=self._receive_edus,
            on_to_device=services.to_device.receive_remote,
            limits=limits or FetchLimits(),
            peer_ops={"query_keys": self._answer_query, "claim_keys": self._answer_claim},
        )
        identity = LinkIdentity(
            server_name=config.server_name,
            key_object=lambda: key_object,
            signing_key=lambda: keyring.current.signing_key,
            learn_keys=self.keystore.learn,
            clock_ms=clock_ms,
        )
        self.links = Links(
            identity, self.inbound, peers=config.peers, ssl_context=_peer_trust(config)
        )
        self.outbox = Outbox(db, self.links)
        rooms.on_outbox = self.outbox.notify
        services.to_device.on_outbox = self.outbox.notify
        self.ephemeral = EphemeralRelay(
            rooms=rooms,
            presence=services.presence,
            typing=services.typing,
            receipts=services.receipts,
            device_keys=services.device_keys,
            outbox=self.outbox,
        )
        self.links.on_link_up.append(self.ephemeral.link_up)
        self.links.on_link_down.append(self.ephemeral.link_down)

    def _current_key(self) -> NodeKey:
        return self._keyring.current

    async def _receive_edus(self, peer: str, edus: list[Any]) -> None:
        await self.ephemeral.receive(peer, edus)

    async def start(self, nursery: trio.Nursery) -> None:
        """Load pinned keys and start sending what the outbox holds (catch-up, §3.3)."""
        await self.keystore.load()
        self.links.start(nursery)
        await self.outbox.start(nursery)
        nursery.start_soon(self.ephemeral.run)
        for server in sorted(self._room_servers()):
            nursery.start_soon(self._announce, server)

    def _room_servers(self) -> set[str]:
        """Every other server with a user joined to a room this node holds."""
        servers: set[str] = set()
        for room in self._rooms.rooms.values():
            servers |= self._rooms.members(room).servers_joined
        return servers

    async def _announce(self, server: str) -> None:
        """§3.3: open a link on start, so the peer's outbox for this node is sent at once."""
        # A peer that is down too is linked by whichever of the two returns later.
        with contextlib.suppress(LinkError):
            await self.links.get(server)

    async def accept(self, channel: Channel) -> None:
        """Serve a link another node opened at ``/federation``."""
        await self.links.accept(channel)

    # --- §7: inviting a user of another node ---------------------------------------------

    async def invite(self, room_id: str, sender: str, invitee: str) -> str:
        """Have the invitee's node co-sign the invite, then store and send it."""
        rooms = self._rooms
        room = rooms.require_joined(sender, room_id)
        event_id, signed = rooms.build_signed(
            room,
            sender=sender,
            event_type=EventType.MEMBER,
            content={"membership": "invite"},
            state_key=invitee,
        )
        server = parse_user_id(invitee).server_name
        try:
            link = await self.links.get(server)
            answer = await link.request("sign_invite", {"event": signed})
        except (LinkError, LinkClosedError, trio.TooSlowError) as exc:
            raise RemoteProtocolError(
                ErrorCode.NOT_FOUND, f"{server} cannot be reached to invite {invitee}: {exc}"
            ) from exc
        cosigned = answer.get("event")
        keys = self.keystore.get(server)
        if type(cosigned) is not dict or keys is None:
            raise RemoteProtocolError(ErrorCode.BAD_PARAMS, f"{server} answered no event")
        verify_countersignature(cosigned, server, keys.verify_keys)
        if {k: v for k, v in cosigned.items() if k != "signatures"} != {
            k: v for k, v in signed.items() if k != "signatures"
        }:
            raise RemoteProtocolError(ErrorCode.BAD_EVENT, f"{server} changed the invite")
        await rooms.store_signed(room, event_id, cosigned)
        return event_id

    # --- §10: device keys ---------------------------------------------------------------

    async def _ask(self, server: str, op: str, params: JsonObject) -> JsonObject:
        """One request to ``server``; ``unreachable`` when no answer can be had."""
        try:
            link = await self.links.get(server)
            return await link.request(op, params, timeout=KEYS_TIMEOUT_S)
        except (LinkError, LinkClosedError, trio.TooSlowError) as exc:
            raise RemoteProtocolError(ErrorCode.UNREACHABLE, f"{server}: {exc}"[:500]) from exc

    async def query_keys(
        self, server: str, user_ids: list[str]
    ) -> tuple[dict[str, dict[str, JsonObject]], list[str]]:
        """The identity keys of ``server``'s ``user_ids`` that check out, and the users it
        left out of its answer (to be asked again)."""
        answer = await self._ask(server, "query_keys", {"user_ids": user_ids})
        wanted = frozenset(user_ids)
        incomplete = answer.get("incomplete", [])
        left = [u for u in incomplete if u in wanted] if type(incomplete) is list else []
        return parse_query_answer(answer, server, wanted), left

    async def claim_keys(
        self, server: str, wanted: dict[str, dict[str, str]]
    ) -> dict[str, dict[str, dict[str, JsonObject]]]:
        """One key of each named device of ``server``'s users, as its node handed them out."""
        answer = await self._ask(server, "claim_keys", {"one_time_keys": wanted})
        return parse_claim_answer(answer, server, wanted)

    async def _answer_query(self, peer: str, params: JsonObject) -> JsonObject:
        """§10 ``query_keys``: this node's users only, within the frame."""
        devices = await self._device_keys.query(params["user_ids"])
        kept, left = fit_answer(devices, _KEYS_ANSWER_BYTES)
        answer: JsonObject = {"devices": kept}
        if left:
            answer["incomplete"] = left
        return answer

    async def _answer_claim(self, peer: str, params: JsonObject) -> JsonObject:
        """§10 ``claim_keys``: keys of this node's users' devices, each handed out once."""
        claimed = await self._device_keys.claim(params["one_time_keys"])
        log.info("keys_claimed", peer=peer, devices=sum(len(d) for d in claimed.values()))
        return {"one_time_keys": claimed}

    # --- §6: joining a room held elsewhere -----------------------------------------------

    async def fetch_room(self, room_id: str, via: list[str]) -> None:
        """Hold ``room_id`` by paging its history from the first ``via`` server that has it."""
        last: Exception | None = None
        for server in via:
            if server == self.server_name:
                continue
            try:
                link = await self.links.get(server)
                await self.inbound.acquire_from(link, room_id)
                return
            except (LinkError, LinkClosedError, trio.TooSlowError, RemoteProtocolError) as exc:
                log.info("join_via_failed", room=room_id, via=server, why=str(exc)[:200])
                last = exc
        if isinstance(last, RemoteProtocolError):
            raise last
        raise RemoteProtocolError(
            ErrorCode.NOT_FOUND, f"no server of {via[:8]} gave {room_id}: {last}"
        )


def _peer_trust(config: NodeConfig) -> ssl.SSLContext | None:
    """The trust store for peers' certificates when ``[federation] ca_file`` adds to the
    system's (checked at start); None otherwise, and the links load the system's alone."""
    if config.federation_ca_file is None:
        return None
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=str(config.federation_ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"[federation] ca_file: {exc}") from None
    return context
