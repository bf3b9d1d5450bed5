"""The fault proxy between real loopback sockets: forwarding, cut, stall, delay, kills, counters.

Testing policy: 127.0.0.1 and port 0 only; every test bounded by ``fail_after``; timed
behaviour under ``autojump_clock``; conditions awaited through ``FaultProxy.wait_until`` or
an echo round trip, never a sleep.
"""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from tests.faultproxy import Direction, FaultProxy

TIMEOUT = 10
UP, DOWN = Direction.UP, Direction.DOWN


class Echo:
    """A loopback echo server that counts the connections it has seen end."""

    def __init__(self) -> None:
        self.port = 0
        self.finished = 0
        self._changed = trio.Event()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._echo, listeners)

    async def _echo(self, stream: trio.SocketStream) -> None:
        try:
            async for data in stream:
                await stream.send_all(data)
        except trio.BrokenResourceError:
            pass  # reset by the proxy: that is what the tests do to it
        finally:
            self.finished += 1
            self._changed.set()
            self._changed = trio.Event()

    async def wait_finished(self, count: int) -> None:
        while self.finished < count:
            await self._changed.wait()


@pytest.fixture
async def echo(nursery: trio.Nursery) -> Echo:
    server = Echo()
    await nursery.start(server.serve)
    return server


@pytest.fixture
async def proxy(nursery: trio.Nursery, echo: Echo) -> FaultProxy:
    fault_proxy = FaultProxy("127.0.0.1", echo.port)
    await nursery.start(fault_proxy.serve)
    return fault_proxy


async def connect(proxy: FaultProxy) -> trio.SocketStream:
    assert proxy.port is not None
    return await trio.open_tcp_stream("127.0.0.1", proxy.port)


