"""Room resolution costs (rooms issue targets), as JSON rows.

Targets on the reference 2-core machine: appending to a room of 100,000 events without forks
costs O(1) amortised, under 0.2 ms per event; a late branch of 100 events forking 1,000
events back resolves in under 50 ms; the cost follows the conflicted part of the history,
not its length. Events here are unsigned with synthetic ids: ``Room`` judges verified events
and never re-hashes them, so signing would only measure signing.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import protocol
from bench.common import emit
from protocol.rooms import Room

CREATOR = "@a:a.example"
MODERATOR = "@m:b.example"
MEMBERS = [f"@u{i}:c.example" for i in range(20)]


class _Builder:
    """Events on demand with synthetic ids and correct depths."""

    def __init__(self) -> None:
        self.counter = 0
        self.depth: dict[str, int] = {}
        create = protocol.build_event(
            event_type="create",
            sender=CREATOR,
            state_key="",
            content={"creator": CREATOR, "room_version": "1"},
            prev_events=[],
            auth_events=[],
            depth=0,
            origin_server_ts=0,
        )
        self.create_id = self._id()
        self.room_id = "!" + self.create_id[1:]
        self.create = create
        self.depth[self.create_id] = 0

    def _id(self) -> str:
        self.counter += 1
        digest = hashlib.sha256(self.counter.to_bytes(8, "big")).digest()
        return "$" + protocol.encode_base64_urlsafe(digest)

    def event(
        self,
        parents: list[str],
        sender: str,
        kind: str,
        content: dict[str, Any],
        state_key: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        depth = 1 + max(self.depth[p] for p in parents)
        event = {
            "type": kind,
            "sender": sender,
            "room_id": self.room_id,
            "content": content,
            "prev_events": parents,
            "auth_events": [],
            "depth": depth,
            "origin_server_ts": self.counter,
        }
        if state_key is not None:
            event["state_key"] = state_key
        event_id = self._id()
        self.depth[event_id] = depth
        return event_id, event


def _room_with_members() -> tuple[_Builder, Room, str]:
    builder = _Builder()
    room = Room(builder.create_id, builder.create)
    tip = builder.create_id
    setup: list[tuple[str, str, dict[str, Any], str]] = [
        (CREATOR, "member", {"membership": "join"}, CREATOR),
        (CREATOR, "join_rules", {"join_rule": "public"}, ""),
        (MODERATOR, "member", {"membership": "join"}, MODERATOR),
        (CREATOR, "power_levels", {"level": 50}, MODERATOR),
        *((user, "member", {"membership": "join"}, user) for user in MEMBERS),
    ]
    for sender, kind, content, state_key in setup:
        tip, event = builder.event([tip], sender, kind, content, state_key)
        room.add({tip: event})
    return builder, room, tip


def _messages(
    builder: _Builder, tip: str, count: int, sender_offset: int = 0
) -> list[tuple[str, dict[str, Any]]]:
    chain = []
    for i in range(count):
        sender = MEMBERS[(i + sender_offset) % len(MEMBERS)]
        tip, event = builder.event([tip], sender, "message", {"body": f"message {i}"})
        chain.append((tip, event))
    return chain


def bench_append(total: int = 100_000) -> None:
    """Linear history, one event per ``add``: the fast path."""
    builder, room, tip = _room_with_members()
    chain = _messages(builder, tip, total)
    checkpoints = {total // 10 * k for k in range(1, 11)}
    start = last = time.perf_counter()
    last_count = 0
    for count, (event_id, event) in enumerate(chain, start=1):
        room.add({event_id: event})
        if count in checkpoints:
            now = time.perf_counter()
            emit(
                {
                    "bench": "room_append",
                    "events_in_room": count,
                    "ms_per_event_last_interval": round(
                        (now - last) * 1000 / (count - last_count), 4
                    ),
                }
            )
            last, last_count = now, count
    elapsed = time.perf_counter() - start
    emit(
        {
            "bench": "room_append",
            "events": total,
            "seconds": round(elapsed, 3),
            "ms_per_event": round(elapsed * 1000 / total, 4),
            "target_ms_per_event": 0.2,
        }
    )


def bench_late_branch(
    history: int, since_fork: int = 1_000, branch: int = 100, *, ban: bool, one_by_one: bool = False
) -> None:
    """A branch of ``branch`` events forking ``since_fork`` events back arrives late."""
    builder, room, tip = _room_with_members()
    for event_id, event in _messages(builder, tip, history):
        room.add({event_id: event})
        tip = event_id
    fork_point = tip
    if ban:  # the creator bans the branch's author in the middle of the main line
        main = _messages(builder, tip, since_fork // 2)
        ban_id, ban_event = builder.event(
            [main[-1][0]], CREATOR, "member", {"membership": "ban"}, MEMBERS[0]
        )
        main.append((ban_id, ban_event))
        main += _messages(builder, ban_id, since_fork - since_fork // 2 - 1, sender_offset=1)
    else:
        main = _messages(builder, tip, since_fork)
    for event_id, event in main:
        changes = room.add({event_id: event})
        assert changes.added == [event_id]
    late = []
    branch_tip = fork_point
    for i in range(branch):
        branch_tip, event = builder.event(
            [branch_tip], MEMBERS[0], "message", {"body": f"late {i}"}
        )
        late.append((branch_tip, event))
    start = time.perf_counter()
    if one_by_one:
        accepted = sum(len(room.add({event_id: event}).accepted) for event_id, event in late)
    else:
        accepted = len(room.add(dict(late)).accepted)
    elapsed = time.perf_counter() - start
    emit(
        {
            "bench": "room_late_branch",
            "history_before_fork": history,
            "events_since_fork": since_fork,
            "branch_events": branch,
            "concurrent_ban": ban,
            "one_by_one": one_by_one,
            "ms": round(elapsed * 1000, 2),
            "accepted": accepted,
            "target_ms": 50,
        }
    )


def main() -> None:
    """Every room benchmark."""
    bench_append()
    for history in (1_000, 100_000):
        bench_late_branch(history, ban=False)
        bench_late_branch(history, ban=True)
    bench_late_branch(1_000, ban=True, one_by_one=True)


if __name__ == "__main__":
    main()
