"""spec/client.md §7: requests per connection, connections per user, connections per node."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from node.dispatch import Dispatcher
from node.ratelimit import RateLimit, TokenBucket
from node.session import Peer, Session
from protocol import Endpoint, ErrorCode, JsonObject, Request, Role
from protocol.wire import CloseCode
from tests.node.session_client import PASSWORD, client, node_config, start_node
from tests.node.wsclient import TIMEOUT, close_code, connect, receive

# --- the token bucket, on trio's fake clock --------------------------------------------------


async def test_bucket_allows_a_burst_then_refuses(autojump_clock: trio.testing.MockClock) -> None:
    bucket = TokenBucket(RateLimit(rate=50, burst=200))
    assert all(bucket.take() for _ in range(200))
    assert not bucket.take()
    assert not bucket.take()  # a refusal spends nothing, and gains nothing either


async def test_bucket_refills_at_its_rate(autojump_clock: trio.testing.MockClock) -> None:
    bucket = TokenBucket(RateLimit(rate=50, burst=200))
    while bucket.take():
        pass
    await trio.sleep(0.1)  # 50 a second: 5 more
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    await trio.sleep(1)
    assert sum(bucket.take() for _ in range(100)) == 50


async def test_bucket_never_holds_more_than_its_burst(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bucket = TokenBucket(RateLimit(rate=50, burst=200))
    await trio.sleep(3600)
    assert bucket.tokens == 200
    assert sum(bucket.take() for _ in range(1000)) == 200


async def test_fractional_rate_gives_a_token_once_enough_time_passed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bucket = TokenBucket(RateLimit(rate=0.5, burst=1))
    assert bucket.take()
    await trio.sleep(1.9)
    assert not bucket.take()
    await trio.sleep(0.1)
    assert bucket.take()


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_rate_limit_needs_a_positive_rate_and_burst(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        RateLimit(rate, burst)


# --- the dispatcher ------------------------------------------------------------------------


def _session(endpoint: Endpoint = Endpoint.CLIENT, connection_id: int = 1) -> Session:
    role = Role.CLIENT if endpoint is Endpoint.CLIENT else Role.NODE
    return Session(Peer(connection_id, endpoint, role, "127.0.0.1:1"))


async def test_request_over_the_limit_is_rate_limited_and_runs_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls: list[int] = []

    async def handler(session: Session, params: JsonObject) -> JsonObject:
        calls.append(1)
        return {}

    dispatcher = Dispatcher({"ping": handler}, rate_limit=RateLimit(rate=1, burst=3))
    session = _session()
    answers = [await dispatcher.answer(session, Request(i, "ping", {})) for i in range(4)]
    assert answers[:3] == [
        b'{"id":0,"result":{}}',
        b'{"id":1,"result":{}}',
        b'{"id":2,"result":{}}',
    ]
    assert b'"code":"rate_limited"' in answers[3]
    assert b'"id":3' in answers[3]
    assert len(calls) == 3
    await trio.sleep(1)
    assert await dispatcher.answer(session, Request(4, "ping", {})) == b'{"id":4,"result":{}}'
    assert len(calls) == 4


async def test_each_connection_has_its_own_bucket(autojump_clock: trio.testing.MockClock) -> None:
    async def handler(session: Session, params: JsonObject) -> JsonObject:
        return {}

    dispatcher = Dispatcher({"ping": handler}, rate_limit=RateLimit(rate=1, burst=1))
    first, second = _session(connection_id=1), _session(connection_id=2)
    assert b"result" in await dispatcher.answer(first, Request(1, "ping", {}))
    assert b"rate_limited" in await dispatcher.answer(first, Request(2, "ping", {}))
    assert b"result" in await dispatcher.answer(second, Request(1, "ping", {}))


async def test_federation_requests_are_not_rate_limited(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def handler(session: Session, params: JsonObject) -> JsonObject:
        return {}

    dispatcher = Dispatcher({"ping": handler}, rate_limit=RateLimit(rate=1, burst=1))
    peer = _session(Endpoint.FEDERATION)
    for i in range(5):
        assert b"result" in await dispatcher.answer(peer, Request(i, "ping", {}))


async def test_rate_limit_comes_before_the_authentication_gate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    dispatcher = Dispatcher({}, rate_limit=RateLimit(rate=1, burst=1))
    session = _session()
    first = await dispatcher.answer(session, Request(1, "devices", {}))
    assert ErrorCode.NOT_AUTHENTICATED.value.encode() in first
    second = await dispatcher.answer(session, Request(2, "devices", {}))
    assert ErrorCode.RATE_LIMITED.value.encode() in second


# --- end to end ----------------------------------------------------------------------------


async def test_node_answers_rate_limited_past_the_burst_and_the_refused_op_has_no_effect(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    # One token per 1000 s: no refill can happen while the test runs, whatever the machine.
    config = node_config(tmp_path, requests_per_second=0.001, request_burst=3)
    port = await start_node(nursery, config)
    with trio.fail_after(TIMEOUT):
        async with client(port) as alice:
            registered = await alice.register("alice")  # 1
            assert (await alice.result("devices"))["devices"][0]["display_name"] is None  # 2
            assert await alice.result("ping") == {}  # 3
            assert await alice.error(
                "rename_device", device_id=registered["device_id"], display_name="renamed"
            ) == ("rate_limited")
            assert await alice.error("ping") == "rate_limited"
        async with client(port) as again:  # a new connection has a full bucket
            await again.result("authenticate", access_token=registered["access_token"])
            (device,) = (await again.result("devices"))["devices"]
            assert device["display_name"] is None


async def test_connection_over_the_per_user_limit_is_refused_and_closed_with_1008(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    port = await start_node(nursery, node_config(tmp_path, max_connections_per_user=2))
    with trio.fail_after(TIMEOUT):
        async with client(port) as first:
            registered = await first.register("alice")
            async with client(port) as second:
                await second.result("authenticate", access_token=registered["access_token"])
                # Re-authenticating a bound connection does not take another slot.
                await second.result("authenticate", access_token=registered["access_token"])
                async with client(port) as third:
                    code = await third.error("login", username="alice", password=PASSWORD)
                    assert code == "too_many_connections"
                    assert await close_code(third.ws) == CloseCode.POLICY_VIOLATION
                async with client(port) as fourth:
                    code = await fourth.error(
                        "authenticate", access_token=registered["access_token"]
                    )
                    assert code == "too_many_connections"
                    assert await close_code(fourth.ws) == CloseCode.POLICY_VIOLATION
                async with client(port) as bob:  # other users are not affected
                    await bob.register("bob")
            # Once a connection is gone, its slot is free again.
            async with client(port) as fifth:
                await fifth.result("authenticate", access_token=registered["access_token"])
            devices = (await first.result("devices"))["devices"]
    assert len(devices) == 1  # the refused login created no device


async def test_connection_over_the_node_limit_gets_an_error_frame_and_1008(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    port = await start_node(nursery, node_config(tmp_path, max_connections=2))
    with trio.fail_after(TIMEOUT):
        async with connect(port) as first, connect(port, "/federation") as second:
            for ws in (first, second):
                await ws.send_message('{"id":1,"op":"ping","params":{}}')
                assert await receive(ws) == {"id": 1, "result": {}}
            async with connect(port) as third:
                refusal = await receive(third)
                assert refusal["id"] is None
                assert refusal["error"]["code"] == "too_many_connections"
                assert await close_code(third) == CloseCode.POLICY_VIOLATION
        # Both closed: the node serves new connections again (as soon as it has noticed).
        while True:
            async with connect(port) as fourth:
                await fourth.send_message('{"id":2,"op":"ping","params":{}}')
                answer = await receive(fourth)
                if answer.get("id") == 2:
                    assert answer == {"id": 2, "result": {}}
                    break
            await trio.sleep(0.01)
