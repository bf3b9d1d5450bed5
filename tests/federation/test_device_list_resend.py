"""Device-list EDUs a peer may have missed are sent again when its link is back
(spec/federation.md §8.1): the relay on its own, with stand-ins for the node's services."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import trio.testing

from node.federation.ephemeral import LIST_RESEND_MARGIN_S, EphemeralRelay

ALICE, CAROL = "@alice:a.test", "@carol:a.test"


@dataclass
class _Members:
    servers_joined: frozenset[str] = frozenset({"b.test"})


@dataclass
class _Rooms:
    server_name: str = "a.test"
    rooms: dict[str, Any] = field(default_factory=lambda: {"!r": object()})
    on_joined: list[Any] = field(default_factory=list)

    def members(self, room: object) -> _Members:
        return _Members()

    def local_joined(self, room_id: str) -> list[str]:
        return [ALICE, CAROL]

    def rooms_joined_by(self, user_id: str) -> list[str]:
        return ["!r"]


@dataclass
class _Listened:
    on_local_change: list[Any] = field(default_factory=list)

    def describe(self, user_id: str) -> dict[str, Any]:
        return {"user_id": user_id, "presence": "offline"}


@dataclass
class _Outbox:
    sent: list[tuple[list[str], str]] = field(default_factory=list)

    def queue_edu(self, destinations: Any, edu: dict[str, Any]) -> None:
        if edu["type"] == "device_list_update":
            self.sent.append((list(destinations), edu["content"]["user_id"]))


def _relay() -> tuple[EphemeralRelay, _Listened, _Outbox]:
    device_keys, outbox = _Listened(), _Outbox()
    relay = EphemeralRelay(
        rooms=cast(Any, _Rooms()),
        presence=cast(Any, _Listened()),
        typing=cast(Any, _Listened()),
        receipts=cast(Any, _Listened()),
        device_keys=cast(Any, device_keys),
        outbox=cast(Any, outbox),
    )
    return relay, device_keys, outbox


async def test_changes_near_or_during_an_outage_are_sent_again_when_the_link_is_back(
    mock_clock: trio.testing.MockClock,
) -> None:
    relay, device_keys, outbox = _relay()
    [changed] = device_keys.on_local_change
    relay.link_up("b.test")
    changed(CAROL)  # long before the outage: delivered, not sent again
    mock_clock.jump(LIST_RESEND_MARGIN_S + 60)
    changed(ALICE)  # just before the link goes down: its transaction may have failed
    mock_clock.jump(30)
    relay.link_down("b.test")
    mock_clock.jump(600)
    outbox.sent.clear()
    relay.link_up("b.test")
    assert outbox.sent == [(["b.test"], ALICE)]
    outbox.sent.clear()
    relay.link_up("b.test")  # a link that did not go down misses nothing
    assert outbox.sent == []


async def test_a_server_first_linked_after_changes_gets_them_all(
    mock_clock: trio.testing.MockClock,
) -> None:
    relay, device_keys, outbox = _relay()
    [changed] = device_keys.on_local_change
    changed(ALICE)
    changed(CAROL)
    outbox.sent.clear()
    relay.link_up("b.test")
    assert outbox.sent == [(["b.test"], ALICE), (["b.test"], CAROL)]
