"""Black-box checks of spec/client.md §9 (device keys) against a running node: uploads
checked, queries, claims that hand each one-time key out once, low stock and device-list
changes on the stream. Only JSON over WebSockets, with keys made by an Olm account."""

from __future__ import annotations

from typing import Any

import trio

from tests.conformance.client_session import Session, session
from tests.conformance.keys import DeviceKeys

TIMEOUT = 10


def _keys_of(who: Session) -> DeviceKeys:
    assert who.user_id is not None
    assert who.device_id is not None
    return DeviceKeys(who.user_id, who.device_id)


async def test_uploads_are_checked_and_identity_keys_never_change(
    node_url: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as alice:
            await alice.register(registration_token, "keys")
            mine = _keys_of(alice)
            assert await alice.error("upload_keys", one_time_keys=mine.one_time(1)) == "forbidden"
            identity = mine.identity()
            tampered = {**identity, "algorithms": ["m.megolm.v1.aes-sha2"]}
            assert await alice.error("upload_keys", device_keys=tampered) == "bad_signature"
            unsigned = {k: v for k, v in identity.items() if k != "signatures"}
            assert await alice.error("upload_keys", device_keys=unsigned) == "missing_signature"
            other = DeviceKeys(mine.user_id, "SOMEONEELSE")
            assert await alice.error("upload_keys", device_keys=other.identity()) == "forbidden"
            counts = await alice.result(
                "upload_keys",
                device_keys=identity,
                one_time_keys=mine.one_time(3),
                fallback_key=mine.fallback(),
            )
            assert counts == {"one_time_key_counts": {"signed_curve25519": 3}}
            changed = DeviceKeys(mine.user_id, mine.device_id).identity()
            assert await alice.error("upload_keys", device_keys=changed) == "forbidden"
            same = await alice.result("upload_keys", device_keys=identity)
            assert same == counts


async def test_keys_are_queried_and_each_one_time_key_is_claimed_once(
    node_url: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as alice, session(node_url) as bob:
            await alice.register(registration_token, "keys")
            await bob.register(registration_token, "keys")
            mine = _keys_of(alice)
            uploaded, fallback = mine.one_time(2), mine.fallback()
            await alice.result(
                "upload_keys",
                device_keys=mine.identity(),
                one_time_keys=uploaded,
                fallback_key=fallback,
            )
            me, dev = mine.user_id, mine.device_id
            answer = await bob.result("query_keys", user_ids=[me])
            assert answer["devices"] == {me: {dev: mine.identity()}}
            assert answer["failures"] == {}
            handed: list[dict[str, Any]] = []
            for _ in range(4):
                claimed = await bob.result(
                    "claim_keys", one_time_keys={me: {dev: "signed_curve25519"}}
                )
                handed.append(claimed["one_time_keys"][me][dev])
            assert sorted(k for h in handed[:2] for k in h) == sorted(uploaded)
            assert handed[2:] == [fallback, fallback]
            none = await bob.result(
                "claim_keys", one_time_keys={me: {"NOSUCHDEVICE": "signed_curve25519"}}
            )
            assert none["one_time_keys"] == {}


async def test_a_device_low_on_keys_gets_its_counts(node_url: str, registration_token: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as alice, session(node_url) as bob:
            await alice.register(registration_token, "keys")
            await bob.register(registration_token, "keys")
            mine = _keys_of(alice)
            await alice.result(
                "upload_keys", device_keys=mine.identity(), one_time_keys=mine.one_time(10)
            )
            await alice.result("sync")
            await alice.batches()
            wanted = {mine.user_id: {mine.device_id: "signed_curve25519"}}
            await bob.result("claim_keys", one_time_keys=wanted)
            items = await alice.items_until(lambda item: item["kind"] == "key_counts")
            assert items[-1]["one_time_key_counts"] == {"signed_curve25519": 9}


async def test_a_contacts_new_device_is_a_device_list_update(
    node_url: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as alice, session(node_url) as bob:
            await alice.register(registration_token, "keys")
            await bob.register(registration_token, "keys")
            room_id = (await alice.result("create_room", public=True))["room_id"]
            await bob.result("join", room_id=room_id)
            await bob.result("sync")
            await bob.batches()
            mine = _keys_of(alice)
            await alice.result("upload_keys", device_keys=mine.identity())
            await bob.items_until(
                lambda item: (
                    item["kind"] == "device_list_update" and item["user_id"] == mine.user_id
                )
            )
