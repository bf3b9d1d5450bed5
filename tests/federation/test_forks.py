"""Forks of a room's history across real nodes (spec/federation.md §3.1, §4; spec/state.md
§5-§7).

A node that turns against a room: b, whose user was banned, forks the room's history to
bring her back. Real nodes a and c judge what b sends by the room's rules: the forks are
rejected with the rules' reason, stored but never delivered to devices, and both honest
nodes reach the same verdicts. A replayed event is a duplicate that changes nothing, and
events from a node that did not prove its name are refused. b runs as a real node until
the ban; then it stops, and a fake peer holding b's key speaks for it (the fake peer node
of the conformance suite, pointed at our nodes as test_adversarial does).

An honest fork: a ban made while the nodes cannot reach each other, and the banned user's
messages meanwhile, which every node then rejects and retracts from the devices that had
them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
import trio
import trio.testing

from node.clock import now_ms
from node.keys import NodeKey, load_or_create_keyring
from protocol import JsonObject, build_event, sign_event_with_id
from protocol.signing import derive_key_id
from tests.federation.cluster import Cluster, Device, StoredRoom
from tests.federation.test_adversarial import FakePeer, fake_peer

TIMEOUT = 30
MALLORY = "@mallory:b.test"
BOB = "@bob:b.test"


@dataclass
class Scene:
    """A room made on a with users of a, b and c, where alice banned b's mallory; b is down."""

    cluster: Cluster
    alice: Device
    carol: Device
    room_id: str
    create_id: str
    before_ban: str
    """Mallory's last message before the ban: where b forks from."""
    ban: str
    b_key: NodeKey

    def forge(
        self,
        sender: str,
        event_type: str,
        content: JsonObject,
        parents: list[str],
        depth: int,
        *,
        state_key: str | None = None,
        key: nacl.signing.SigningKey | None = None,
        server: str = "b.test",
    ) -> tuple[JsonObject, str]:
        """An event signed by ``server`` (by b, with b's key, unless told otherwise)."""
        event = build_event(
            event_type=event_type,
            sender=sender,
            room_id=self.room_id,
            content=content,
            prev_events=parents,
            auth_events=[self.create_id],
            depth=depth,
            origin_server_ts=now_ms(),
            state_key=state_key,
        )
        signing_key = key or self.b_key.signing_key
        return sign_event_with_id(event, server, derive_key_id(signing_key.verify_key), signing_key)

    async def stored(self, letter: str) -> StoredRoom:
        stored = await self.cluster.stored_room(letter, self.room_id)
        assert stored is not None
        return stored


def _is_member(user_id: str, membership: str) -> Any:
    return lambda item: (
        item["kind"] == "event"
        and item["event"]["type"] == "member"
        and item["event"]["state_key"] == user_id
        and item["event"]["content"]["membership"] == membership
    )


def _is_message(body: str) -> Any:
    return lambda item: item["kind"] == "event" and item["event"]["content"].get("body") == body


async def _until_seen(device: Device, predicate: Any) -> None:
    await device.wait_until(lambda: any(predicate(item) for item in device.items))


async def _say(device: Device, room_id: str, body: str) -> str:
    content = {"body": body, "msgtype": "text"}
    result = await device.result("send", room_id=room_id, txn_id=body, content=content)
    event_id: str = result["event_id"]
    return event_id


@asynccontextmanager
async def _as_b(scene: Scene, letter: str) -> AsyncIterator[FakePeer]:
    """A link to node ``letter`` from a fake peer that holds b's key: b, as far as the node
    can tell (federation.md §2.2)."""
    port = scene.cluster[letter].port
    async with fake_peer(port, node_name=f"{letter}.test", name="b.test") as b:
        b.key = scene.b_key.signing_key
        await b.authenticate()
        yield b


async def _txn(peer: FakePeer, *pdus: JsonObject) -> list[tuple[str, str | None]]:
    """Send ``pdus`` in one transaction; each one's outcome and reason."""
    return [(o["outcome"], o.get("reason")) for o in await peer.txn(*pdus)]


