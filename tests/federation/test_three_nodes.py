"""Three real nodes, each behind a fault proxy: a group room with a user on every node and a
direct room across two of them. Everyone talks, and sets the group's topic, while links are
cut, stalled, delayed and killed and nodes restart; once all is healed, every node holds
the same events with the same verdicts, the same room state and the same canonical order,
and every device has seen every message of its rooms exactly once, in causal order
(spec/federation.md §3-§5, spec/state.md §3-§7, spec/client.md §5).

The runs are seeded: a seed fixes the faults, the speakers and the rooms, not the timing of
the sockets. They run on a clock that jumps once every task waits, so a retry wait of the
outbox (federation.md §3.3) costs no real time.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from tests.federation.cluster import Cluster, Device, StoredRoom

TIMEOUT = 600
"""Seconds of the test's clock, on which retry waits pass at once (a run takes 5-20)."""
STEPS = 14
USERS = {"a": "alice", "b": "bob", "c": "carol"}
FAULTS = ("none", "cut", "stall", "delay", "kill", "restart")
LONGEST_DOWN = 3
TOPIC_CHANGES = 0.25
"""How often a step's speaker also sets the group room's topic."""
"""A restarted node stays down for up to this many steps while the others talk."""


@dataclass(frozen=True)
class Sent:
    """A message as its sender sent it, with what its sender's device had seen by then."""

    body: str
    sender: str
    room_id: str
    seen: frozenset[str]
    """Bodies of the room's messages the sender's device had received before sending."""


def _is_member(room_id: str, user_id: str, membership: str) -> Any:
    return lambda item: (
        item["kind"] == "event"
        and item["room_id"] == room_id
        and item["event"]["type"] == "member"
        and item["event"]["state_key"] == user_id
        and item["event"]["content"]["membership"] == membership
    )


def _is_level(room_id: str, user_id: str) -> Any:
    return lambda item: (
        item["kind"] == "event"
        and item["room_id"] == room_id
        and item["event"]["type"] == "power_levels"
        and item["event"]["state_key"] == user_id
    )


def _is_event(event_id: str) -> Any:
    return lambda item: item["kind"] == "event" and item["event"]["event_id"] == event_id


async def _until_seen(device: Device, predicate: Any) -> None:
    await device.wait_until(lambda: any(predicate(item) for item in device.items))


def _bodies(device: Device, room_id: str) -> list[str]:
    return [e["content"]["body"] for e in device.events(room_id) if e["type"] == "message"]


async def _group_room(alice: Device, bob: Device, carol: Device) -> str:
    """A room made on a, one user of each node joined, each allowed to set its topic."""
    created = await alice.result("create_room", name="three", invite=[bob.user_id, carol.user_id])
    room_id: str = created["room_id"]
    for joiner, earlier in ((bob, [alice]), (carol, [alice, bob])):
        await _until_seen(joiner, _is_member(room_id, joiner.user_id, "invite"))
        await joiner.result("join", room_id=room_id)
        for device in earlier:
            await _until_seen(device, _is_member(room_id, joiner.user_id, "join"))
    for device in (bob, carol):
        await alice.result("set_level", room_id=room_id, user_id=device.user_id, level=50)
        await _until_seen(device, _is_level(room_id, device.user_id))
    return room_id


async def _direct_room(inviter: Device, invitee: Device) -> str:
    created = await inviter.result("create_room", direct=True, invite=[invitee.user_id])
    room_id: str = created["room_id"]
    await _until_seen(invitee, _is_member(room_id, invitee.user_id, "invite"))
    await invitee.result("join", room_id=room_id)
    await _until_seen(inviter, _is_member(room_id, invitee.user_id, "join"))
    return room_id


