"""End-to-end encrypted chat through two real nodes with the client library (spec/e2ee.md
§4): alice@a and bob@b read each other's messages, a device added later reads what is
sent after it appeared and nothing before, a member who left cannot read what follows,
and no node stores a message's text."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

import client
from client.crypto_rooms import MEGOLM_ALGORITHM, decrypt_event
from tests.client.helpers import PASSWORD, seeded_backoff, updates_until
from tests.federation.cluster import Cluster

TIMEOUT = 30
ALICE, BOB, CAROL = "@alice:a.test", "@bob:b.test", "@carol:a.test"


@asynccontextmanager
async def device(
    cluster: Cluster, letter: str, name: str, *, register: bool = True, proxied: bool = False
) -> AsyncIterator[client.Session]:
    """A session with end-to-end encryption on, registered (or logged in) as ``name``;
    ``proxied`` goes through the node's proxy, which follows the node across restarts."""
    member = cluster[letter]
    url = f"ws://127.0.0.1:{member.proxy.port if proxied else member.port}"
    backoff = seeded_backoff(initial=0.05, maximum=0.2)
    async with client.connect(url, e2ee=True, backoff=backoff) as session:
        if register:
            await session.register(name, PASSWORD)
        else:
            await session.login(name, PASSWORD)
        yield session


def text(update: client.Update) -> str | None:
    """The text of a message an update shows decrypted (an event, or one opened later)."""
    if isinstance(update, client.EventItem | client.Decrypted) and update.event.type == "message":
        body = update.event.content.get("body")
        return body if isinstance(body, str) else None
    return None


def reads(body: str) -> Callable[[client.Update], bool]:
    return lambda update: text(update) == body


def membership(user_id: str, value: str) -> Callable[[client.Update], bool]:
    return lambda update: (
        isinstance(update, client.EventItem)
        and update.event.state_key == user_id
        and update.event.membership == value
    )


async def joined_room(
    creator: client.Session,
    creator_stream: client.UpdateStream,
    others: list[tuple[client.Session, client.UpdateStream]],
) -> str:
    """An encrypted room of ``creator`` that every one of ``others`` has joined."""
    room_id = await creator.create_room(
        invite=[s.user_id for s, _ in others if s.user_id], encryption=MEGOLM_ALGORITHM
    )
    for session, stream in others:
        assert session.user_id is not None
        await updates_until(stream, membership(session.user_id, "invite"))
        await session.join(room_id)
        await updates_until(creator_stream, membership(session.user_id, "join"))
    return room_id


async def raw_event(session: client.Session, room_id: str, event_id: str) -> client.Event:
    """An event as the node holds it (encrypted), from ``history``."""
    page = await session.history(room_id, decrypt=False)
    [event] = [e for e in page.events if e.event_id == event_id]
    return event


def no_node_stores(cluster: Cluster, *texts: str) -> None:
    for letter in ("a", "b"):
        for path in cluster[letter].config.data_dir.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for secret in texts:
                    assert secret.encode() not in data, (path, secret)


async def test_alice_and_bob_read_each_others_encrypted_messages(cluster: Cluster) -> None:
    hello, reply = "hello bob, the code is 0451", "hi alice, noted: 0451"
    with trio.fail_after(TIMEOUT):
        async with device(cluster, "a", "alice") as alice, device(cluster, "b", "bob") as bob:
            alice_stream, bob_stream = alice.sync(), bob.sync()
            room_id = await joined_room(alice, alice_stream, [(bob, bob_stream)])

            await alice.send(room_id, hello)
            seen = await updates_until(bob_stream, reads(hello))
            [shown] = [u for u in seen if text(u) == hello]
            assert isinstance(shown, client.EventItem | client.Decrypted)
            assert shown.event.sender == ALICE
            assert shown.encryption is not None
            assert shown.encryption.decrypted

            await bob.send(room_id, reply)
            mine = await updates_until(alice_stream, reads(reply))
            assert hello in [text(u) for u in mine]  # alice reads her own message too
            stored = await bob.history(room_id, decrypt=False)
            assert "encrypted" in {e.type for e in stored.events}
            assert all(e.content.get("body") is None for e in stored.events)
            history = await bob.history(room_id)  # decrypted with the keys bob holds
            assert [e.content["body"] for e in history.events if e.type == "message"] == [
                hello,
                reply,
            ]
    no_node_stores(cluster, hello, reply)


