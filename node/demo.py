"""``kith demo``: three nodes on loopback and three people chatting across them.

The demo starts nodes ``a.demo``, ``b.demo`` and ``c.demo`` in one process, each on port 0
with its own data folder, linked through their ``[peers]`` settings. Alice (on a), Bob (on
b) and Carol (on c) each get one device — a real client session over a real WebSocket
(``node.demo_device``). They share a group room and Alice and Bob a direct room; they
talk; Carol's device quits and comes back, and the others are told of her presence; node c
stops, the others talk on, and c restarts from the same data folder and catches up.

Everything a device receives is printed as it arrives, ``<seconds> <device> <what>``; the
script only waits for the updates it expects, each within a time limit, and ends with the
checks: every message reached each member's device exactly once, and Carol got what was
said while her node was down, in order. :func:`run_demo` returns the transcript and the
problems found (tests read both); ``kith demo`` prints it.
"""

from __future__ import annotations

import contextlib
import logging
import random
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import click
import trio
import trio.testing

from client import Backoff, CaughtUp, EventItem, KithClientError, PresenceChanged, Update
from node.app import serve_node
from node.config import NodeConfig
from node.demo_device import Device, Sent, Transcript, short_name
from node.demo_relay import Relay
from node.log import ROOT_LOGGER, LogfmtFormatter

__all__ = ["DemoError", "DemoReport", "demo", "run_demo"]

LETTERS = ("a", "b", "c")
DOMAIN = "demo"
"""Server names are ``<letter>.demo``."""
PRESENCE_WAIT = 2.0
"""Seconds the demo waits for a presence update before saying none came."""
DELIVERY_WAIT = 10.0
"""Seconds an expected message, invite or join may take to reach a device."""
DEMO_LIMIT = 60.0
"""The whole demo's time limit."""
LOG_FILE_NAME = "demo.log"
"""The nodes' and devices' log lines, in the demo's data folder."""


class DemoError(Exception):
    """The demo could not go on: something it needed did not happen in time."""


@dataclass
class DemoReport:
    """What the demo printed and what its checks found."""

    lines: list[str]
    """The transcript, line by line."""
    summary: list[str]
    """The checks at the end (also the transcript's last lines)."""
    sent: list[Sent]
    received: dict[str, list[str]]
    """Device label → the text of every message it received, in order."""
    problems: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.problems


@dataclass
class _Node:
    """One demo node: its settings, its fixed address (a relay) and the scope it runs in."""

    config: NodeConfig
    relay: Relay
    port: int = 0
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    stopped: trio.Event = field(default_factory=trio.Event)