async def _views_agree(scene: Scene) -> StoredRoom:
    """a and c hold the same events, verdicts, state and canonical order; a's rows."""
    views = []
    for letter in "ac":
        stored = await scene.stored(letter)
        engine = stored.engine()
        views.append((stored.verdicts, engine.canonical_order(), engine.timeline(), engine.state()))
    assert views[0] == views[1]
    return await scene.stored("a")


@pytest.fixture
async def scene(nursery: trio.Nursery, tmp_path: Path) -> Scene:
    cluster = Cluster(nursery, tmp_path)
    await cluster.start("a", "b", "c")
    with trio.fail_after(TIMEOUT):
        alice, bob = Device(nursery, "alice", "a"), Device(nursery, "bob", "b")
        mallory, carol = Device(nursery, "mallory", "b"), Device(nursery, "carol", "c")
        for device, letter in ((alice, "a"), (bob, "b"), (mallory, "b"), (carol, "c")):
            await device.register(cluster[letter].port)
        joiners = [bob, mallory, carol]
        invite = [d.user_id for d in joiners]
        room_id = (await alice.result("create_room", name="r", invite=invite))["room_id"]
        for joiner in joiners:
            await _until_seen(joiner, _is_member(joiner.user_id, "invite"))
            await joiner.result("join", room_id=room_id)
            await _until_seen(alice, _is_member(joiner.user_id, "join"))
        before_ban = await _say(mallory, room_id, "mallory before the ban")
        for device in (alice, carol):
            await _until_seen(device, _is_message("mallory before the ban"))
        ban = (await alice.result("ban", room_id=room_id, user_id=MALLORY))["event_id"]
        for device in (bob, carol):
            await _until_seen(device, _is_member(MALLORY, "ban"))
        await cluster.stop("b")
    data_dir = cluster["b"].config.data_dir
    keyring, created = await trio.to_thread.run_sync(load_or_create_keyring, data_dir)
    assert not created
    stored = await cluster.stored_room("a", room_id)
    assert stored is not None
    return Scene(cluster, alice, carol, room_id, stored.order[0], before_ban, ban, keyring.current)


