"""Device keys on one node (spec/client.md §9): uploads checked and kept, queries, claims
that hand each one-time key out once, low stock, and device-list changes on the stream."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from node.app import DATABASE_FILE_NAME
from tests.node.chat_client import is_message, items_until, say, user
from tests.node.key_material import (
    device_keys,
    fallback_key,
    new_account,
    one_time_keys,
)
from tests.node.session_client import Client, client, node_config, open_accounts, start_node
from tests.node.wsclient import TIMEOUT


@pytest.fixture
async def port(nursery: trio.Nursery, tmp_path: Path) -> int:
    return await start_node(nursery, node_config(tmp_path, session_check_interval_s=0.05))


def _kind(kind: str, **fields: Any) -> Any:
    return lambda item: item["kind"] == kind and all(item[k] == v for k, v in fields.items())


async def test_published_keys_are_counted_and_queried(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with user(port, "bob") as bob, _registered(port, "alice") as (alice, me, dev):
            account = new_account()
            result = await alice.result(
                "upload_keys",
                device_keys=device_keys(account, me, dev),
                one_time_keys=one_time_keys(account, me, dev, 5),
                fallback_key=fallback_key(account, me, dev),
            )
            assert result == {"one_time_key_counts": {"signed_curve25519": 5}}
            more = await alice.result(
                "upload_keys", one_time_keys=one_time_keys(account, me, dev, 2)
            )
            assert more == {"one_time_key_counts": {"signed_curve25519": 7}}
            answer = await bob.result(
                "query_keys", user_ids=[me, "@bob:localhost", "@nobody:localhost"]
            )
            assert answer == {
                "devices": {me: {dev: device_keys(account, me, dev)}},
                "failures": {},
            }
            far = await bob.result("query_keys", user_ids=["@carol:nowhere.invalid"])
            assert far == {"devices": {}, "failures": {"nowhere.invalid": "unreachable"}}


async def test_uploads_are_checked_and_identity_keys_never_change(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with _registered(port, "alice") as (alice, me, dev):
            account, other = new_account(), new_account()
            otk = one_time_keys(account, me, dev, 1)
            assert await alice.error("upload_keys", one_time_keys=otk) == "forbidden"
            theirs = device_keys(account, "@bob:localhost", dev)
            assert await alice.error("upload_keys", device_keys=theirs) == "forbidden"
            keys = device_keys(account, me, dev)
            tampered = {**keys, "algorithms": ["m.megolm.v1.aes-sha2"]}
            assert await alice.error("upload_keys", device_keys=tampered) == "bad_signature"
            unsigned = {k: v for k, v in keys.items() if k != "signatures"}
            assert await alice.error("upload_keys", device_keys=unsigned) == "missing_signature"
            broken = {**keys, "keys": {**keys["keys"], f"ed25519:{dev}": "AAAA"}}
            assert await alice.error("upload_keys", device_keys=broken) == "bad_key"
            assert await alice.error("upload_keys", device_keys={"user_id": me}) == "bad_params"
            await alice.result("upload_keys", device_keys=keys)
            await alice.result("upload_keys", device_keys=keys)  # the same again: nothing
            changed = device_keys(other, me, dev)
            assert await alice.error("upload_keys", device_keys=changed) == "forbidden"
            foreign = one_time_keys(other, me, dev, 1)
            assert await alice.error("upload_keys", one_time_keys=foreign) == "bad_signature"
            counts = await alice.result("upload_keys", one_time_keys=otk)
            assert counts == {"one_time_key_counts": {"signed_curve25519": 1}}


async def test_each_one_time_key_is_handed_out_once_then_the_fallback(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with _registered(port, "alice") as (alice, me, dev):
            account = new_account()
            uploaded = one_time_keys(account, me, dev, 6)
            fallback = fallback_key(account, me, dev)
            await alice.result(
                "upload_keys",
                device_keys=device_keys(account, me, dev),
                one_time_keys=uploaded,
                fallback_key=fallback,
            )
            claimed: list[dict[str, Any]] = []

            async def claimer(name: str) -> None:
                async with user(port, name) as claiming:
                    for _ in range(4):
                        answer = await claiming.result(
                            "claim_keys",
                            one_time_keys={me: {dev: "signed_curve25519", "NODEVICE": "x"}},
                        )
                        claimed.append(answer["one_time_keys"][me][dev])

            async with trio.open_nursery() as nursery:  # three devices claim at once
                for name in ("bob", "carol", "dave"):
                    nursery.start_soon(claimer, name)
            one_time = [c for c in claimed if c != fallback]
            assert len(claimed) == 12
            assert sorted(k for c in one_time for k in c) == sorted(uploaded)
            assert all(c == fallback for c in claimed if c not in one_time)
            # A retried upload cannot publish a claimed key again.
            again = await alice.result("upload_keys", one_time_keys=uploaded)
            assert again == {"one_time_key_counts": {"signed_curve25519": 0}}
            nothing = await alice.result(
                "claim_keys", one_time_keys={"@nobody:localhost": {"X": "signed_curve25519"}}
            )
            assert nothing == {"one_time_keys": {}, "failures": {}}


async def test_a_device_low_on_keys_is_told_once_it_syncs(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with _registered(port, "alice") as (alice, me, dev), user(port, "bob") as bob:
            account = new_account()
            await alice.result(
                "upload_keys",
                device_keys=device_keys(account, me, dev),
                one_time_keys=one_time_keys(account, me, dev, 12),
            )
            for _ in range(4):  # 12 → 8: told at 9 and at 8, and only the newest is kept
                await bob.result("claim_keys", one_time_keys={me: {dev: "signed_curve25519"}})
            await alice.result("sync")
            items = await items_until(alice, _kind("key_counts"))
            assert [i for i in items if i["kind"] == "key_counts"] == [
                {
                    "position": items[-1]["position"],
                    "kind": "key_counts",
                    "one_time_key_counts": {"signed_curve25519": 8},
                }
            ]
            await bob.result("claim_keys", one_time_keys={me: {dev: "signed_curve25519"}})
            live = await items_until(alice, _kind("key_counts"))
            assert live[-1]["one_time_key_counts"] == {"signed_curve25519": 7}
            await bob.result("sync")  # bob's stream has none of alice's counts
            assert not [i for i in await _caught_up(bob) if i["kind"] == "key_counts"]


async def test_contacts_hear_of_new_and_removed_devices(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            _registered(port, "alice") as (alice, me, _first),
            user(port, "bob") as bob,
            user(port, "carol") as carol,
        ):
            room_id = (await alice.result("create_room", public=True))["room_id"]
            await bob.result("join", room_id=room_id)
            for connection in (alice, bob, carol):
                await connection.result("sync")
                await _caught_up(connection)
            async with user(port, "alice", register=False) as second:
                second_id = [d for d in (await second.result("devices"))["devices"] if d["current"]]
                dev = second_id[0]["device_id"]
                await second.result("upload_keys", device_keys=device_keys(new_account(), me, dev))
                await items_until(bob, _kind("device_list_update", user_id=me))
                await items_until(alice, _kind("device_list_update", user_id=me))
                await alice.result("revoke_device", device_id=dev)
            await items_until(bob, _kind("device_list_update", user_id=me))
            answer = await bob.result("query_keys", user_ids=[me])
            assert answer == {"devices": {}, "failures": {}}
            # A device without published keys comes and goes unannounced; carol saw nothing.
            async with user(port, "alice", register=False):
                pass
            await carol.result("ping")
            assert not [
                i
                for n in carol.notices
                if n["op"] == "sync_batch"
                for i in n["params"]["items"]
                if i["kind"] == "device_list_update"
            ]


async def _caught_up(connection: Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        notice = await connection.notice()
        if notice["op"] == "sync_batch":
            items += notice["params"]["items"]
            if notice["params"]["caught_up"]:
                return items


@asynccontextmanager
async def _registered(port: int, name: str) -> AsyncIterator[tuple[Client, str, str]]:
    """A connection of a freshly registered user: ``(client, user id, device id)``."""
    async with client(port) as connection:
        result = await connection.register(name)
        yield connection, result["user_id"], result["device_id"]


async def test_a_device_removed_by_another_process_is_announced_and_loses_its_keys(
    tmp_path: Path,
) -> None:
    config = node_config(tmp_path, session_check_interval_s=0.05)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, config)
            async with _registered(port, "alice") as (alice, me, dev), user(port, "bob") as bob:
                room_id = (await alice.result("create_room", public=True))["room_id"]
                await bob.result("join", room_id=room_id)
                account = new_account()
                await alice.result(
                    "upload_keys",
                    device_keys=device_keys(account, me, dev),
                    one_time_keys=one_time_keys(account, me, dev, 3),
                )
                await bob.result("sync")
                await items_until(bob, _kind("device_list_update", user_id=me))
                async with open_accounts(config) as accounts:  # as `kith user` does
                    await accounts.remove_device(me, dev)
                await items_until(bob, _kind("device_list_update", user_id=me))
                assert (await bob.result("query_keys", user_ids=[me]))["devices"] == {}
                claim = await bob.result(
                    "claim_keys", one_time_keys={me: {dev: "signed_curve25519"}}
                )
                assert claim["one_time_keys"] == {}
            nursery.cancel_scope.cancel()


async def test_device_list_updates_wait_for_a_device_across_restarts(tmp_path: Path) -> None:
    config = node_config(tmp_path)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, config)
            async with _registered(port, "alice") as (alice, me, dev), user(port, "bob") as bob:
                room_id = (await alice.result("create_room", public=True))["room_id"]
                await bob.result("join", room_id=room_id)
                account = new_account()
                await alice.result("upload_keys", device_keys=device_keys(account, me, dev))
            nursery.cancel_scope.cancel()
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, config)
            async with (
                user(port, "bob", register=False) as bob,
                user(port, "alice", register=False, device=dev) as alice,
            ):
                await bob.result("sync")
                items = await items_until(bob, _kind("device_list_update", user_id=me))
                update = items[-1]["position"]
                await say(alice, room_id, "after the restart")
                later = await items_until(bob, is_message("after the restart"))
                assert later[-1]["position"] > update  # positions go on after user items
            nursery.cancel_scope.cancel()


async def test_device_list_items_are_dropped_once_every_device_of_the_user_has_them(
    tmp_path: Path,
) -> None:
    config = node_config(tmp_path)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, config)
            async with _registered(port, "alice") as (alice, me, dev), user(port, "bob") as bob:
                room_id = (await alice.result("create_room", public=True))["room_id"]
                await bob.result("join", room_id=room_id)
                async with user(port, "bob", register=False) as bobs_phone:
                    await alice.result(
                        "upload_keys", device_keys=device_keys(new_account(), me, dev)
                    )
                    for device in (bob, bobs_phone):
                        await device.result("sync")
                        items = await items_until(device, _kind("device_list_update", user_id=me))
                        position = items[-1]["position"]
                        await device.result("ack", position=position)
                        assert await _kept_items(config.data_dir, "@bob:localhost") == (
                            [] if device is bobs_phone else [position]
                        )
            nursery.cancel_scope.cancel()


async def _kept_items(data_dir: Path, user_id: str) -> list[int]:
    def read() -> list[int]:
        conn = sqlite3.connect(data_dir / DATABASE_FILE_NAME)
        try:
            rows = conn.execute(
                "SELECT position FROM user_items WHERE user_id = ? ORDER BY position", (user_id,)
            )
            return [row[0] for row in rows]
        finally:
            conn.close()

    return await trio.to_thread.run_sync(read)


async def test_a_deactivated_users_keys_are_neither_listed_nor_handed_out(tmp_path: Path) -> None:
    config = node_config(tmp_path)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await start_node(nursery, config)
            async with _registered(port, "alice") as (alice, me, dev), user(port, "bob") as bob:
                account = new_account()
                await alice.result(
                    "upload_keys",
                    device_keys=device_keys(account, me, dev),
                    one_time_keys=one_time_keys(account, me, dev, 2),
                )
                async with open_accounts(config) as accounts:
                    await accounts.deactivate("alice")
                assert (await bob.result("query_keys", user_ids=[me]))["devices"] == {}
                claim = await bob.result(
                    "claim_keys", one_time_keys={me: {dev: "signed_curve25519"}}
                )
                assert claim["one_time_keys"] == {}
            nursery.cancel_scope.cancel()
