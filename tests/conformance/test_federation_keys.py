"""Black-box checks of spec/federation.md §10 — ``query_keys`` and ``claim_keys`` between
nodes — against a running node, by a fake peer (``tests.conformance.fake_peer``).

A user of the node publishes keys through the client protocol (client.md §9), so these
checks need ``--registration-token``. The peer then asks on an authenticated link: the node
answers for its own users only, and hands each one-time key out once, then the fallback key.
"""

from __future__ import annotations

from typing import Any

import trio

from tests.conformance.client_session import Session, session
from tests.conformance.fake_peer import TIMEOUT, assert_serving, authenticated
from tests.conformance.keys import DeviceKeys


async def _publishing(
    owner: Session, token: str, one_time: int
) -> tuple[DeviceKeys, dict[str, Any]]:
    """Register a user of the node whose device publishes keys; its keys, fallback key."""
    await owner.register(token, "fedkeys")
    assert owner.user_id is not None
    assert owner.device_id is not None
    keys = DeviceKeys(owner.user_id, owner.device_id)
    fallback = keys.fallback()
    await owner.result(
        "upload_keys",
        device_keys=keys.identity(),
        one_time_keys=keys.one_time(one_time),
        fallback_key=fallback,
    )
    return keys, fallback


async def test_a_peer_queries_the_nodes_users_keys_and_no_one_elses(
    node_url: str, server_name: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as owner, authenticated(node_url, server_name) as peer:
            keys, _ = await _publishing(owner, registration_token, 1)
            answer = await peer.result(
                "query_keys", user_ids=[keys.user_id, peer.user(), "@nobody:elsewhere.invalid"]
            )
            assert answer == {"devices": {keys.user_id: {keys.device_id: keys.identity()}}}
            assert await peer.error("query_keys", user_ids=["not a user"]) == "bad_params"
        await assert_serving(node_url, server_name)


async def test_a_peer_claims_each_one_time_key_once_then_the_fallback(
    node_url: str, server_name: str, registration_token: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with session(node_url) as owner, authenticated(node_url, server_name) as peer:
            keys, fallback = await _publishing(owner, registration_token, 2)
            user_id, device_id = keys.user_id, keys.device_id
            wanted = {user_id: {device_id: "signed_curve25519"}}
            handed = []
            for _ in range(3):
                answer = await peer.result("claim_keys", one_time_keys=wanted)
                handed.append(answer["one_time_keys"][user_id][device_id])
            [one, two, last] = handed
            assert len({*one, *two}) == 2  # two keys, each handed out once
            assert last == fallback
            elsewhere = {peer.user(): {"DEVICE": "signed_curve25519"}}
            assert await peer.result("claim_keys", one_time_keys=elsewhere) == {"one_time_keys": {}}
        await assert_serving(node_url, server_name)