async def receive_exactly(stream: trio.SocketStream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        assert chunk, f"EOF after {data!r}"
        data += chunk
    return data


async def round_trip(stream: trio.SocketStream, data: bytes) -> bytes:
    await stream.send_all(data)
    return await receive_exactly(stream, len(data))


async def is_alive(stream: trio.SocketStream) -> bool:
    """Whether a round trip still works; a reset connection answers at once, never hangs."""
    try:
        await stream.send_all(b"?")
        return await stream.receive_some(1) == b"?"
    except trio.BrokenResourceError:
        return False


async def test_bytes_pass_both_ways_and_are_counted(proxy: FaultProxy, echo: Echo) -> None:
    with trio.fail_after(TIMEOUT):
        async with await connect(proxy) as client:
            assert await round_trip(client, b"hello") == b"hello"
            assert await round_trip(client, b"x" * 200_000) == b"x" * 200_000
            assert proxy.connections_accepted == 1
            assert proxy.open_connections == 1
            both_ways = {UP: 200_005, DOWN: 200_005}
            await proxy.wait_until(lambda: proxy.bytes_forwarded == both_ways)
            assert proxy.bytes_read == both_ways
            await client.send_eof()  # the echo server closes in turn: EOF comes back down
            assert await client.receive_some() == b""
        await proxy.wait_until(lambda: proxy.open_connections == 0)
        await echo.wait_finished(1)
        assert proxy.connections_killed == proxy.connections_refused == 0


async def test_cut_resets_open_connections_and_refuses_new_ones_until_heal(
    proxy: FaultProxy, echo: Echo
) -> None:
    with trio.fail_after(TIMEOUT):
        first, second = await connect(proxy), await connect(proxy)
        async with first, second:
            for client in (first, second):
                assert await round_trip(client, b"ping") == b"ping"
            proxy.cut()
            assert proxy.open_connections == 0
            assert not await is_alive(first)
            assert not await is_alive(second)
            await echo.wait_finished(2)  # the target's side was closed too
        assert proxy.connections_killed == 2

        async with await connect(proxy) as refused:
            assert not await is_alive(refused)
        assert proxy.connections_refused == 1
        assert proxy.connections_accepted == 2

        proxy.heal()
        async with await connect(proxy) as healed:
            assert await round_trip(healed, b"back") == b"back"
        assert proxy.connections_accepted == 3


async def test_stall_holds_bytes_and_heal_delivers_them_in_order(proxy: FaultProxy) -> None:
    with trio.fail_after(TIMEOUT):
        async with await connect(proxy) as client:
            assert await round_trip(client, b"warm") == b"warm"
            await proxy.wait_until(lambda: proxy.bytes_forwarded == {UP: 4, DOWN: 4})
            proxy.stall()
            for part in (b"one", b"two", b"three"):
                await client.send_all(part)
            await proxy.wait_until(lambda: proxy.bytes_read[UP] == 4 + 11)
            assert proxy.bytes_forwarded == {UP: 4, DOWN: 4}
            assert proxy.open_connections == 1
            proxy.heal()
            assert await receive_exactly(client, 11) == b"onetwothree"
            await proxy.wait_until(lambda: proxy.bytes_forwarded == {UP: 15, DOWN: 15})


async def test_cut_while_stalled_drops_the_held_bytes_with_the_connection(
    proxy: FaultProxy, echo: Echo
) -> None:
    with trio.fail_after(TIMEOUT):
        async with await connect(proxy) as client:
            assert await round_trip(client, b"warm") == b"warm"
            await proxy.wait_until(lambda: proxy.bytes_forwarded == {UP: 4, DOWN: 4})
            proxy.stall()
            await client.send_all(b"lost")
            await proxy.wait_until(lambda: proxy.bytes_read[UP] == 8)
            proxy.cut()
            assert not await is_alive(client)
        await echo.wait_finished(1)
        assert proxy.bytes_forwarded == {UP: 4, DOWN: 4}


async def test_delay_holds_each_chunk_for_the_configured_time_each_way(
    proxy: FaultProxy, autojump_clock: trio.testing.MockClock
) -> None:
    # Real sockets are in flight between tasks: jump only after the loop idles a while.
    autojump_clock.autojump_threshold = 0.05
    with trio.fail_after(60):
        async with await connect(proxy) as client:
            assert await round_trip(client, b"warm") == b"warm"
            proxy.set_delay(3.0)
            start = trio.current_time()
            assert await round_trip(client, b"slow") == b"slow"
            elapsed = trio.current_time() - start
            assert 6.0 <= elapsed < 7.0


async def test_lowering_the_delay_releases_held_bytes_without_reordering(
    proxy: FaultProxy, autojump_clock: trio.testing.MockClock
) -> None:
    autojump_clock.autojump_threshold = 0.05
    with trio.fail_after(60):
        async with await connect(proxy) as client:
            proxy.set_delay(30.0)
            start = trio.current_time()
            await client.send_all(b"first")
            await proxy.wait_until(lambda: proxy.bytes_read[UP] == 5)
            proxy.set_delay(1.0)
            await client.send_all(b"second")
            assert await receive_exactly(client, 11) == b"firstsecond"
            assert trio.current_time() - start < 30.0


def test_a_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        FaultProxy("127.0.0.1", 1).set_delay(-1.0)


async def test_kill_one_resets_exactly_one_connection(proxy: FaultProxy, echo: Echo) -> None:
    with trio.fail_after(TIMEOUT):
        clients = [await connect(proxy) for _ in range(3)]
        try:
            for client in clients:
                assert await round_trip(client, b"hi") == b"hi"
            assert proxy.kill_one(random.Random(7))
            assert proxy.open_connections == 2
            alive = [await is_alive(client) for client in clients]
            assert alive.count(False) == 1
            await echo.wait_finished(1)
            assert proxy.kill_one()  # without a random source: the oldest left
            assert proxy.open_connections == 1
            assert proxy.connections_killed == 2
        finally:
            for client in clients:
                await client.aclose()
        await proxy.wait_until(lambda: proxy.open_connections == 0)
        assert not proxy.kill_one()


async def test_an_unreachable_target_gets_the_connection_refused(nursery: trio.Nursery) -> None:
    with trio.fail_after(TIMEOUT), trio.socket.socket() as bound:
        await bound.bind(("127.0.0.1", 0))  # bound but not listening: connects are refused
        proxy = FaultProxy("127.0.0.1", bound.getsockname()[1])
        await nursery.start(proxy.serve)
        async with await connect(proxy) as client:
            assert not await is_alive(client)
        assert proxy.connections_refused == 1
        assert proxy.connections_accepted == 0


async def test_cancelling_serve_closes_everything_without_errors(echo: Echo) -> None:
    with trio.fail_after(TIMEOUT):
        proxy = FaultProxy("127.0.0.1", echo.port)
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.serve)
            client = await connect(proxy)
            assert await round_trip(client, b"warm") == b"warm"
            proxy.stall()  # leave a writer parked with bytes held when the cancel lands
            await client.send_all(b"held")
            await proxy.wait_until(lambda: proxy.bytes_read[UP] == 8)
            nursery.cancel_scope.cancel()
        async with client:
            assert not await is_alive(client)
        await echo.wait_finished(1)