class _Demo:
    """The demo's script, step by step, over the nodes and devices it starts."""

    def __init__(
        self, nursery: trio.Nursery, root: Path, transcript: Transcript, presence_wait: float
    ) -> None:
        self.nursery = nursery
        self.root = root
        self.transcript = transcript
        self.presence_wait = presence_wait
        self.nodes: dict[str, _Node] = {}
        self.rooms: dict[str, str] = {}
        self.sent: list[Sent] = []
        self.people: list[Device] = []
        self.problems: list[str] = []
        # Quick retries: a node of the demo is back within a second.
        self.backoff = Backoff(initial=0.2, maximum=0.5, rng=random.Random(7))

    def say(self, who: str, text: str) -> None:
        self.transcript.say(who, text)

    # --- nodes ----------------------------------------------------------------------------

    async def start_nodes(self) -> None:
        relays = {letter: Relay() for letter in LETTERS}
        for relay in relays.values():
            await self.nursery.start(relay.serve)
        for letter, relay in relays.items():
            peers = {
                f"{other}.{DOMAIN}": f"127.0.0.1:{peer.port}"
                for other, peer in relays.items()
                if other != letter
            }
            config = NodeConfig(
                host="127.0.0.1",
                port=0,
                data_dir=self.root / letter,
                server_name=f"{letter}.{DOMAIN}",
                registration_mode="open",
                # The cheapest password hashing: the demo's accounts are thrown away.
                password_cost="min",
                peers=peers,
            )
            self.nodes[letter] = _Node(config, relay)
        for letter in LETTERS:
            await self.run_node(letter)
            node = self.nodes[letter]
            listed = ", ".join(f"{name} at {where}" for name, where in node.config.peers.items())
            self.say(node.config.server_name, f"[peers] {listed}")

    async def run_node(self, letter: str) -> None:
        """Start (or restart) a node from its data folder; its relay follows the new port."""
        node = self.nodes[letter]
        node.scope, node.stopped = trio.CancelScope(), trio.Event()

        async def serve(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                with node.scope:
                    await serve_node(node.config, task_status=task_status)
            finally:
                node.stopped.set()

        node.port = await self.nursery.start(serve)
        node.relay.target_port = node.port
        address = f"127.0.0.1:{node.relay.port}"
        where = f"port {node.port}, reached at {address}, data in {letter}/"
        self.say(node.config.server_name, f"up: {where}")

    async def stop_node(self, letter: str) -> None:
        """Stop a node as a shutdown does; wait until it is down."""
        node = self.nodes[letter]
        self.say(node.config.server_name, "stopping (as on Ctrl-C or SIGTERM)")
        node.relay.target_port = 0
        node.scope.cancel()
        await node.stopped.wait()
        node.relay.drop_all()
        self.say(node.config.server_name, "stopped")

    async def cut_all(self) -> None:
        """Drop every node's connections and let the nodes see it, so they stop at once.

        A node that stops with links up waits for the close handshake of each link it
        opened, which takes seconds at the end of a demo that has nothing left to say.
        """
        for node in self.nodes.values():
            node.relay.target_port = 0
            node.relay.drop_all()
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)

    def device(self, username: str, letter: str) -> Device:
        node = self.nodes[letter]
        return Device(
            username,
            node.config.server_name,
            node.relay.url,
            self.transcript,
            self.rooms,
            self.backoff,
        )

    # --- waiting for what should happen ---------------------------------------------------

    async def expect(
        self, device: Device, predicate: Callable[[Update], bool], what: str, *, since: int = 0
    ) -> None:
        """Wait for an update the demo needs to go on; :class:`DemoError` if it never comes."""
        if await device.wait_for(predicate, within=DELIVERY_WAIT, since=since) is None:
            raise DemoError(f"{device.label} did not see {what} within {DELIVERY_WAIT:g} s")

    async def expect_membership(self, device: Device, user: Device, membership: str) -> None:
        def matches(update: Update) -> bool:
            return (
                isinstance(update, EventItem)
                and update.event.membership == membership
                and update.event.state_key == user.user_id
            )

        await self.expect(device, matches, f"{user.username}'s {membership}")

    async def message(
        self,
        sender: Device,
        room_id: str,
        body: str,
        members: list[Device],
        *,
        down: str | None = None,
    ) -> None:
        """``sender`` says ``body``; wait until the members' devices on running nodes have it."""
        event_id = await sender.say(room_id, body)
        recipients = tuple(m.label for m in members)
        self.sent.append(Sent(event_id, self.rooms[room_id], sender.label, body, recipients, down))

        async with trio.open_nursery() as nursery:
            for device in members:
                if down is None or device.server_name != down:
                    nursery.start_soon(self.arrives, device, self.sent[-1])

    async def arrives(self, device: Device, message: Sent, since: int = 0) -> None:
        """Wait until the device has the message; say so if it does not come in time.

        A message that never comes is not the end of the demo: the checks report it.
        """

        def matches(update: Update) -> bool:
            return isinstance(update, EventItem) and update.event.event_id == message.event_id

        if await device.wait_for(matches, within=DELIVERY_WAIT, since=since) is None:
            device.note(f'(did not receive "{message.body}" within {DELIVERY_WAIT:g} s)')

    async def presence(
        self, subject: Device, presence: str, marks: dict[str, int], observers: list[Device]
    ) -> None:
        """Wait (briefly) for each observer to be told ``subject`` is ``presence``.

        ``marks`` are the observers' bookmarks from before the change, so an update that
        arrived before this call counts too.
        """

        def matches(update: Update) -> bool:
            info = update.presence if isinstance(update, PresenceChanged) else None
            return info is not None and (info.user_id, info.presence) == (subject.user_id, presence)

        async def watch(observer: Device) -> None:
            since = marks[observer.label]
            if await observer.wait_for(matches, within=self.presence_wait, since=since) is None:
                who = short_name(subject.user_id)
                observer.note(f"(no presence update from {who} within {self.presence_wait:g} s)")

        async with trio.open_nursery() as nursery:
            for observer in observers:
                nursery.start_soon(watch, observer)

    # --- the story ------------------------------------------------------------------------

    async def run(self) -> list[str]:
        """The demo from start to end; returns the lines of the checks."""
        self.transcript.plain(f"data folder: {self.root}")
        self.transcript.heading("three nodes on loopback, linked by their [peers] settings")
        await self.start_nodes()

        self.transcript.heading("three people, one device each, each on their own node")
        alice, bob, carol = people = self.people = [
            self.device("alice", "a"),
            self.device("bob", "b"),
            self.device("carol", "c"),
        ]
        for person in people:
            await person.connect(self.nursery, register=True)
        for person in people:
            await self.expect(person, _caught_up, "the end of its catch-up")

        self.transcript.heading("a group room across three nodes")
        alice.note("→ creates #plans, inviting bob and carol")
        with self.transcript.holding():
            invited = [bob.user_id, carol.user_id]
            plans = await alice.session.create_room(name="plans", invite=invited)
            self.rooms[plans] = "#plans"
        for guest in (bob, carol):
            await self.expect_membership(guest, guest, "invite")
            guest.note("→ joins #plans")
            await guest.session.join(plans)
            await self.expect_membership(alice, guest, "join")
        await self.expect_membership(bob, carol, "join")

        self.transcript.heading("a direct room across two nodes")
        bob.note("→ opens a direct room with alice")
        with self.transcript.holding():
            dm = await bob.session.create_room(direct=True, invite=[alice.user_id])
            self.rooms[dm] = "#dm"
        await self.expect_membership(alice, alice, "invite")
        alice.note("→ joins #dm")
        await alice.session.join(dm)
        await self.expect_membership(bob, alice, "join")

        self.transcript.heading("messages")
        await self.message(alice, plans, "hello from node a!", people)
        await self.message(bob, plans, "hi both, b here", people)
        await self.message(carol, plans, "and c says hi", people)
        await self.message(bob, dm, "just between us two", [alice, bob])
        await self.message(alice, dm, "our secret", [alice, bob])

        self.transcript.heading("presence: carol's device quits, then comes back")
        marks = {p.label: p.mark() for p in people}
        await carol.disconnect()
        await self.presence(carol, "offline", marks, [alice, bob])
        marks = {p.label: p.mark() for p in people}
        await carol.connect(self.nursery)
        await self.expect(carol, _caught_up, "the end of its catch-up", since=marks[carol.label])
        await self.presence(carol, "online", marks, [alice, bob])

        self.transcript.heading("c.demo stops; alice and bob talk on")
        await self.stop_node("c")
        down = "c.demo"
        await self.message(alice, plans, "c is down: one", people, down=down)
        await self.message(bob, plans, "c is down: two", people, down=down)
        await self.message(alice, plans, "c is down: three", people, down=down)
        await self.message(bob, plans, "c is down: four", people, down=down)

        self.transcript.heading("c.demo starts again from its data folder and catches up")
        mark = carol.mark()
        await self.run_node("c")
        await self.arrives(carol, self.sent[-1], since=mark)
        await self.message(carol, plans, "back, and I read everything", people)

        for person in people:
            await person.disconnect()
        return self.check(people)

    # --- the checks -----------------------------------------------------------------------

    def check(self, people: list[Device]) -> list[str]:
        """Compare what each device received with what was sent; the summary lines."""
        wrong: list[str] = []
        for message in self.sent:
            for device in people:
                wanted = 1 if device.label in message.recipients else 0
                times = device.times_received(message.event_id)
                if times != wanted:
                    wrong.append(
                        f'{device.label} received "{message.body}" {times} times, not {wanted}'
                    )
        self.problems.extend(wrong)
        summary = []
        for device in people:
            meant = sum(1 for m in self.sent if device.label in m.recipients)
            summary.append(
                f"{device.label} received {len(device.bodies())} messages; {meant} were for it"
            )
        deliveries = sum(len(m.recipients) for m in self.sent)
        summary.append(
            f"{len(self.sent)} messages, {deliveries} deliveries (senders' own devices included),"
            f" each exactly once: {_yes(not wrong)}"
        )
        carol = next(p for p in people if p.username == "carol")
        while_down = [m.body for m in self.sent if m.while_down is not None]
        in_order = [b for b in carol.bodies() if b in while_down] == while_down
        if not in_order:
            self.problems.append(f"{carol.label} did not receive {while_down} in that order")
        summary.append(
            f"{carol.label} got the {len(while_down)} messages sent while its node was down,"
            f" in order: {_yes(in_order)}"
        )
        return summary