class Run:
    """One seeded run: the cluster, a device per user, and every message sent."""

    def __init__(self, cluster: Cluster, devices: dict[str, Device], rng: random.Random) -> None:
        self.cluster = cluster
        self.devices = devices
        self.rng = rng
        self.rooms: dict[str, str] = {}
        """Room id → the letters of the nodes with a user in it."""
        self.group = ""
        """The room with a user of every node, where everyone may set the topic."""
        self.sent: list[Sent] = []
        self._txns = itertools.count()
        self.down: dict[str, int] = {}
        """Letters of the nodes that are down → the step at which they come back."""

    async def say(self, letter: str, room_id: str, body: str) -> None:
        device = self.devices[letter]
        seen = frozenset(_bodies(device, room_id))
        content = {"body": body, "msgtype": "text"}
        txn_id = f"m{next(self._txns)}"
        await device.result("send", room_id=room_id, txn_id=txn_id, content=content)
        self.sent.append(Sent(body, device.user_id, room_id, seen))

    async def bring_back(self, letter: str) -> None:
        """Start a node stopped by a step again; its user's device reconnects and resumes."""
        del self.down[letter]
        await self.bring_back_stopped(letter)

    async def bring_back_stopped(self, letter: str) -> None:
        """Start a stopped node again; its user's device reconnects and resumes."""
        await self.cluster.run(letter)
        device = self.devices[letter]
        await device.wait_until(lambda: not device.connected)
        await device.reconnect(self.cluster[letter].port)

    def heal(self) -> None:
        for letter in USERS:
            self.cluster[letter].proxy.heal()

    async def step(self, step: int) -> None:
        """One fault (or none), then a message from a user whose node is up."""
        rng = self.rng
        fault = rng.choice(FAULTS)
        letter = rng.choice(list(USERS))
        proxy = self.cluster[letter].proxy
        if fault == "cut":
            proxy.cut()
        elif fault == "stall":
            proxy.stall()
        elif fault == "delay":
            proxy.set_delay(rng.uniform(0.001, 0.05))
        elif fault == "kill":
            proxy.kill_one(rng)
        elif fault == "restart" and letter not in self.down and len(self.down) < len(USERS) - 1:
            await self.cluster.stop(letter)
            self.down[letter] = step + rng.randint(0, LONGEST_DOWN)
        for back in sorted(k for k, at in self.down.items() if at <= step):
            await self.bring_back(back)
        speaker = rng.choice([k for k in USERS if k not in self.down])
        if rng.random() < TOPIC_CHANGES:
            # A state event, written concurrently from several nodes (state.md §4).
            topic = f"{USERS[speaker]} {step}"
            await self.devices[speaker].result("set_topic", room_id=self.group, topic=topic)
        room_id = rng.choice([r for r, letters in self.rooms.items() if speaker in letters])
        await self.say(speaker, room_id, f"{USERS[speaker]} {step}")
        if rng.random() < 0.5:
            self.heal()

    async def finish(self) -> None:
        """Heal everything, have everyone speak once more, wait until every device has
        every message of its rooms."""
        for letter in sorted(self.down):
            await self.bring_back(letter)
        self.heal()
        for index, (room_id, letters) in enumerate(self.rooms.items()):
            for letter in letters:
                await self.say(letter, room_id, f"{USERS[letter]} last {index}")
        for letter, device in self.devices.items():
            for room_id, letters in self.rooms.items():
                if letter in letters:
                    wanted = {s.body for s in self.sent if s.room_id == room_id}
                    await device.wait_until(_has_all(device, room_id, wanted))


def _has_all(device: Device, room_id: str, bodies: set[str]) -> Callable[[], bool]:
    return lambda: bodies <= set(_bodies(device, room_id))


def _ancestors(stored: StoredRoom) -> dict[str, set[str]]:
    """Every event's ancestors (state.md §1), from the stored events (parents come first)."""
    found: dict[str, set[str]] = {}
    for event_id in stored.order:
        parents = stored.events[event_id]["prev_events"]
        found[event_id] = set(parents).union(*(found[p] for p in parents))
    return found


