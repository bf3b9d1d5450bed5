"""End-to-end encryption in a session against a real node (spec/e2ee.md §4.7): what a
device learns from its stream is in its store once acknowledged, so a device that comes
back reads with the keys it held; and a session without encryption sees no key items."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import trio

import client
from client.crypto_rooms import MEGOLM_ALGORITHM
from tests.client.helpers import (
    PASSWORD,
    TIMEOUT,
    NodeRunner,
    seeded_backoff,
    signed_up,
    updates_until,
)


def reads(body: str) -> Callable[[client.Update], bool]:
    def done(update: client.Update) -> bool:
        if isinstance(update, client.EventItem | client.Decrypted):
            return update.event.content.get("body") == body
        return False

    return done


async def test_a_device_that_comes_back_reads_with_the_keys_it_acknowledged(
    node: NodeRunner, tmp_path: Path
) -> None:
    bob_store = tmp_path / "bob.json"
    with trio.fail_after(TIMEOUT):
        async with signed_up(node.url, "alice", e2ee=True) as alice:
            alice_stream = alice.sync()
            async with signed_up(node.url, "bob", e2ee=True, store=bob_store) as bob:
                bob_stream = bob.sync()
                room_id = await alice.create_room(
                    invite=["@bob:localhost"], encryption=MEGOLM_ALGORITHM
                )
                await updates_until(
                    bob_stream,
                    lambda u: isinstance(u, client.EventItem) and u.event.membership == "invite",
                )
                await bob.join(room_id)
                await updates_until(
                    alice_stream,
                    lambda u: (
                        isinstance(u, client.EventItem)
                        and u.event.state_key == "@bob:localhost"
                        and u.event.membership == "join"
                    ),
                )
                await alice.send(room_id, "first")
                await updates_until(bob_stream, reads("first"))
                bob_stream.mark_processed()
                await bob.ack()

            # Bob's device is away; alice's session is the same, so no new key is sent.
            await alice.send(room_id, "second")
            url = node.url
            async with client.connect(
                url, store=bob_store, e2ee=True, backoff=seeded_backoff()
            ) as again:
                assert again.logged_in
                seen = await updates_until(again.sync(), reads("second"))
                [shown] = [u for u in seen if isinstance(u, client.EventItem)][-1:]
                assert shown.encryption is not None
                assert shown.encryption.decrypted
    assert "second" not in bob_store.read_text()
    assert (tmp_path / "bob.json.key").stat().st_mode & 0o077 == 0


async def test_a_session_without_encryption_is_not_shown_key_items(node: NodeRunner) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            signed_up(node.url, "carol", e2ee=True) as carol,
            signed_up(node.url, "dave") as dave,
        ):
            room_id = await dave.create_room(invite=["@carol:localhost"])
            stream = dave.sync()
            await carol.join(room_id)
            async with client.connect(node.url, e2ee=True) as phone:
                await phone.login("carol", PASSWORD)  # publishes keys: a device_list_update
            await dave.send(room_id, "plain")
            seen = await updates_until(
                stream,
                lambda u: isinstance(u, client.EventItem) and u.event.body == "plain",
            )
            assert not [u for u in seen if isinstance(u, client.DeviceListUpdate)]
