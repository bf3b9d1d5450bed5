"""The node's links: one authenticated link per peer, dialed on demand or accepted
(spec/federation.md §2).

:meth:`Links.get` returns the link to a peer, dialing one if there is none (one dial at a
time per peer; callers wait for it). :meth:`Links.accept` serves a link a peer opened. When
a link authenticates while another to the same peer is up, §2.3 decides which stays; both
nodes apply the same rule. Whoever wants to know when a link to a peer comes up — the
outbox, to send its queue at once — waits on :meth:`Links.wait_for_link`.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Mapping

import trio

from node.federation.channel import Channel, DialError, PeerAddress, dial
from node.federation.peer_link import (
    HANDSHAKE_TIMEOUT,
    LinkClosedError,
    LinkIdentity,
    PeerLink,
    RequestHandler,
)
from node.log import get_log
from protocol import RemoteProtocolError, parse_server_name
from protocol.wire import CloseCode

__all__ = ["LinkError", "Links"]

log = get_log(__name__)

PING_INTERVAL = 30.0
"""§2.4: ping after this much silence."""
SILENCE_LIMIT = 90.0
"""§2.4: close a link that received nothing for this long."""


class LinkError(Exception):
    """No authenticated link to the peer could be had."""


class Links:
    """Every link of this node, by peer server name."""

    def __init__(
        self,
        identity: LinkIdentity,
        handler: RequestHandler,
        *,
        peers: Mapping[str, str],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``ssl_context`` checks peers' certificates on ``wss://`` links; without one, the
        system's trust store is loaded when the first such link is dialed (it costs a few
        MiB that a node linking only over ``ws://`` never needs)."""
        self._identity = identity
        self._ssl_context = ssl_context
        self._handler = handler
        self._peers = dict(peers)
        self._links: dict[str, PeerLink] = {}
        self._dialing: dict[str, trio.Event] = {}
        self._link_up: dict[str, trio.Event] = {}
        self._nursery: trio.Nursery | None = None
        self.on_link_up: list[Callable[[str], None]] = []
        """Told the peer's name when a link to a peer authenticates where none was up."""
        self.on_link_down: list[Callable[[str], None]] = []
        """Told the peer's name when the link to a peer closed and none other is up."""

    def start(self, nursery: trio.Nursery) -> None:
        """Where dialed links run (the node's nursery)."""
        self._nursery = nursery

    def address_of(self, server_name: str) -> PeerAddress:
        """§2.1: the ``[peers]`` entry, or the server name itself (port 7447 by default)."""
        mapped = self._peers.get(server_name)
        if mapped is not None:
            return PeerAddress.parse(mapped, default_tls=False)  # host:port means ws://
        parsed = parse_server_name(server_name)
        address = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
        return PeerAddress.parse(address, default_tls=True)

    def current(self, server_name: str) -> PeerLink | None:
        """The authenticated link to ``server_name``, if one is up."""
        link = self._links.get(server_name)
        return link if link is not None and not link.closed.is_set() else None

    async def wait_for_link(self, server_name: str) -> None:
        """Return once a link to ``server_name`` authenticates (now, if one is up)."""
        if self.current(server_name) is not None:
            return
        await self._link_up.setdefault(server_name, trio.Event()).wait()

    # --- dialing ------------------------------------------------------------------------

    async def get(self, server_name: str) -> PeerLink:
        """The link to ``server_name``, dialing one if needed; :class:`LinkError` if none."""
        while True:
            link = self.current(server_name)
            if link is not None:
                return link
            dialing = self._dialing.get(server_name)
            if dialing is None:
                break
            await dialing.wait()
            if self.current(server_name) is None:
                raise LinkError(f"no link to {server_name}")
        done = self._dialing[server_name] = trio.Event()
        try:
            return await self._dial(server_name)
        finally:
            del self._dialing[server_name]
            done.set()

    async def _dial(self, server_name: str) -> PeerLink:
        assert self._nursery is not None, "Links.start was not called"
        try:
            address = self.address_of(server_name)
        except (ValueError, RemoteProtocolError) as exc:
            raise LinkError(f"no address for {server_name}: {exc}") from exc
        opened: list[PeerLink] = []
        failed: list[BaseException] = []
        ready = trio.Event()

        async def run_link() -> None:
            trust = self._trust(address)
            try:
                async with dial(
                    address, server_name, timeout=HANDSHAKE_TIMEOUT, ssl_context=trust
                ) as channel:
                    link = PeerLink(channel, self._identity, self._handler, initiator=True)
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._run, link)
                        try:
                            await link.initiate(server_name)
                        except (RemoteProtocolError, LinkClosedError, trio.TooSlowError) as exc:
                            failed.append(exc)
                            ready.set()
                            await link.close(CloseCode.POLICY_VIOLATION, "handshake failed")
                            return
                        opened.append(link)
                        ready.set()
            except DialError as exc:
                failed.append(exc)
            finally:
                ready.set()

        async def accepted_meanwhile() -> None:
            # A link the peer opened while this dial is under way serves as well (§2.3).
            await self.wait_for_link(server_name)
            ready.set()

        self._nursery.start_soon(run_link)
        async with trio.open_nursery() as race:
            race.start_soon(accepted_meanwhile)
            await ready.wait()
            race.cancel_scope.cancel()
        link = self.current(server_name)
        if link is not None:
            return link
        if not opened:
            why = failed[0] if failed else "closed"
            log.info("link_dial_failed", peer=server_name, address=address.url, why=str(why)[:200])
            raise LinkError(f"no link to {server_name}: {why}")
        return opened[0]

    def _trust(self, address: PeerAddress) -> ssl.SSLContext | None:
        if address.tls and self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    # --- serving ------------------------------------------------------------------------

    async def accept(self, channel: Channel) -> None:
        """Serve a link a peer opened, until it closes."""
        link = PeerLink(channel, self._identity, self._handler, initiator=False)
        await self._run(link)

    async def _run(self, link: PeerLink) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._register_when_authenticated, link)
            nursery.start_soon(self._keep_alive, link)
            await link.run()
            nursery.cancel_scope.cancel()
        if link.peer is not None and self._links.get(link.peer) is link:
            del self._links[link.peer]
            log.info("link_down", link=link.link_id, peer=link.peer)
            for listener in self.on_link_down:
                listener(link.peer)

    async def _register_when_authenticated(self, link: PeerLink) -> None:
        await link.authenticated.wait()
        peer = link.peer
        assert peer is not None
        other = self.current(peer)
        if other is not None and other is not link:
            keep, drop = _choose(self._identity.server_name, other, link)
            if drop is link:
                await link.close(CloseCode.NORMAL, "duplicate link")
                return
            await other.close(CloseCode.NORMAL, "duplicate link")
            link = keep
        self._links[peer] = link
        event = self._link_up.pop(peer, None)
        if event is not None:
            event.set()
        if other is None:
            for listener in self.on_link_up:
                listener(peer)

    async def _keep_alive(self, link: PeerLink) -> None:
        """§2.4: ping after silence; close a link that stays silent."""
        await link.authenticated.wait()
        while True:
            idle = trio.current_time() - link.last_received
            if idle >= SILENCE_LIMIT:
                await link.close(CloseCode.GOING_AWAY, "silent link")
                return
            if idle >= PING_INTERVAL:
                with contextlib.suppress(LinkClosedError, RemoteProtocolError, trio.TooSlowError):
                    await link.request("ping", {}, timeout=SILENCE_LIMIT - idle)
            await trio.sleep(max(0.0, PING_INTERVAL - (trio.current_time() - link.last_received)))


def _choose(own_name: str, older: PeerLink, newer: PeerLink) -> tuple[PeerLink, PeerLink]:
    """§2.3: (kept, closed) of two authenticated links to the same peer."""
    if older.initiator == newer.initiator:
        return newer, older
    # Different initiators: keep the link whose initiator's name is smaller (as UTF-8).
    assert newer.peer is not None
    own_smaller = own_name.encode() < newer.peer.encode()
    ours, theirs = (older, newer) if older.initiator else (newer, older)
    return (ours, theirs) if own_smaller else (theirs, ours)
