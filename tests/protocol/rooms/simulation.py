"""Random federated histories: several servers, each with its own replica of one room.

Users on each server create events on top of what their server has seen — sometimes on top
of older history (a fork, or a backdated event) — and servers exchange events in random
batches, so replicas see different subsets in different orders, as partitioned nodes do.
Events are real (signed, content-addressed); the actions are sometimes not allowed (a
banned user posting, a moderator kicking their superior), which is the point.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

import protocol
from protocol import JsonObject
from protocol.rooms import Changes, Room

_TS = 1_767_225_600_000
KINDS = (
    "message",
    "message",
    "message",
    "join",
    "leave",
    "invite",
    "kick",
    "ban",
    "unban",
    "level",
    "thresholds",
    "join_rules",
    "topic",
)


def _key(server: str) -> Any:
    return protocol.signing_key_from_seed(hashlib.sha256(server.encode()).digest())


@dataclass
class Replica:
    """One server's copy of the room, and the log of what each ``add`` changed."""

    name: str
    users: list[str]
    room: Room
    log: list[Changes] = field(default_factory=list)
    added_order: list[str] = field(default_factory=list)

    def add(self, events: dict[str, JsonObject]) -> Changes:
        """Add a batch and remember what it changed."""
        changes = self.room.add(events)
        assert not changes.refused, changes.refused
        assert not changes.held, "batches are causally closed"
        self.log.append(changes)
        self.added_order.extend(changes.added)
        return changes


