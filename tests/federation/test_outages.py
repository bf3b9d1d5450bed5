"""Outages between real nodes: a node down, links cut, stalled and delayed — after healing
every node holds the same events in the same order, and each device sees every message
once (spec/federation.md §3.2-§3.3). Three nodes with restarts: test_three_nodes.

The tests run on a clock that jumps once every task waits, so the outbox's retry waits
(§3.3) cost no real time.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from tests.federation.cluster import Cluster
from tests.node.chat_client import bodies, is_membership, is_message, items_until, say, user
from tests.node.session_client import Client

TIMEOUT = 600
"""Seconds of the test's clock, on which retry waits pass at once (runs take a few)."""


async def _shared_room(alice: Client, bob: Client) -> str:
    await alice.result("sync")
    await bob.result("sync")
    room_id: str = (await alice.result("create_room", invite=["@bob:b.test"]))["room_id"]
    await items_until(bob, is_membership("@bob:b.test", "invite"), limit_s=TIMEOUT)
    await bob.result("join", room_id=room_id)
    await items_until(alice, is_membership("@bob:b.test", "join"), limit_s=TIMEOUT)
    return room_id


async def _timeline(connection: Client, room_id: str) -> list[str]:
    """Every accepted event id of the room, oldest first, by paging ``history``."""
    ids: list[str] = []
    before: str | None = None
    while True:
        params: dict[str, Any] = {"room_id": room_id, "limit": 100}
        if before is not None:
            params["before"] = before
        page = await connection.result("history", **params)
        ids[:0] = [event["event_id"] for event in page["events"]]
        before = page["before"]
        if before is None:
            return ids


async def test_a_node_down_while_messages_are_sent_catches_up_when_it_returns(
    nursery: trio.Nursery, tmp_path: Path, network_clock: trio.testing.MockClock
) -> None:
    cluster = Cluster(nursery, tmp_path)
    await cluster.start("a", "b")
    with trio.fail_after(TIMEOUT):
        async with user(cluster["a"].port, "alice") as alice:
            async with user(cluster["b"].port, "bob") as bob:
                room_id = await _shared_room(alice, bob)
            await cluster.stop("b")
            sent = [f"while b was down {i}" for i in range(30)]
            for body in sent:
                await say(alice, room_id, body)
            await cluster.run("b")
            async with user(cluster["b"].port, "bob", register=False) as bob:
                await bob.result("sync")
                seen = await items_until(bob, is_message(sent[-1]), limit_s=TIMEOUT)
                assert bodies(seen) == sent
                assert await _timeline(bob, room_id) == await _timeline(alice, room_id)


async def _two_nodes_through_faults(nursery: trio.Nursery, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    cluster = Cluster(nursery, tmp_path)
    await cluster.start("a", "b")
    with trio.fail_after(TIMEOUT):
        async with user(cluster["a"].port, "alice") as alice, user(cluster["b"].port, "bob") as bob:
            room_id = await _shared_room(alice, bob)
            sent: dict[str, list[str]] = {"alice": [], "bob": []}
            for step in range(12):
                fault = rng.choice(["none", "cut", "stall", "delay", "kill"])
                proxy = cluster[rng.choice("ab")].proxy
                if fault == "cut":
                    proxy.cut()
                elif fault == "stall":
                    proxy.stall()
                elif fault == "delay":
                    proxy.set_delay(rng.uniform(0.001, 0.02))
                elif fault == "kill":
                    proxy.kill_one(rng)
                speaker = rng.choice(["alice", "bob"])
                body = f"{speaker} {step}"
                await say(alice if speaker == "alice" else bob, room_id, body)
                sent[speaker].append(body)
                if rng.random() < 0.5:
                    cluster["a"].proxy.heal()
                    cluster["b"].proxy.heal()
            cluster["a"].proxy.heal()
            cluster["b"].proxy.heal()
            for name, connection in (("alice", alice), ("bob", bob)):
                await say(connection, room_id, f"{name} last")
                sent[name].append(f"{name} last")
            # Each device sees every message of the other side exactly once, in its order.
            from_bob = await items_until(alice, is_message("bob last"), limit_s=TIMEOUT)
            from_alice = await items_until(bob, is_message("alice last"), limit_s=TIMEOUT)
            assert [b for b in bodies(from_bob) if b.startswith("bob")] == sent["bob"]
            assert [b for b in bodies(from_alice) if b.startswith("alice")] == sent["alice"]
            assert await _timeline(alice, room_id) == await _timeline(bob, room_id)


@pytest.mark.parametrize("seed", range(20))
async def test_cut_stall_and_delay_then_heal_converges(
    nursery: trio.Nursery, tmp_path: Path, network_clock: trio.testing.MockClock, seed: int
) -> None:
    await _two_nodes_through_faults(nursery, tmp_path, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(20, 120))
async def test_cut_stall_and_delay_then_heal_converges_more_seeds(
    nursery: trio.Nursery, tmp_path: Path, network_clock: trio.testing.MockClock, seed: int
) -> None:
    await _two_nodes_through_faults(nursery, tmp_path, seed)