async def _check_devices(run: Run, only: str = "".join(USERS)) -> None:
    """Each device (of the nodes named) saw each message of its rooms once, every sender's
    in send order, each after what its sender had seen and after its ancestors; nothing was
    retracted."""
    for letter in only:
        device = run.devices[letter]
        assert [i for i in device.items if i["kind"] != "event"] == []
        for room_id, letters in run.rooms.items():
            if letter not in letters:
                assert device.events(room_id) == []
                continue
            sent = [s for s in run.sent if s.room_id == room_id]
            bodies = _bodies(device, room_id)
            assert sorted(bodies) == sorted(s.body for s in sent)  # all of them, once each
            at = {body: index for index, body in enumerate(bodies)}
            for sender in {s.sender for s in sent}:
                mine = [s.body for s in sent if s.sender == sender]
                assert sorted(mine, key=at.__getitem__) == mine
            for message in sent:
                assert all(at[seen] < at[message.body] for seen in message.seen), message
            stored = await run.cluster.stored_room(letter, room_id)
            assert stored is not None
            ancestors = _ancestors(stored)
            delivered = [e["event_id"] for e in device.events(room_id)]
            assert len(set(delivered)) == len(delivered)
            for index, event_id in enumerate(delivered):
                assert ancestors[event_id].isdisjoint(delivered[index:]), event_id


async def _check_nodes(run: Run) -> None:
    """The nodes of each room hold the same events, verdicts, state and canonical order;
    the others do not hold it. Each node stored parents before children, and its stored
    verdicts are what an engine fed the same events computes."""
    for room_id, letters in run.rooms.items():
        views: dict[str, Any] = {}
        for letter in USERS:
            stored = await run.cluster.stored_room(letter, room_id)
            if letter not in letters:
                assert stored is None
                continue
            assert stored is not None
            at = {event_id: index for index, event_id in enumerate(stored.order)}
            for event_id in stored.order:
                assert all(at[p] < at[event_id] for p in stored.events[event_id]["prev_events"])
            engine = stored.engine()
            rejections = {e: engine.rejection(e) for e in stored.order}
            assert {e: r.value if r else None for e, r in rejections.items()} == stored.verdicts
            assert set(stored.verdicts.values()) == {None}  # honest users: all accepted
            views[letter] = (
                set(stored.events),
                stored.verdicts,
                engine.canonical_order(),
                engine.timeline(),
                engine.state(),
            )
        first = letters[0]
        for letter in letters[1:]:
            assert views[letter] == views[first], (first, letter)