class Federation:
    """A room shared by ``servers`` servers; ``events`` is every event anyone created."""

    def __init__(self, rng: random.Random, servers: int) -> None:
        self.rng = rng
        names = [f"s{i}.example" for i in range(servers)]
        self.creator = f"@a:{names[0]}"
        create = protocol.build_event(
            event_type="create",
            sender=self.creator,
            state_key="",
            content={"creator": self.creator, "room_version": "1", "direct": rng.random() < 0.1},
            prev_events=[],
            auth_events=[],
            depth=0,
            origin_server_ts=_TS,
        )
        signed = protocol.sign_event(create, names[0], "k", _key(names[0]))
        self.create_id = protocol.compute_event_id(signed)
        self.events: dict[str, JsonObject] = {self.create_id: signed}
        self.replicas = [
            Replica(
                name,
                [f"@{chr(97 + j)}{i}:{name}" for j in range(1 + (i % 2))],
                Room(self.create_id, signed),
            )
            for i, name in enumerate(names)
        ]
        self.replicas[0].users.insert(0, self.creator)
        self.users = [u for r in self.replicas for u in r.users]
        founder = self.replicas[0]
        self.act(founder, self.creator, "join")
        self.act(founder, self.creator, "level", target=self.users[1], value=50)
        self.act(founder, self.creator, "join_rules", value="public")

    # --- creating events -----------------------------------------------------------------

    def _content(
        self, kind: str, user: str, target: str, value: Any
    ) -> tuple[str, JsonObject, str | None]:
        if kind == "message":
            return "message", {"body": f"hi {self.rng.random():.6f}", "msgtype": "text"}, None
        if kind in ("join", "leave") and target == user:
            return "member", {"membership": kind}, user
        if kind in ("invite", "kick", "ban", "unban", "join", "leave"):
            membership = {"kick": "leave"}.get(kind, kind)
            return "member", {"membership": membership}, target
        if kind == "level":
            level = value if value is not None else self.rng.choice([0, 50, 100])
            return "power_levels", {"level": level}, target
        if kind == "thresholds":
            choice = self.rng.choice([0, 50, 100])
            return "power_levels", {"kick": choice, "ban": self.rng.choice([50, 100])}, ""
        if kind == "join_rules":
            rule = value or self.rng.choice(["public", "invite"])
            return "join_rules", {"join_rule": rule}, ""
        return "topic", {"topic": f"topic {self.rng.random():.6f}"}, ""

    def act(
        self,
        replica: Replica,
        user: str,
        kind: str,
        *,
        target: str | None = None,
        value: Any = None,
        fork: bool = False,
    ) -> str:
        """``user`` (hosted by ``replica``) creates an event there; its id."""
        target = target or (user if kind in ("join", "leave") else self.rng.choice(self.users))
        event_type, content, state_key = self._content(kind, user, target, value)
        if fork and len(replica.added_order) > 1:
            parents = [self.rng.choice(replica.added_order)]
            depth = 1 + replica.room.depth(parents[0])
        else:
            parents, depth = replica.room.next_position()
        event = protocol.build_event(
            event_type=event_type,
            sender=user,
            room_id=replica.room.room_id,
            state_key=state_key,
            content=content,
            prev_events=parents,
            auth_events=[],
            depth=depth,
            origin_server_ts=_TS + len(self.events),
        )
        event["auth_events"] = replica.room.auth_events_for(event)[:10]
        signed = protocol.sign_event(event, replica.name, "k", _key(replica.name))
        event_id = protocol.compute_event_id(signed)
        self.events[event_id] = signed
        replica.add({event_id: signed})
        return event_id

    def _choose_kind(self, replica: Replica, user: str) -> str:
        """Mostly sensible actions for what ``user``'s server sees, some deliberately not."""
        room = replica.room
        member = room.state_event(("member", user))
        joined = member is not None and member["content"]["membership"] == "join"
        if not joined and self.rng.random() < 0.7:
            return "join"
        own = room.state_event(("power_levels", user))
        powerful = user == self.creator or (own is not None and own["content"]["level"] >= 50)
        if powerful and self.rng.random() < 0.5:
            return self.rng.choice(["kick", "ban", "unban", "level", "level", "thresholds"])
        return self.rng.choice(KINDS)

    # --- moving events -----------------------------------------------------------------

    def closure(self, event_id: str, replica: Replica) -> dict[str, JsonObject]:
        """``event_id`` and every ancestor ``replica`` lacks: a causally closed batch."""
        batch: dict[str, JsonObject] = {}
        stack = [event_id]
        while stack:
            current = stack.pop()
            if current in batch or current in replica.room:
                continue
            batch[current] = self.events[current]
            stack.extend(self.events[current]["prev_events"])
        return batch

    def deliver(self, source: Replica, target: Replica, *, one_by_one: bool) -> None:
        """Send ``target`` a random part of what ``source`` has, causally closed."""
        missing = [e for e in source.added_order if e not in target.room]
        if not missing:
            return
        chosen = self.rng.sample(missing, k=self.rng.randint(1, len(missing)))
        batch: dict[str, JsonObject] = {}
        for event_id in chosen:
            batch.update(self.closure(event_id, target))
        if one_by_one:
            for event_id in sorted(batch, key=lambda i: (batch[i]["depth"], i)):
                target.add({event_id: batch[event_id]})
        else:
            target.add(batch)

    def sync_all(self) -> None:
        """Everyone receives everything."""
        for replica in self.replicas:
            batch = {i: e for i, e in self.events.items() if i not in replica.room}
            if batch:
                replica.add(batch)

    def step(self) -> None:
        """One random action: an event on some server, or a delivery between two."""
        rng = self.rng
        if rng.random() < 0.6:
            replica = rng.choice(self.replicas)
            user = rng.choice(replica.users)
            self.act(replica, user, self._choose_kind(replica, user), fork=rng.random() < 0.2)
        else:
            source, target = rng.sample(self.replicas, 2)
            self.deliver(source, target, one_by_one=rng.random() < 0.5)


def run(seed: int, *, servers: int, steps: int) -> Federation:
    """A random history of ``steps`` actions over ``servers`` servers, fully synced."""
    federation = Federation(random.Random(seed), servers)
    for _ in range(steps):
        federation.step()
    federation.sync_all()
    return federation
