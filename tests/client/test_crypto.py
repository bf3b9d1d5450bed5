"""The client's end-to-end encryption, piece by piece (spec/e2ee.md §4), over an in-memory
stand-in for the nodes: keys published and topped up, room keys shared and taken, events
decrypted or refused for the reason §4.6 gives, sessions rotated, state sealed."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from client.crypto_device import DeviceCrypto
from client.crypto_olm import DecryptionError, olm_decrypt, olm_encrypt
from client.crypto_rooms import (
    RotationPolicy,
    decrypt_event,
    device_name,
    needs_rotation,
    new_outbound,
)
from client.crypto_state import (
    CryptoState,
    CryptoStateError,
    InboundRoomKey,
    KnownDevice,
    key_path,
)
from client.results import Event
from client.store import Store
from client.updates import Decrypted, DeviceListUpdate, EventItem, KeyCounts, ToDevice
from protocol.crypto.megolm import InboundGroupSession
from tests.client.crypto_fakes import Clock, FakeNodes, fake_device

ALICE, BOB, CAROL = "@alice:a.test", "@bob:b.test", "@carol:a.test"
ROOM, OTHER_ROOM = "!room:a.test", "!other:a.test"


def _known(crypto: DeviceCrypto) -> KnownDevice:
    state = crypto.state
    account = state.account
    return KnownDevice(state.user_id, state.device_id, account.curve25519_key, account.ed25519_key)


async def _send(nodes: FakeNodes, crypto: DeviceCrypto, body: str) -> Event:
    content = await crypto.encrypt(ROOM, "message", {"msgtype": "text", "body": body})
    event = Event(f"${body}", ROOM, "encrypted", crypto.state.user_id, content, 1)
    nodes.sent.append(event)
    return event


async def _receive(nodes: FakeNodes, crypto: DeviceCrypto) -> list[object]:
    """Feed a device its to-device messages; the updates they make."""
    state = crypto.state
    shown: list[object] = []
    for item in nodes.take_inbox(state.user_id, state.device_id):
        shown += await crypto.process(item)
    return shown


def _body(update: object) -> object:
    assert isinstance(update, EventItem | Decrypted)
    return update.event.content.get("body")


@pytest.fixture
def nodes() -> FakeNodes:
    return FakeNodes(members={ROOM: [ALICE, BOB]})


async def test_a_new_device_publishes_signed_identity_keys_fifty_one_time_keys_and_a_fallback(
    nodes: FakeNodes,
) -> None:
    alice, _ = await fake_device(nodes, ALICE, "ALICE1")
    published = nodes.device_keys[ALICE]["ALICE1"]
    assert published["keys"]["curve25519:ALICE1"] == alice.state.account.curve25519_key
    assert len(nodes.one_time[(ALICE, "ALICE1")]) == 50
    [(_, fallback)] = nodes.fallback[(ALICE, "ALICE1")].items()
    assert fallback["fallback"] is True
    assert alice.state.keys_published


async def test_key_counts_make_the_device_publish_keys_up_to_fifty(nodes: FakeNodes) -> None:
    alice, _ = await fake_device(nodes, ALICE, "ALICE1")
    stock = nodes.one_time[(ALICE, "ALICE1")]
    for name in list(stock)[:45]:
        del stock[name]
    await alice.process(KeyCounts(1, {"signed_curve25519": 5}))
    assert len(stock) == 50


async def test_bob_reads_alices_message_and_the_key_message_hides_the_session_key(
    nodes: FakeNodes,
) -> None:
    alice, _ = await fake_device(nodes, ALICE, "ALICE1")
    bob, _ = await fake_device(nodes, BOB, "BOB1")
    event = await _send(nodes, alice, "hello")
    [key_message] = await _receive(nodes, bob)
    assert isinstance(key_message, ToDevice)
    assert key_message.type == "room_key"
    assert key_message.sender_key == alice.state.account.curve25519_key
    assert "session_key" not in key_message.content
    [shown] = await bob.process(EventItem(2, event))
    assert _body(shown) == "hello"
    assert isinstance(shown, EventItem)
    assert shown.event.type == "message"
    assert shown.event.event_id == event.event_id
    [own] = await alice.process(EventItem(3, event))  # alice reads her own message
    assert _body(own) == "hello"


async def test_a_message_that_came_before_its_key_opens_when_the_key_arrives(
    nodes: FakeNodes,
) -> None:
    alice, _ = await fake_device(nodes, ALICE, "ALICE1")
    bob, _ = await fake_device(nodes, BOB, "BOB1")
    event = await _send(nodes, alice, "early")
    [shown] = await bob.process(EventItem(1, event))
    assert isinstance(shown, EventItem)
    assert shown.encryption is not None
    assert shown.encryption.error == "missing_key"
    assert shown.event.type == "encrypted"
    opened, key_message = await _receive(nodes, bob)
    assert isinstance(opened, Decrypted)
    assert _body(opened) == "early"
    assert opened.event.event_id == event.event_id
    assert isinstance(key_message, ToDevice)
    assert bob.state.pending == []


async def test_the_session_rotates_after_its_message_count_and_its_age(nodes: FakeNodes) -> None:
    clock = Clock()
    alice, _ = await fake_device(nodes, ALICE, "ALICE1", clock=clock)
    await fake_device(nodes, BOB, "BOB1")
    rules = {"algorithm": "m.megolm.v1.aes-sha2", "rotation_period_msgs": 2}
    rules["rotation_period_ms"] = 60_000
    state_event = Event("$enc", ROOM, "encryption", ALICE, rules, 0, state_key="")
    await alice.process(EventItem(1, state_event))
    ids = [(await _send(nodes, alice, f"m{i}")).content["session_id"] for i in range(3)]
    assert ids[0] == ids[1] != ids[2]
    clock.now += 60_000
    assert (await _send(nodes, alice, "later")).content["session_id"] != ids[2]


async def test_a_device_that_joined_later_takes_the_rotation_rules_from_rooms(
    nodes: FakeNodes,
) -> None:
    """It never saw the room's ``encryption`` event (client.md §5: it sees from its join
    on); ``rooms`` gives the content (client.md §3)."""
    nodes.encryption[ROOM] = {"algorithm": "m.megolm.v1.aes-sha2", "rotation_period_msgs": 2}
    alice, _ = await fake_device(nodes, ALICE, "ALICE1")
    await fake_device(nodes, BOB, "BOB1")
    assert await alice.room_encrypted(ROOM)
    ids = [(await _send(nodes, alice, f"m{i}")).content["session_id"] for i in range(3)]
    assert ids[0] == ids[1] != ids[2]


async def test_a_member_leaving_makes_the_next_message_use_a_session_they_lack(
    nodes: FakeNodes,
) -> None:
    nodes.members[ROOM].append(CAROL)
    alice, _ = await fake_device(nodes, ALICE, "ALICE1")
    carol, _ = await fake_device(nodes, CAROL, "CAROL1")
    first = await _send(nodes, alice, "to three")
    await _receive(nodes, carol)
    nodes.members[ROOM].remove(CAROL)
    leave = Event("$leave", ROOM, "member", CAROL, {"membership": "leave"}, 2, state_key=CAROL)
    await alice.process(EventItem(5, leave))
    second = await _send(nodes, alice, "to two")
    assert first.content["session_id"] != second.content["session_id"]
    assert nodes.take_inbox(CAROL, "CAROL1") == []
    _, info = decrypt_event(carol.state, second)
    assert info.error == "missing_key"


async def test_a_removed_device_makes_the_session_rotate_and_get_nothing_new(
    nodes: FakeNodes,
) -> None:
    alice, _ = await fake_device(nodes, ALICE, "ALICE1")
    await fake_device(nodes, BOB, "BOB1")
    await fake_device(nodes, BOB, "BOB2")
    first = await _send(nodes, alice, "to both")
    assert set(alice.state.outbound[ROOM].shared_with) == {
        device_name(BOB, "BOB1"),
        device_name(BOB, "BOB2"),
    }
    nodes.remove_device(BOB, "BOB2")
    nodes.take_inbox(BOB, "BOB2")
    await alice.process(DeviceListUpdate(9, BOB))
    assert BOB in alice.state.outdated
    second = await _send(nodes, alice, "to one")
    assert first.content["session_id"] != second.content["session_id"]
    assert nodes.take_inbox(BOB, "BOB2") == []
    assert set(alice.state.outbound[ROOM].shared_with) == {device_name(BOB, "BOB1")}


async def test_devices_of_a_server_that_cannot_be_asked_stay_as_known(nodes: FakeNodes) -> None:
    alice, _ = await fake_device(nodes, ALICE, "ALICE1")
    await fake_device(nodes, BOB, "BOB1")
    await alice.devices_of([BOB])
    nodes.unreachable.add("b.test")
    nodes.remove_device(BOB, "BOB1")
    await alice.process(DeviceListUpdate(4, BOB))
    found = await alice.devices_of([BOB])
    assert set(found[BOB]) == {"BOB1"}
    assert BOB in alice.state.outdated  # asked again next time
    nodes.unreachable.clear()
    assert (await alice.devices_of([BOB]))[BOB] == {}


async def test_a_room_key_whose_sender_cannot_be_checked_is_refused_and_the_stream_goes_on(
    nodes: FakeNodes,
) -> None:
    alice, _ = await fake_device(nodes, ALICE, "ALICE1")
    bob, _ = await fake_device(nodes, BOB, "BOB1")
    await _send(nodes, alice, "unverifiable")
    nodes.unreachable.add("a.test")  # bob cannot learn alice's published keys
    [item] = await _receive(nodes, bob)
    assert isinstance(item, ToDevice)
    assert item.type == "encrypted"
    assert item.sender_key is None
    assert bob.state.inbound == {}


def test_rotation_rule_keeps_a_session_shared_with_the_same_devices() -> None:
    state = CryptoState.create(ALICE, "ALICE1")
    outbound = new_outbound(state, ROOM, 0)
    device = KnownDevice(BOB, "BOB1", "curve", "ed")
    outbound.shared_with[device_name(BOB, "BOB1")] = "curve"
    targets = {device_name(BOB, "BOB1"): device}
    assert not needs_rotation(outbound, RotationPolicy(), 1, targets)
    moved = {device_name(BOB, "BOB1"): replace(device, curve25519="other")}
    assert needs_rotation(outbound, RotationPolicy(), 1, moved)
    assert needs_rotation(outbound, RotationPolicy(), 1, {})
    assert RotationPolicy.from_content({"rotation_period_ms": 0}) == RotationPolicy()


async def test_an_olm_message_naming_another_recipient_or_sender_is_refused(
    nodes: FakeNodes,
) -> None:
    alice, _ = await fake_device(nodes, ALICE, "ALICE1")
    bob, _ = await fake_device(nodes, BOB, "BOB1")
    await alice.devices_of([BOB])
    bob_device = alice.state.devices[BOB]["BOB1"]
    assert await alice._ensure_olm_sessions([bob_device])
    meant_for_carol = replace(bob_device, user_id=CAROL)
    content = olm_encrypt(alice.state, meant_for_carol, "room_key", {})
    with pytest.raises(DecryptionError) as refused:
        olm_decrypt(bob.state, ALICE, "ALICE1", content)
    assert refused.value.reason == "wrong_recipient"
    another_key = replace(bob_device, ed25519=_known(alice).ed25519)
    content = olm_encrypt(alice.state, another_key, "room_key", {})
    with pytest.raises(DecryptionError) as refused:
        olm_decrypt(bob.state, ALICE, "ALICE1", content)
    assert refused.value.reason == "wrong_recipient"
    content = olm_encrypt(alice.state, bob_device, "room_key", {})
    with pytest.raises(DecryptionError) as refused:
        olm_decrypt(bob.state, CAROL, "ALICE1", content)  # the node says carol sent it
    assert refused.value.reason == "wrong_sender"


async def test_encrypted_events_moved_replayed_or_misattributed_do_not_decrypt(
    nodes: FakeNodes,
) -> None:
    alice, _ = await fake_device(nodes, ALICE, "ALICE1")
    bob, _ = await fake_device(nodes, BOB, "BOB1")
    event = await _send(nodes, alice, "once")
    await _receive(nodes, bob)
    _, info = decrypt_event(bob.state, event)
    assert info.decrypted
    _, info = decrypt_event(bob.state, replace(event, event_id="$copy"))
    assert info.error == "replay"
    _, info = decrypt_event(bob.state, replace(event, sender=CAROL))
    assert info.error == "wrong_sender"
    # The same session known for another room (a sender that reused it): the room id
    # inside the plaintext still tells.
    held = bob.state.inbound_key(ROOM, event.content["sender_key"], event.content["session_id"])
    assert held is not None
    bob.state.add_inbound(replace(held, room_id=OTHER_ROOM, seen={}))
    _, info = decrypt_event(bob.state, replace(event, room_id=OTHER_ROOM, event_id="$moved"))
    assert info.error == "wrong_room"
    tampered = {**event.content, "ciphertext": event.content["ciphertext"][:-4] + "AAAA"}
    _, info = decrypt_event(bob.state, replace(event, content=tampered, event_id="$bad"))
    assert info.error == "bad_message"


async def test_a_key_shared_from_a_later_index_leaves_earlier_messages_missing(
    nodes: FakeNodes,
) -> None:
    alice, _ = await fake_device(nodes, ALICE, "ALICE1")
    await fake_device(nodes, BOB, "BOB1")
    early = await _send(nodes, alice, "before bob's phone")
    phone, _ = await fake_device(nodes, BOB, "BOB2")
    await alice.process(DeviceListUpdate(3, BOB))
    late = await _send(nodes, alice, "after bob's phone")
    assert early.content["session_id"] == late.content["session_id"]
    await _receive(nodes, phone)
    _, info = decrypt_event(phone.state, early)
    assert info.error == "missing_key"
    _, info = decrypt_event(phone.state, late)
    assert info.decrypted


async def test_the_state_is_sealed_in_the_store_and_opens_again(
    nodes: FakeNodes, tmp_path: Path
) -> None:
    alice, _ = await fake_device(nodes, ALICE, "ALICE1")
    bob, store = await fake_device(nodes, BOB, "BOB1", folder=tmp_path)
    await _send(nodes, alice, "first")
    await _receive(nodes, bob)
    assert bob.dirty  # the room key is sealed into the store with the cursor (the ack)
    bob.seal_into_store()
    store.save()
    assert store.path is not None
    text = store.path.read_text()
    session_key = alice.state.outbound[ROOM].session.session_key
    assert alice.state.outbound[ROOM].session.session_id not in text
    assert session_key not in text
    assert stat.S_IMODE(key_path(store.path).stat().st_mode) == 0o600
    assert json.loads(text)["crypto"] == store.crypto

    again, _ = await fake_device(nodes, BOB, "BOB1", store=Store.load(store.path))
    assert again.state.account.curve25519_key == bob.state.account.curve25519_key
    second = await _send(nodes, alice, "second")
    await _receive(nodes, again)
    [shown] = await again.process(EventItem(7, second))
    assert _body(shown) == "second"


def test_a_sealed_state_does_not_open_under_another_key() -> None:
    state = CryptoState.create(ALICE, "ALICE1")
    sealed = state.seal(bytes(32))
    assert CryptoState.open(bytes(32), sealed).account.ed25519_key == state.account.ed25519_key
    with pytest.raises(CryptoStateError):
        CryptoState.open(bytes([1]) * 32, sealed)


def test_a_room_key_only_replaces_one_from_a_later_index() -> None:
    state = CryptoState.create(ALICE, "ALICE1")
    outbound = new_outbound(state, ROOM, 0)
    outbound.session.encrypt(b"x")
    later = InboundGroupSession.from_session_key(outbound.session.session_key)
    key = InboundRoomKey(later, ROOM, state.account.curve25519_key, ALICE, "ed")
    assert not state.add_inbound(key)  # the copy from index 0 is kept