async def test_a_device_added_later_reads_new_messages_not_old_ones(cluster: Cluster) -> None:
    before, after = "sent before the new device", "sent after the new device"
    with trio.fail_after(TIMEOUT):
        async with device(cluster, "a", "alice") as alice, device(cluster, "b", "bob") as bob:
            alice_stream, bob_stream = alice.sync(), bob.sync()
            room_id = await joined_room(alice, alice_stream, [(bob, bob_stream)])
            before_id = await alice.send(room_id, before)
            await updates_until(bob_stream, reads(before))

            async with device(cluster, "b", "bob", register=False) as phone:
                phone_stream = phone.sync()
                await updates_until(phone_stream, lambda u: isinstance(u, client.CaughtUp))

                def phone_appeared(update: client.Update) -> bool:
                    return isinstance(update, client.DeviceListUpdate) and update.user_id == BOB

                await updates_until(alice_stream, phone_appeared)
                await alice.send(room_id, after)
                seen = await updates_until(phone_stream, reads(after))
                assert before not in [text(u) for u in seen]
                await updates_until(bob_stream, reads(after))  # the first device too

                assert phone.crypto is not None
                old = await raw_event(phone, room_id, before_id)
                _, info = decrypt_event(phone.crypto.state, old)
                assert info.error == "missing_key"
    no_node_stores(cluster, before, after)


async def test_after_carol_leaves_the_next_message_uses_a_key_she_lacks(cluster: Cluster) -> None:
    first, second = "all three of us read this", "carol has gone: only two read this"
    with trio.fail_after(TIMEOUT):
        async with (
            device(cluster, "a", "alice") as alice,
            device(cluster, "b", "bob") as bob,
            device(cluster, "a", "carol") as carol,
        ):
            streams = alice.sync(), bob.sync(), carol.sync()
            room_id = await joined_room(alice, streams[0], [(bob, streams[1]), (carol, streams[2])])
            first_id = await alice.send(room_id, first)
            await updates_until(streams[1], reads(first))
            await updates_until(streams[2], reads(first))

            await carol.leave(room_id)
            await updates_until(streams[0], membership(CAROL, "leave"))
            second_id = await alice.send(room_id, second)
            await updates_until(streams[1], reads(second))

            one = await raw_event(alice, room_id, first_id)
            two = await raw_event(alice, room_id, second_id)
            assert one.content["session_id"] != two.content["session_id"]
            assert carol.crypto is not None
            _, info = decrypt_event(carol.crypto.state, two)
            assert info.error == "missing_key"
            _, info = decrypt_event(carol.crypto.state, one)
            assert info.decrypted
    no_node_stores(cluster, first, second)


async def test_a_room_key_sent_while_bobs_node_is_down_opens_his_message_once_it_is_back(
    cluster: Cluster,
) -> None:
    warm_up, while_down = "before b went down", "sent while b was down"
    with trio.fail_after(TIMEOUT):
        async with (
            device(cluster, "a", "alice") as alice,
            device(cluster, "b", "bob", proxied=True) as bob,
        ):
            alice_stream, bob_stream = alice.sync(), bob.sync()
            first = await joined_room(alice, alice_stream, [(bob, bob_stream)])
            second = await joined_room(alice, alice_stream, [(bob, bob_stream)])
            await alice.send(first, warm_up)  # alice now knows bob's device, has an Olm session
            await updates_until(bob_stream, reads(warm_up))

            await cluster.stop("b")
            await alice.send(second, while_down)  # a new session: its key waits in a's outbox
            await cluster.run("b")
            seen = await updates_until(bob_stream, reads(while_down))
            # No "unable to decrypt" left: what showed undecryptable opened later.
            unopened = {
                u.event.event_id
                for u in seen
                if isinstance(u, client.EventItem) and u.encryption and u.encryption.error
            }
            assert unopened <= {u.event.event_id for u in seen if isinstance(u, client.Decrypted)}
    no_node_stores(cluster, warm_up, while_down)