def _caught_up(update: Update) -> bool:
    return isinstance(update, CaughtUp)


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


@contextlib.contextmanager
def _logs_to(path: Path) -> Iterator[None]:
    """Send the nodes' and the client library's log lines to ``path`` while the demo runs."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(LogfmtFormatter())
    saved = []
    for name in (ROOT_LOGGER, "client"):
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
        handler.close()


async def run_demo(
    data_dir: Path,
    *,
    echo: Callable[[str], None] | None = None,
    presence_wait: float = PRESENCE_WAIT,
) -> DemoReport:
    """Run the demo with its nodes' data in ``data_dir``; ``echo`` prints each line.

    Raises :class:`DemoError` when a step cannot go on (an invite or join that never
    arrives) or the whole demo takes longer than :data:`DEMO_LIMIT`; anything less — a
    message missing or delivered twice — is one of the report's ``problems``.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    transcript = Transcript(echo)
    with _logs_to(data_dir / LOG_FILE_NAME):
        try:
            with trio.fail_after(DEMO_LIMIT):
                async with trio.open_nursery() as nursery:
                    script = _Demo(nursery, data_dir, transcript, presence_wait)
                    try:
                        summary = await script.run()
                    finally:
                        with trio.CancelScope(shield=True), trio.move_on_after(1):
                            await script.cut_all()
                        nursery.cancel_scope.cancel()
        except* DemoError as failed:
            raise failed.exceptions[0] from None
        except* KithClientError as failed:
            raise DemoError(f"a device's request failed: {failed.exceptions[0]}") from None
        except* trio.TooSlowError:
            raise DemoError(f"the demo did not finish within {DEMO_LIMIT:g} s") from None
    seconds = transcript.elapsed()
    transcript.heading("checks")
    for line in summary:
        transcript.plain(line)
    transcript.plain(f"done in {seconds:.1f} s")
    received = {person.label: person.bodies() for person in script.people}
    return DemoReport(
        lines=transcript.lines,
        summary=summary,
        sent=script.sent,
        received=received,
        problems=script.problems,
        seconds=seconds,
    )


