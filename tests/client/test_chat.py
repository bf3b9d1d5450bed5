"""``kith chat`` driven end to end: the chat loop over a scripted terminal against a real
node, and the real command as a process fed lines on stdin."""

from __future__ import annotations

import sys
from datetime import UTC
from pathlib import Path

import trio

import client
from client.chat import run_chat
from client.chat_view import ChatView
from tests.client.helpers import PASSWORD, REPO, TIMEOUT, NodeRunner, signed_up

ALICE = "@alice:localhost"


class Terminal:
    """A scripted terminal: the test types lines and waits for what the chat prints."""

    def __init__(self) -> None:
        self._typed_in, self._typed_out = trio.open_memory_channel[str | None](16)
        self.lines: list[str] = []
        self._read = 0
        self._printed = trio.Event()

    async def read_line(self) -> str | None:
        return await self._typed_out.receive()

    def write(self, line: str) -> None:
        self.lines.append(line)
        self._printed.set()

    async def type(self, line: str) -> None:
        await self._typed_in.send(line + "\n")

    async def end_input(self) -> None:
        await self._typed_in.send(None)

    async def expect(self, fragment: str) -> str:
        """Wait for a line (after those already expected) containing ``fragment``."""
        while True:
            for index in range(self._read, len(self.lines)):
                if fragment in self.lines[index]:
                    self._read = index + 1
                    return self.lines[index]
            self._printed = trio.Event()
            with trio.move_on_after(TIMEOUT / 2) as waited:
                await self._printed.wait()
            if waited.cancelled_caught:
                unread = self.lines[self._read :]
                raise AssertionError(f"no line with {fragment!r} after {unread}")


async def test_a_conversation_in_the_chat_loop(nursery: trio.Nursery, node: NodeRunner) -> None:
    terminal = Terminal()
    with trio.fail_after(TIMEOUT):
        async with signed_up(node.url, "alice") as alice, signed_up(node.url, "bob") as bob:
            done = trio.Event()

            async def chat() -> None:
                view = ChatView(ALICE, tz=UTC)
                await run_chat(alice, read_line=terminal.read_line, write=terminal.write, view=view)
                done.set()

            nursery.start_soon(chat)
            await terminal.expect("/help for the commands")
            await terminal.expect("no rooms yet")  # caught up, with nothing to show

            await terminal.type("/create test")
            await terminal.expect("-- test --")
            await terminal.type("hello")
            await terminal.expect("alice: hello")
            await terminal.type("/invite bob")
            await terminal.expect("* alice invited bob")
            (room,) = await bob.rooms()
            await bob.join(room.room_id)
            await terminal.expect("* bob joined")
            await bob.send(room.room_id, "hi alice")
            await terminal.expect("bob: hi alice")
            await bob.typing(room.room_id, True)
            await terminal.expect("* bob is typing…")

            await terminal.type("/who")
            await terminal.expect("in test:")
            assert await terminal.expect("bob") == "  bob  (online)"
            await terminal.type("/history 4")
            await terminal.expect("alice: hello")
            await terminal.expect("bob: hi alice")

            side = await bob.create_room(name="side", invite=[ALICE])
            await terminal.expect("bob invited you to side — /join 2")
            await terminal.type("/join 2")
            await terminal.expect("-- side --")
            await bob.send(room.room_id, "back here")
            await terminal.expect("[test] ")
            await terminal.type("/rooms")
            await terminal.expect("1. test  (1 unread)")
            await terminal.type("/room test")
            await terminal.expect("-- test --")
            await terminal.expect("bob: back here")
            (read,) = [r for r in await alice.rooms() if r.room_id == room.room_id]
            assert read.unread_count == 0  # shown, so marked read

            await terminal.type("/kick bob talked too much")
            await terminal.expect("* alice removed bob (talked too much)")
            await terminal.type("/teleport")
            await terminal.expect("! unknown command /teleport")
            await terminal.type("/invite @nobody:elsewhere.example")
            await terminal.expect("! refused: not_found")
            await terminal.type("/leave")
            await terminal.expect("* you left test")
            await terminal.expect("-- side --")
            assert side in {r.room_id for r in await alice.rooms()}
            await terminal.type("/quit")
            await done.wait()


async def test_the_chat_ends_when_the_device_is_signed_out(
    nursery: trio.Nursery, node: NodeRunner
) -> None:
    terminal = Terminal()
    with trio.fail_after(TIMEOUT):
        async with signed_up(node.url, "alice") as alice, client.connect(node.url) as phone:
            await phone.login("alice", PASSWORD)
            done = trio.Event()

            async def chat() -> None:
                await run_chat(alice, read_line=terminal.read_line, write=terminal.write)
                done.set()

            nursery.start_soon(chat)
            await terminal.expect("no rooms yet")
            assert alice.device_id is not None
            await phone.revoke_device(alice.device_id)
            await terminal.expect("! this device was signed out (revoked)")
            await done.wait()


async def test_kith_chat_as_a_process_sends_what_is_typed(node: NodeRunner, tmp_path: Path) -> None:
    store = tmp_path / "alice.json"
    with trio.fail_after(TIMEOUT):
        async with signed_up(node.url, "alice", store=str(store)):
            pass
        chat = await trio.run_process(
            [sys.executable, "-m", "node", "chat", "--store", str(store)],
            stdin=b"/create test\nhello from a terminal\n/quit\n",
            capture_stdout=True,
            capture_stderr=True,
            cwd=REPO,
        )
        assert f"signed in as {ALICE}" in chat.stdout.decode()
        async with client.connect(node.url) as other_device:
            await other_device.login("alice", PASSWORD)
            (room,) = await other_device.rooms()
            assert room.name == "test"
            page = await other_device.history(room.room_id)
            assert [e.body for e in page.events if e.body] == ["hello from a terminal"]