async def test_a_banned_member_cannot_rejoin_by_forking_history(
    scene: Scene, network_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(TIMEOUT):
        fork_depth = (await scene.stored("a")).events[scene.before_ban]["depth"] + 1
        tips, tip_depth = (await scene.stored("a")).engine().next_position()
        rejoin, rejoin_id = scene.forge(
            MALLORY, "member", {"membership": "join"}, [scene.before_ban], fork_depth,
            state_key=MALLORY,
        )  # fmt: skip
        on_fork, on_fork_id = scene.forge(
            MALLORY, "message", {"body": "back on a fork", "msgtype": "text"}, [rejoin_id],
            fork_depth + 1,
        )  # fmt: skip
        after_join, _ = scene.forge(
            MALLORY, "member", {"membership": "join"}, tips, tip_depth, state_key=MALLORY
        )
        after_say, _ = scene.forge(
            MALLORY, "message", {"body": "still here", "msgtype": "text"}, tips, tip_depth
        )
        unban, _ = scene.forge(
            BOB, "member", {"membership": "unban"}, tips, tip_depth, state_key=MALLORY
        )
        forged = [rejoin, on_fork, after_join, after_say, unban]
        async with _as_b(scene, "a") as b:
            outcomes = await _txn(b, *forged)
        # Concurrent with the ban, and defeated by it (state.md §5, §7); after the ban, each
        # fails the check of rooms.md §5 with its reason.
        assert outcomes == [
            ("rejected", "defeated"),
            ("rejected", "defeated"),
            ("rejected", "banned"),
            ("rejected", "not_joined"),
            ("rejected", "insufficient_power"),
        ]
        # alice's next message names the rejected forks as parents (state.md §2): c fetches
        # them from a (federation.md §5) and judges them as a did.
        await _say(scene.alice, scene.room_id, "after the forks")
        for device in (scene.alice, scene.carol):
            await _until_seen(device, _is_message("after the forks"))
        stored = await _views_agree(scene)
        forged_ids = [eid for eid in stored.order if stored.verdicts[eid] is not None]
        assert len(forged_ids) == len(forged)
        assert on_fork_id in forged_ids
        assert stored.engine().memberships()[MALLORY] == "ban"
        for device in (scene.alice, scene.carol):
            delivered = {item.get("event", {}).get("event_id") for item in device.items}
            assert delivered.isdisjoint(forged_ids)
            assert all(item["kind"] == "event" for item in device.items)  # no retraction


async def test_a_replayed_event_is_a_duplicate_and_changes_nothing(
    scene: Scene, network_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(TIMEOUT):
        before = await scene.stored("a")
        old = [before.events[scene.before_ban], before.events[scene.ban]]
        seen = {letter: len(d.items) for letter, d in (("a", scene.alice), ("c", scene.carol))}
        for letter in "ac":
            async with _as_b(scene, letter) as b:
                assert await _txn(b, *old) == [("duplicate", None)] * 2
        assert await scene.stored("a") == before
        await _say(scene.alice, scene.room_id, "after the replay")
        for letter, device in (("a", scene.alice), ("c", scene.carol)):
            await _until_seen(device, _is_message("after the replay"))
            new = device.items[seen[letter] :]
            assert [item["event"]["content"].get("body") for item in new] == ["after the replay"]
        await _views_agree(scene)


async def test_events_from_a_node_that_did_not_prove_its_name_are_refused(
    scene: Scene, network_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(TIMEOUT):
        before = await scene.stored("a")
        depth = before.events[scene.before_ban]["depth"] + 1
        fork, _ = scene.forge(
            MALLORY, "message", {"body": "let me in", "msgtype": "text"}, [scene.before_ban], depth
        )
        port = scene.cluster["a"].port
        txn = {"txn_id": "t", "pdus": [fork], "edus": []}
        async with fake_peer(port, node_name="a.test", name="b.test") as stranger:
            # No handshake at all.
            assert await stranger.error("txn", **txn) == "not_authenticated"
        async with fake_peer(port, node_name="a.test", name="b.test") as impostor:
            # b's name, not b's key: a pinned b's key object (federation.md §1.2).
            assert (await impostor.hello())["error"]["code"] == "unknown_key"
            assert await impostor.error("txn", **txn) == "not_authenticated"
        async with fake_peer(port, node_name="a.test") as evil:
            # A node proven as itself speaks for b's user (§4 step 2).
            await evil.authenticate()
            as_evil, _ = scene.forge(
                MALLORY, "message", {"body": "let me in", "msgtype": "text"},
                [scene.before_ban], depth, key=evil.key, server=evil.name,
            )  # fmt: skip
            assert await _txn(evil, as_evil) == [("refused", "missing_signature")]
        assert await scene.stored("a") == before


def _is_retraction(event_id: str) -> Any:
    return lambda item: item["kind"] == "retraction" and item["event_id"] == event_id


@dataclass
class Partition:
    """A room of alice (a, its creator), bob (b) and carol (c) after a partition in which
    alice banned carol while carol talked on; healed, the ban reached b after carol's
    messages did."""

    cluster: Cluster
    alice: Device
    bob: Device
    carol: Device
    room_id: str
    meanwhile: list[str]
    """What carol sent while the nodes could not reach each other."""


async def _ban_during_a_partition(nursery: trio.Nursery, tmp_path: Path) -> Partition:
    cluster = Cluster(nursery, tmp_path)
    await cluster.start("a", "b", "c")
    alice, bob = Device(nursery, "alice", "a"), Device(nursery, "bob", "b")
    carol = Device(nursery, "carol", "c")
    for device, letter in ((alice, "a"), (bob, "b"), (carol, "c")):
        await device.register(cluster[letter].port)
    invite = [bob.user_id, carol.user_id]
    room_id = (await alice.result("create_room", name="r", invite=invite))["room_id"]
    for joiner in (bob, carol):
        await _until_seen(joiner, _is_member(joiner.user_id, "invite"))
        await joiner.result("join", room_id=room_id)
        for device in (alice, bob):
            await _until_seen(device, _is_member(joiner.user_id, "join"))
    for letter in "abc":
        cluster[letter].proxy.cut()
    meanwhile = [await _say(carol, room_id, f"carol meanwhile {i}") for i in range(2)]
    await alice.result("ban", room_id=room_id, user_id=carol.user_id)
    # a goes down with the ban in its outbox: b hears carol first, then the ban.
    await cluster.stop("a")
    for letter in "bc":
        cluster[letter].proxy.heal()
    await _until_seen(bob, _is_message("carol meanwhile 1"))
    await cluster.run("a")
    await alice.wait_until(lambda: not alice.connected)
    await alice.reconnect(cluster["a"].port)
    for device in (bob, carol):
        await _until_seen(device, _is_member(carol.user_id, "ban"))
    return Partition(cluster, alice, bob, carol, room_id, meanwhile)


async def test_a_ban_made_during_a_partition_defeats_what_the_banned_user_sent_meanwhile(
    nursery: trio.Nursery, tmp_path: Path, network_clock: trio.testing.MockClock
) -> None:
    """An honest fork: carol's messages are concurrent with the ban and defeated by it on
    every node (state.md §5, §7); bob's device, which had them, gets their retractions
    (client.md §5); alice's never has them."""
    with trio.fail_after(TIMEOUT):
        scene = await _ban_during_a_partition(nursery, tmp_path)
        for event_id in scene.meanwhile:
            await _until_seen(scene.bob, _is_retraction(event_id))
        after = await _say(scene.bob, scene.room_id, "after the ban")
        await _until_seen(scene.alice, _is_message("after the ban"))
        # Every node: the same verdicts and state, carol's messages defeated, carol banned;
        # c, with no one in the room any more, does not get what follows the ban.
        views = {}
        for letter in "abc":
            stored = await scene.cluster.stored_room(letter, scene.room_id)
            assert stored is not None
            assert [stored.verdicts[e] for e in scene.meanwhile] == ["defeated", "defeated"]
            engine = stored.engine()
            assert engine.memberships()[scene.carol.user_id] == "ban"
            order = [e for e in engine.canonical_order() if e != after]
            views[letter] = ({e: stored.verdicts[e] for e in order}, order, engine.state())
            assert (after in stored.events) == (letter != "c")
        assert views["a"] == views["b"] == views["c"]
        alice_got = {i["event"]["event_id"] for i in scene.alice.items if i["kind"] == "event"}
        assert alice_got.isdisjoint(scene.meanwhile)


async def test_the_banned_sender_gets_the_retractions_of_the_messages_she_saw(
    nursery: trio.Nursery, tmp_path: Path, network_clock: trio.testing.MockClock
) -> None:
    """client.md §5: "Retractions follow the events they retract". Carol's device showed
    her messages; the ban that defeats them is also what ends her view of the room, and
    the retractions come after it — she must get them all the same, or her device keeps
    showing messages that every node rejected."""
    with trio.fail_after(TIMEOUT):
        scene = await _ban_during_a_partition(nursery, tmp_path)
        shown = {i["event"]["event_id"] for i in scene.carol.items if i["kind"] == "event"}
        assert shown.issuperset(scene.meanwhile)
        # c made the retractions with the ban, in one change, and pushes a connection's
        # items in order before any later answer: after this answer, carol has them all.
        await scene.carol.result("ping")
        assert _is_member(scene.carol.user_id, "ban")(scene.carol.items[-1])
        retracted = [i["event_id"] for i in scene.carol.items if i["kind"] == "retraction"]
        assert retracted == scene.meanwhile


async def test_a_fork_that_lies_about_its_depth_is_refused_with_bad_depth(
    scene: Scene, network_clock: trio.testing.MockClock
) -> None:
    """A fork claiming a depth its parents do not give it — to sort before the ban in the
    canonical order, or far after it — breaks state.md §1 rule 4: refused with
    ``bad_depth`` and never added to the graph; not ``held``, which says its parents are
    missing (federation.md §3.1) when the receiver has them all."""
    with trio.fail_after(TIMEOUT):
        before = await scene.stored("a")
        depth = before.events[scene.before_ban]["depth"] + 1
        content = {"body": "first in line", "msgtype": "text"}
        forks = [
            scene.forge(MALLORY, "message", content, [scene.before_ban], claimed)[0]
            for claimed in (depth - 1, depth + 5)
        ]
        async with _as_b(scene, "a") as b:
            outcomes = await _txn(b, *forks)
        assert await scene.stored("a") == before
        assert outcomes == [("refused", "bad_depth")] * 2
