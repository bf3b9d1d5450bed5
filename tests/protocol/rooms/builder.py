"""Building room histories for tests: signed events with correct depths, by name.

A :class:`RoomBuilder` creates a room and lets a test add events by naming their sender,
type, content and parents; it keeps every event (whatever its verdict) and gives each a
short label, so scenarios read like the spec's examples::

    b = RoomBuilder()                      # @a:a.example creates a public room and joins
    m1 = b.send("@a:a.example", "message", {"body": "hi"})
    x1 = b.send("@x:x.example", "message", {"body": "fork"}, parents=[m1])

Events are real: signed by their sender's server with a fixed key, ids computed by
``protocol.compute_event_id``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import protocol
from protocol import JsonObject

_TS = 1_767_225_600_000


def signing_key(server: str) -> Any:
    """The signing key of ``server`` in these tests (its key id is `k`)."""
    return protocol.signing_key_from_seed(hashlib.sha256(server.encode()).digest())


class RoomBuilder:
    """A room under construction: every event created, in creation order."""

    def __init__(
        self,
        creator: str = "@a:a.example",
        *,
        join_rule: str | None = "public",
        direct: bool = False,
        power: JsonObject | None = None,
    ) -> None:
        self.events: dict[str, JsonObject] = {}
        self.order: list[str] = []
        self.labels: dict[str, str] = {}
        content: JsonObject = {"creator": creator, "room_version": "1"}
        if direct:
            content["direct"] = True
        create = protocol.build_event(
            event_type="create",
            sender=creator,
            state_key="",
            content=content,
            prev_events=[],
            auth_events=[],
            depth=0,
            origin_server_ts=_TS,
        )
        signed = protocol.sign_event(create, _server(creator), "k", signing_key(_server(creator)))
        self.create_id = protocol.compute_event_id(signed)
        self.room_id = "!" + self.create_id[1:]
        self._add(self.create_id, signed, "create")
        self.creator = creator
        self.tip = self.send(creator, "member", {"membership": "join"}, state_key=creator)
        if power is not None:
            self.tip = self.send(creator, "power_levels", power, state_key="")
        if join_rule is not None:
            self.tip = self.send(creator, "join_rules", {"join_rule": join_rule}, state_key="")

    def _add(self, event_id: str, event: JsonObject, label: str | None) -> None:
        self.events[event_id] = event
        self.order.append(event_id)
        self.labels[event_id] = label or f"e{len(self.order)}"

    def extremities(self) -> list[str]:
        """Events of this builder that are no one's parent."""
        parents = {p for e in self.events.values() for p in e["prev_events"]}
        return [i for i in self.order if i not in parents]

    def send(
        self,
        sender: str,
        event_type: str,
        content: JsonObject,
        *,
        state_key: str | None = None,
        parents: list[str] | None = None,
        label: str | None = None,
    ) -> str:
        """Create a signed event on top of ``parents`` (default: every extremity); its id."""
        prev = parents if parents is not None else self.extremities()
        depth = 1 + max(self.events[p]["depth"] for p in prev)
        event = protocol.build_event(
            event_type=event_type,
            sender=sender,
            room_id=self.room_id,
            state_key=state_key,
            content=content,
            prev_events=prev,
            auth_events=[self.create_id],
            depth=depth,
            origin_server_ts=_TS + len(self.order),
        )
        server = _server(sender)
        signed = protocol.sign_event(event, server, "k", signing_key(server))
        event_id = protocol.compute_event_id(signed)
        self._add(event_id, signed, label)
        return event_id

    # Shorthands for the common events.
    def join(self, user: str, **kw: Any) -> str:
        """``user`` joins."""
        return self.send(user, "member", {"membership": "join"}, state_key=user, **kw)

    def member(self, sender: str, target: str, membership: str, **kw: Any) -> str:
        """``sender`` sets ``target``'s membership (invite, leave/kick, ban, unban)."""
        return self.send(sender, "member", {"membership": membership}, state_key=target, **kw)

    def level(self, sender: str, target: str, level: int, **kw: Any) -> str:
        """``sender`` sets ``target``'s power level."""
        return self.send(sender, "power_levels", {"level": level}, state_key=target, **kw)

    def say(self, sender: str, body: str = "hello", **kw: Any) -> str:
        """``sender`` sends a text message."""
        return self.send(sender, "message", {"body": body, "msgtype": "text"}, **kw)

    def label(self, event_id: str) -> str:
        """The short name of an event, for assertion messages."""
        return self.labels[event_id]


def _server(user_id: str) -> str:
    return user_id.partition(":")[2]
