"""A room key travels through the nodes as an Olm-encrypted to-device message (issue: keys
through the nodes): alice@a finds bob@b's device with ``query_keys``, claims one of its
one-time keys, starts an Olm session, and sends the Megolm key of her room to his device;
bob decrypts the key, then her message. Neither node ever holds the message's text."""

from __future__ import annotations

import json
import os
from typing import Any

import trio

from protocol.crypto.megolm import InboundGroupSession, OutboundGroupSession
from protocol.crypto.olm_messages import OlmMessage
from protocol.device_keys import check_device_keys, check_one_time_keys
from tests.federation.cluster import Cluster
from tests.node.chat_client import is_membership, items_until, txn, user
from tests.node.key_material import device_keys, new_account, one_time_keys
from tests.node.session_client import Client

TIMEOUT = 20
ALICE, BOB = "@alice:a.test", "@bob:b.test"
OLM = "m.olm.v1.curve25519-aes-sha2"
MEGOLM = "m.megolm.v1.aes-sha2"
SECRET = "the launch code is 0451"


async def _device_id(connection: Client) -> str:
    [current] = [d for d in (await connection.result("devices"))["devices"] if d["current"]]
    device_id: str = current["device_id"]
    return device_id


async def _until_both(connection: Client) -> list[dict[str, Any]]:
    """Stream items until both the to-device message and the encrypted event are in."""
    items: list[dict[str, Any]] = []
    while not (
        any(i["kind"] == "to_device" for i in items)
        and any(i["kind"] == "event" and i["event"]["type"] == "encrypted" for i in items)
    ):
        items += await items_until(connection, lambda item: True)
    return items


async def test_a_room_key_shared_over_olm_decrypts_alices_message_on_bobs_device(
    cluster: Cluster,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with user(cluster["a"].port, "alice") as alice, user(cluster["b"].port, "bob") as bob:
            # Bob's device publishes its keys on b.
            bob_device, bob_account = await _device_id(bob), new_account()
            await bob.result(
                "upload_keys",
                device_keys=device_keys(bob_account, BOB, bob_device),
                one_time_keys=one_time_keys(bob_account, BOB, bob_device, 3),
            )
            await alice.result("sync")
            await bob.result("sync")
            room_id = (await alice.result("create_room", invite=[BOB], encryption=MEGOLM))[
                "room_id"
            ]
            await items_until(bob, is_membership(BOB, "invite"))
            await bob.result("join", room_id=room_id)
            await items_until(alice, is_membership(BOB, "join"))

            # Alice's device, through a: bob's devices, then one key of his device.
            alice_account = new_account()
            found = (await alice.result("query_keys", user_ids=[BOB]))["devices"][BOB]
            theirs = check_device_keys(found[bob_device], BOB, bob_device)  # signed by him
            claimed = await alice.result(
                "claim_keys", one_time_keys={BOB: {bob_device: "signed_curve25519"}}
            )
            one_time = claimed["one_time_keys"][BOB][bob_device]
            [key] = check_one_time_keys(one_time, theirs).values()
            olm = alice_account.create_outbound_session(theirs.curve25519, key["key"], os.urandom)

            # The room key goes as an Olm message; the text as a Megolm message.
            group = OutboundGroupSession.create(os.urandom)
            room_key = {"room_id": room_id, "session_id": group.session_id,
                        "session_key": group.session_key}  # fmt: skip
            sealed = olm.encrypt(json.dumps(room_key).encode(), os.urandom)
            content = {
                "algorithm": OLM,
                "sender_key": alice_account.curve25519_key,
                "ciphertext": {theirs.curve25519: {"type": int(sealed.type), "body": sealed.body}},
            }
            await alice.result(
                "send_to_device",
                type="encrypted",
                txn_id=txn(),
                messages={BOB: {bob_device: content}},
            )
            await alice.result(
                "send",
                room_id=room_id,
                txn_id=txn(),
                type="encrypted",
                content={
                    "algorithm": MEGOLM,
                    "sender_key": alice_account.curve25519_key,
                    "session_id": group.session_id,
                    "ciphertext": group.encrypt(SECRET.encode()),
                },
            )

            # Bob's device opens the room key, then the message.
            items = await _until_both(bob)
            [message] = [i for i in items if i["kind"] == "to_device"]
            assert (message["sender"], message["type"]) == (ALICE, "encrypted")
            mine = message["content"]["ciphertext"][theirs.curve25519]
            _, plaintext = bob_account.create_inbound_session(
                message["content"]["sender_key"], OlmMessage(mine["type"], mine["body"])
            )
            shared = json.loads(plaintext)
            assert shared["room_id"] == room_id
            inbound = InboundGroupSession.from_session_key(shared["session_key"])
            [event] = [
                i["event"]
                for i in items
                if i["kind"] == "event" and i["event"]["type"] == "encrypted"
            ]
            assert event["content"]["session_id"] == inbound.session_id
            assert inbound.decrypt(event["content"]["ciphertext"]).plaintext == SECRET.encode()

    for letter in ("a", "b"):  # nothing the nodes wrote holds the text
        for path in cluster[letter].config.data_dir.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path
