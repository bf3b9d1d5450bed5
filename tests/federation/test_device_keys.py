"""Device keys across two real nodes (spec/client.md §9, spec/federation.md §10): a device
queries and claims keys of another server's users through its own node, and device-list
changes reach the other server's contacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
import trio.testing

from tests.federation.cluster import Cluster, shared_room
from tests.node.chat_client import is_membership, items_until, user
from tests.node.key_material import device_keys, fallback_key, new_account, one_time_keys
from tests.node.session_client import Client

TIMEOUT = 20
ALICE = "@alice:a.test"


async def _device_id(connection: Client) -> str:
    [current] = [d for d in (await connection.result("devices"))["devices"] if d["current"]]
    device_id: str = current["device_id"]
    return device_id


def _device_list_update(user_id: str) -> Any:
    return lambda item: item["kind"] == "device_list_update" and item["user_id"] == user_id


async def test_bob_queries_and_claims_alices_keys_through_his_node(cluster: Cluster) -> None:
    with trio.fail_after(TIMEOUT):
        async with user(cluster["a"].port, "alice") as alice, user(cluster["b"].port, "bob") as bob:
            dev = await _device_id(alice)
            account = new_account()
            uploaded = one_time_keys(account, ALICE, dev, 2)
            fallback = fallback_key(account, ALICE, dev)
            await alice.result(
                "upload_keys",
                device_keys=device_keys(account, ALICE, dev),
                one_time_keys=uploaded,
                fallback_key=fallback,
            )
            answer = await bob.result("query_keys", user_ids=[ALICE, "@bob:b.test"])
            assert answer == {"devices": {ALICE: {dev: device_keys(account, ALICE, dev)}},
                              "failures": {}}  # fmt: skip
            wanted = {ALICE: {dev: "signed_curve25519", "NOSUCH": "signed_curve25519"}}
            claims = [
                (await bob.result("claim_keys", one_time_keys=wanted))["one_time_keys"][ALICE]
                for _ in range(4)
            ]
            assert [list(c) for c in claims] == [[dev]] * 4
            handed = [c[dev] for c in claims]
            assert sorted(k for c in handed[:2] for k in c) == sorted(uploaded)  # once each
            assert handed[2:] == [fallback, fallback]  # then the fallback, kept
            far = await bob.result(
                "claim_keys", one_time_keys={"@carol:c.invalid": {"X": "signed_curve25519"}}
            )
            assert far == {"one_time_keys": {}, "failures": {"c.invalid": "unreachable"}}


async def test_a_new_device_of_alice_reaches_bob_as_a_device_list_update(
    cluster: Cluster,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with user(cluster["a"].port, "alice") as alice, user(cluster["b"].port, "bob") as bob:
            await shared_room(alice, bob)
            async with user(cluster["a"].port, "alice", register=False) as laptop:
                dev = await _device_id(laptop)
                keys = device_keys(new_account(), ALICE, dev)
                await laptop.result("upload_keys", device_keys=keys)
                await items_until(bob, _device_list_update(ALICE))
                answer = await bob.result("query_keys", user_ids=[ALICE])
                assert answer["devices"] == {ALICE: {dev: keys}}
                await alice.result("revoke_device", device_id=dev)
            await items_until(bob, _device_list_update(ALICE))
            assert (await bob.result("query_keys", user_ids=[ALICE]))["devices"] == {}


async def test_a_device_added_while_bobs_node_is_down_reaches_bob_when_it_returns(
    nursery: trio.Nursery, tmp_path: Path, network_clock: trio.testing.MockClock
) -> None:
    cluster = Cluster(nursery, tmp_path)
    await cluster.start("a", "b")
    with trio.fail_after(600):  # the test's clock: retry waits pass at once
        async with user(cluster["a"].port, "alice") as alice:
            async with user(cluster["b"].port, "bob") as bob:
                await alice.result("sync")
                await bob.result("sync")
                room_id = (await alice.result("create_room", invite=["@bob:b.test"]))["room_id"]
                await items_until(bob, is_membership("@bob:b.test", "invite"), limit_s=600)
                await bob.result("join", room_id=room_id)
                await items_until(alice, is_membership("@bob:b.test", "join"), limit_s=600)
                bob_device = await _device_id(bob)
            await cluster.stop("b")
            async with user(cluster["a"].port, "alice", register=False) as laptop:
                dev = await _device_id(laptop)
                await laptop.result(
                    "upload_keys", device_keys=device_keys(new_account(), ALICE, dev)
                )
            await cluster.run("b")
            async with user(cluster["b"].port, "bob", register=False, device=bob_device) as bob:
                await bob.result("sync")
                await items_until(bob, _device_list_update(ALICE), limit_s=600)