@click.command()
@click.option(
    "--keep",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the nodes' data folders and log in DIR (new or empty) instead of deleting them.",
)
@click.option("--quiet", is_flag=True, help="Print only the checks, not the transcript.")
def demo(keep: Path | None, quiet: bool) -> None:
    """Run three nodes on loopback and show three people chatting across them.

    Nodes a.demo, b.demo and c.demo start in this process; alice, bob and carol, one on
    each, share a group room, alice and bob a direct room. Carol's device quits and comes
    back (presence), then node c stops and restarts and catches up. Every line shows what a
    device received, when (seconds since the start). Exit code 1 if a check fails.
    """
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise click.ClickException(f"{keep} is not empty: --keep needs a new or empty folder")
    with contextlib.ExitStack() as stack:
        if keep is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kith-demo-")))
        else:
            root = keep
        try:
            report = trio.run(partial(run_demo, root, echo=None if quiet else click.echo))
        except DemoError as exc:
            raise click.ClickException(str(exc)) from None
    if quiet:
        for line in report.summary:
            click.echo(line)
        click.echo(f"done in {report.seconds:.1f} s")
    if keep is not None:
        click.echo(f"kept the nodes' data and {LOG_FILE_NAME} in {keep}")
    if not report.ok:
        raise click.ClickException("; ".join(report.problems))