async def _three_nodes_through_faults(nursery: trio.Nursery, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    cluster = Cluster(nursery, tmp_path)
    await cluster.start(*USERS)
    with trio.fail_after(TIMEOUT):
        devices = {letter: Device(nursery, name, letter) for letter, name in USERS.items()}
        for letter, device in devices.items():
            await device.register(cluster[letter].port)
        run = Run(cluster, devices, rng)
        group = await _group_room(devices["a"], devices["b"], devices["c"])
        inviter, invitee = rng.sample(list(USERS), 2)
        direct = await _direct_room(devices[inviter], devices[invitee])
        run.rooms = {group: "".join(USERS), direct: inviter + invitee}
        run.group = group
        for step in range(STEPS):
            await run.step(step)
        await run.finish()
        await _check_nodes(run)
        await _check_devices(run)


@pytest.mark.parametrize("seed", range(20))
async def test_three_nodes_converge_after_outages_and_restarts(
    nursery: trio.Nursery, tmp_path: Path, network_clock: trio.testing.MockClock, seed: int
) -> None:
    await _three_nodes_through_faults(nursery, tmp_path, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(20, 220))
async def test_three_nodes_converge_after_outages_and_restarts_more_seeds(
    nursery: trio.Nursery, tmp_path: Path, network_clock: trio.testing.MockClock, seed: int
) -> None:
    await _three_nodes_through_faults(nursery, tmp_path, seed)


async def _ban_and_talk(nursery: trio.Nursery, tmp_path: Path) -> tuple[Run, str]:
    """A group room where alice banned carol, then alice and bob talked (everyone has it)."""
    cluster = Cluster(nursery, tmp_path)
    await cluster.start(*USERS)
    devices = {letter: Device(nursery, name, letter) for letter, name in USERS.items()}
    for letter, device in devices.items():
        await device.register(cluster[letter].port)
    alice, bob, carol = devices["a"], devices["b"], devices["c"]
    run = Run(cluster, devices, random.Random(0))
    room_id = run.group = await _group_room(alice, bob, carol)
    run.rooms = {room_id: "".join(USERS)}
    await alice.result("ban", room_id=room_id, user_id=carol.user_id)
    for device in (bob, carol):
        await _until_seen(device, _is_member(room_id, carol.user_id, "ban"))
    for index in range(30):
        await run.say("ab"[index % 2], room_id, f"without carol {index}")
    said = {s.body for s in run.sent}
    for device in (alice, bob):
        await device.wait_until(_has_all(device, room_id, said))
    return run, room_id


async def _let_back_in(run: Run, room_id: str, *, seen_on: str = "ab") -> None:
    """alice unbans and invites carol, carol joins again; the nodes named see her join."""
    alice, carol = run.devices["a"], run.devices["c"]
    await alice.result("unban", room_id=room_id, user_id=carol.user_id)
    invite = await alice.result("invite", room_id=room_id, user_id=carol.user_id)
    await _until_seen(carol, _is_event(invite["event_id"]))
    join = await carol.result("join", room_id=room_id)
    for letter in seen_on:
        await _until_seen(run.devices[letter], _is_event(join["event_id"]))


async def test_a_user_let_back_in_after_a_ban_catches_up_through_her_node(
    nursery: trio.Nursery, tmp_path: Path, network_clock: trio.testing.MockClock
) -> None:
    """While carol is banned, c gets nothing of the room (federation.md §3.3); unbanned,
    invited and joined again, c fetches what it missed (§5) and holds what a and b hold,
    and carol's device shows the room from her return, not what was said without her."""
    with trio.fail_after(TIMEOUT):
        run, room_id = await _ban_and_talk(nursery, tmp_path)
        missed = {s.body for s in run.sent}
        for letter in "ab":
            assert (await run.cluster.stored_room(letter, room_id)) is not None
        held_by_c = await run.cluster.stored_room("c", room_id)
        assert held_by_c is not None
        assert {e["content"].get("body") for e in held_by_c.events.values()}.isdisjoint(missed)
        await _let_back_in(run, room_id)
        for letter, name in USERS.items():
            await run.say(letter, room_id, f"{name} with carol back")
        back = [s.body for s in run.sent if s.body not in missed]
        for device in run.devices.values():
            await device.wait_until(_has_all(device, room_id, set(back)))
        await _check_nodes(run)
        await _check_devices(run, "ab")
        assert sorted(_bodies(run.devices["c"], room_id)) == sorted(back)


async def test_what_was_said_while_she_was_banned_stays_hidden_when_it_arrives_late(
    nursery: trio.Nursery, tmp_path: Path, network_clock: trio.testing.MockClock
) -> None:
    """bob says something while carol is banned, and b goes down before a hears it; carol
    is let back in meanwhile. When b returns, the message reaches a, and c fetches it as a
    parent of what follows: stored after carol's join on c, but said in a room she was
    banned from (its causal state, state.md §4, has her banned). Her device must not get
    it, as it does not get the messages c fetched before her join (client.md §5)."""
    with trio.fail_after(TIMEOUT):
        run, room_id = await _ban_and_talk(nursery, tmp_path)
        await run.say("b", room_id, "while carol was banned")
        await run.cluster.stop("b")
        await _let_back_in(run, room_id, seen_on="a")
        await run.bring_back_stopped("b")
        late = run.sent[-1].body
        await run.devices["a"].wait_until(_has_all(run.devices["a"], room_id, {late}))
        await run.say("a", room_id, "after the late one")
        carol = run.devices["c"]
        await carol.wait_until(_has_all(carol, room_id, {"after the late one"}))
        stored = await run.cluster.stored_room("c", room_id)
        assert stored is not None
        assert late in {e["content"].get("body") for e in stored.events.values()}
        assert late not in _bodies(carol, room_id)
