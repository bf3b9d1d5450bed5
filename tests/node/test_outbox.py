"""The outbox keeps a connection's frames in order whichever writer takes them, and tells
when a connection falls too far behind."""

from __future__ import annotations

import trio
import trio.testing

from node.transport.outbox import Outbox


async def test_frames_leave_in_order_through_flush_and_pump() -> None:
    written: list[bytes] = []
    socket_room = [5]  # the socket takes five bytes right away, then blocks

    def write_now(data: bytes) -> int:
        taken = data[: socket_room[0]]
        socket_room[0] -= len(taken)
        written.append(taken)
        return len(taken)

    async def write(data: bytes) -> None:
        await trio.sleep(0)
        written.append(data)

    outbox = Outbox(write, write_now, limit=1000)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(outbox.pump)
            for frame in (b"abc", b"defg", b"hij"):
                assert outbox.put_nowait(frame)
            await outbox.put(b"klm")
            await trio.sleep(0.01)
            outbox.finish()
    assert b"".join(written) == b"abcdefghijklm"


async def test_an_outbox_past_its_limit_overflows_and_takes_nothing_more() -> None:
    async def never(data: bytes) -> None:
        await trio.sleep_forever()

    outbox = Outbox(never, None, limit=10)
    assert outbox.put_nowait(b"12345")
    assert outbox.put_nowait(b"67890")
    assert not outbox.put_nowait(b"x")
    assert outbox.overflowed
    with trio.fail_after(5):
        await outbox.pump()  # returns at once: the connection is to be dropped


async def test_a_full_outbox_makes_answers_wait_for_room() -> None:
    release = trio.Event()
    written: list[bytes] = []

    async def slow(data: bytes) -> None:
        await release.wait()
        written.append(data)

    outbox = Outbox(slow, None, limit=4)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(outbox.pump)
            await outbox.put(b"1234")
            entered = trio.Event()

            async def answer() -> None:
                entered.set()
                await outbox.put(b"5678")

            nursery.start_soon(answer)
            await entered.wait()
            await trio.sleep(0.01)
            release.set()
            await trio.sleep(0.01)
            outbox.finish()
    assert b"".join(written) == b"12345678"


async def test_an_answer_waiting_for_room_gives_up_when_the_outbox_overflows() -> None:
    async def never(data: bytes) -> None:
        await trio.sleep_forever()

    outbox = Outbox(never, None, limit=4)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            assert outbox.put_nowait(b"1234")
            waiting = trio.Event()
            answered = trio.Event()

            async def answer() -> None:
                waiting.set()
                await outbox.put(b"5678")
                answered.set()

            nursery.start_soon(answer)
            await waiting.wait()
            await trio.testing.wait_all_tasks_blocked()
            assert not answered.is_set()
            assert not outbox.put_nowait(b"push")  # the push overflows the outbox
            await answered.wait()
    assert outbox.overflowed
