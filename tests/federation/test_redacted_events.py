"""Redacted events judged the same on every node (spec/rooms.md §3, §5 "Redactions").

A node that joins after a redaction gets the redacted events through backfill: their content
no longer matches their content hash, so it keeps them in redacted form (events.md §7 step
9). The verdict reads only what the signature covers, so it must accept them exactly as the
node that saw them whole, and both must end with the same room state.
"""

from __future__ import annotations

from typing import Any

import trio

from protocol import redact_event
from tests.federation.cluster import Cluster
from tests.node.chat_client import is_membership, items_until, say, txn, user

TIMEOUT = 20


def _summary(rooms: dict[str, Any], room_id: str) -> dict[str, Any]:
    (summary,) = [r for r in rooms["rooms"] if r["room_id"] == room_id]
    return {k: summary[k] for k in ("name", "topic", "direct", "encrypted", "member_count")}


async def test_a_node_joining_after_redactions_accepts_the_redacted_history(
    cluster: Cluster,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with user(cluster["a"].port, "alice") as alice, user(cluster["b"].port, "bob") as bob:
            await alice.result("sync")
            await bob.result("sync")
            created = await alice.result("create_room", name="first name", public=True)
            room_id = created["room_id"]
            named = await alice.result("set_name", room_id=room_id, name="second name")
            topic = await alice.result("set_topic", room_id=room_id, topic="a topic")
            said = await say(alice, room_id, "a secret")
            for target in (named["event_id"], said):
                await alice.result("redact", room_id=room_id, event_id=target, txn_id=txn())
            await say(alice, room_id, "after the redactions")

            await bob.result("join", room_id=room_id, via=["a.test"])
            await items_until(alice, is_membership("@bob:b.test", "join"))

            on_a = await cluster.stored_room("a", room_id)
            on_b = await cluster.stored_room("b", room_id)
            assert on_a is not None
            assert on_b is not None
            assert on_b.verdicts == on_a.verdicts
            assert all(verdict is None for verdict in on_b.verdicts.values())
            for target in (named["event_id"], said):
                assert on_a.events[target] == redact_event(on_a.events[target])
                assert on_b.events[target] == on_a.events[target]
            # Both nodes, rebuilt from what they stored, hold the same state.
            assert on_b.engine().state() == on_a.engine().state()
            assert on_a.engine().state()[("name", "")] == named["event_id"]
            assert on_a.engine().state()[("topic", "")] == topic["event_id"]

            # What users see: the redacted name leaves the room without a name, on both nodes.
            seen_by_alice = _summary(await alice.result("rooms"), room_id)
            seen_by_bob = _summary(await bob.result("rooms"), room_id)
            assert seen_by_alice == seen_by_bob
            assert seen_by_alice["name"] is None
            assert seen_by_alice["topic"] == "a topic"
            members = await alice.result("members", room_id=room_id)
            assert members == await bob.result("members", room_id=room_id)
