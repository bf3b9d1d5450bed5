"""End-to-end encryption for one device's session (spec/e2ee.md §4): publish the device's
keys, share room keys before sending, decrypt what the stream brings.

:class:`DeviceCrypto` is what ``connect(..., e2ee=True)`` switches on. It keeps the
device's :class:`~client.crypto_state.CryptoState` sealed in the store and does, by itself:

* **Keys.** On the first login of a device: its identity keys (signed by the device), 50
  one-time keys and a fallback key (``upload_keys``); whenever the node says the stock ran
  low (``key_counts``), enough new one-time keys to have 50 again.
* **Sending** in a room whose ``encryption`` state is set: it finds the joined members'
  devices (``query_keys``, again for users whose device list changed), rotates the room's
  outbound Megolm session when it must (§4.5), makes Olm sessions with the devices that
  lack one (``claim_keys``), sends the session key to every device that does not hold it
  yet (``send_to_device``), and only then encrypts the event.
* **Receiving.** Olm to-device messages are decrypted (the unknown key-share checks of
  §4.3 included) and room keys kept; ``encrypted`` events are decrypted in the stream, and
  one whose key has not come is held and yielded again as
  :class:`~client.updates.Decrypted` when it does.

State changes reach the store before anything encrypted with them leaves the device, and —
sealed together with the cursor, in one write per acknowledgement rather than one per item
— before the stream position that caused them is acknowledged: a device that crashes never
reuses a message index, and never acknowledges a room key it did not keep.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from client.crypto_olm import ENCRYPTED, DecryptionError, olm_decrypt, olm_encrypt
from client.crypto_rooms import (
    MEGOLM_ALGORITHM,
    ROOM_KEY,
    RotationPolicy,
    accept_room_key,
    decrypt_event,
    device_name,
    encrypt_event,
    needs_rotation,
    new_outbound,
    room_key_content,
)
from client.crypto_state import (
    CryptoState,
    KnownDevice,
    PendingEvent,
    load_storage_key,
)
from client.crypto_state import random_bytes as _random
from client.errors import ClientError, KithClientError
from client.results import Event, HistoryPage
from client.updates import (
    Decrypted,
    DeviceListUpdate,
    EventItem,
    KeyCounts,
    ToDevice,
    Update,
)
from protocol import JsonObject, ProtocolError
from protocol.crypto.olm_account import MAX_PUBLISHED_ONE_TIME_KEYS
from protocol.device_keys import (
    MAX_CLAIM_TARGETS,
    ONE_TIME_KEY_ALGORITHM,
    DeviceKeys,
    check_device_keys,
    check_one_time_keys,
)
from protocol.signing import canonical_signed_bytes

if TYPE_CHECKING:
    from client.api import Operations
    from client.store import Store

__all__ = ["ALGORITHMS", "DeviceCrypto"]

log = logging.getLogger(__name__)

ALGORITHMS = ["m.olm.v1.curve25519-aes-sha2", MEGOLM_ALGORITHM]
"""What a Kith device's identity key object lists (client.md §9)."""
MAX_SEND_TARGETS = 1000
"""Devices in one ``send_to_device`` (client.md §4)."""


class DeviceCrypto:
    """One device's end-to-end encryption, on top of its session's ops (module doc)."""

    def __init__(
        self,
        ops: Operations,
        store: Store,
        save: Callable[[], Awaitable[None]],
        *,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._ops = ops
        self._store = store
        self._save_store = save
        self._clock_ms = clock_ms
        self._storage_key: bytes | None = None
        self._state: CryptoState | None = None
        self._rooms: dict[str, RotationPolicy] = {}
        """Rooms seen to be encrypted (their ``encryption`` state), with their policy."""
        self._dirty = False

    # --- the state and its storage ---------------------------------------------------------

    @property
    def state(self) -> CryptoState:
        """The device's state (after :meth:`ready`)."""
        if self._state is None:
            raise RuntimeError("end-to-end encryption is not set up: log in first")
        return self._state

    def _key(self) -> bytes:
        if self._storage_key is None:
            self._storage_key = load_storage_key(self._store.path)
        return self._storage_key

    async def save(self) -> None:
        """Seal the state into the store and write the store (before anything encrypted
        with the state leaves the device)."""
        self._store.crypto = self.state.seal(self._key())
        self._dirty = False
        await self._save_store()

    def touch(self) -> None:
        """The state changed by reading the stream: it is sealed into the store with the
        cursor (:meth:`seal_into_store`), before those positions are acknowledged."""
        self._dirty = True

    @property
    def dirty(self) -> bool:
        """True while the state holds changes the store does not."""
        return self._dirty

    def seal_into_store(self) -> None:
        """Put the state's changes into the store object (the caller writes the store)."""
        if self._dirty and self._state is not None:
            self._store.crypto = self._state.seal(self._key())
            self._dirty = False

    async def ready(self) -> CryptoState:
        """The logged-in device's state: the stored one, or a new one whose keys are
        published now (``upload_keys``) — again after an upload that did not finish."""
        user_id, device_id = self._store.user_id, self._store.device_id
        if user_id is None or device_id is None or not self._store.logged_in:
            raise ClientError("not_authenticated", "log in before using encryption")
        state = self._state
        if state is None or (state.user_id, state.device_id) != (user_id, device_id):
            state = None
            if self._store.crypto is not None:
                state = CryptoState.open(self._key(), self._store.crypto)
                if (state.user_id, state.device_id) != (user_id, device_id):
                    state = None  # another device's: that device is over
            self._state = state or CryptoState.create(user_id, device_id)
            if state is None:
                await self.save()
        if not self.state.keys_published:
            await self._publish_keys()
        return self.state

    def forget(self) -> None:
        """The device ended: its keys go with it (the store dropped them already)."""
        self._state = None

    # --- the device's own keys (§4.1) ------------------------------------------------------

    def _signed(self, obj: JsonObject) -> JsonObject:
        state = self.state
        signature = state.account.sign(canonical_signed_bytes(obj))
        return {**obj, "signatures": {state.user_id: {f"ed25519:{state.device_id}": signature}}}

    def _one_time_keys(self, count: int) -> JsonObject:
        account = self.state.account
        account.generate_one_time_keys(count, _random)
        return {
            f"{ONE_TIME_KEY_ALGORITHM}:{key_id}": self._signed({"key": key})
            for key_id, key in account.one_time_keys.items()
        }

    async def _publish_keys(self) -> None:
        state = self.state
        account = state.account
        device_keys = self._signed(
            {
                "user_id": state.user_id,
                "device_id": state.device_id,
                "algorithms": ALGORITHMS,
                "keys": {
                    f"curve25519:{state.device_id}": account.curve25519_key,
                    f"ed25519:{state.device_id}": account.ed25519_key,
                },
            }
        )
        one_time = self._one_time_keys(MAX_PUBLISHED_ONE_TIME_KEYS - len(account.one_time_keys))
        if not account.fallback_key:
            account.generate_fallback_key(_random)
        [(fallback_id, fallback)] = account.fallback_key.items()
        fallback_key = {
            f"{ONE_TIME_KEY_ALGORITHM}:{fallback_id}": self._signed(
                {"key": fallback, "fallback": True}
            )
        }
        await self.save()  # the private halves are kept before the public ones go out
        await self._ops.upload_keys(
            device_keys=device_keys, one_time_keys=one_time, fallback_key=fallback_key
        )
        account.mark_keys_as_published()
        state.keys_published = True
        await self.save()

    async def top_up(self, counts: JsonObject) -> None:
        """Publish one-time keys until the node holds 50 again (``key_counts``)."""
        held = counts.get(ONE_TIME_KEY_ALGORITHM)
        held = held if type(held) is int else 0
        missing = MAX_PUBLISHED_ONE_TIME_KEYS - held
        if missing <= 0:
            return
        keys = self._one_time_keys(missing)
        await self.save()
        await self._ops.upload_keys(one_time_keys=keys)
        self.state.account.mark_keys_as_published()
        await self.save()

    # --- other devices ---------------------------------------------------------------------

    async def devices_of(self, user_ids: Iterable[str]) -> dict[str, dict[str, KnownDevice]]:
        """The devices of ``user_ids`` with published keys; users never asked about, and
        users whose device list changed, are asked of the node first (``query_keys``)."""
        state = self.state
        wanted = list(dict.fromkeys(user_ids))
        ask = [u for u in wanted if u not in state.devices or u in state.outdated]
        while ask:
            result = await self._ops.query_keys(ask)
            found = result.get("devices")
            found = found if isinstance(found, dict) else {}
            failures = result.get("failures")
            failed = set(failures) if isinstance(failures, dict) else set()
            for user_id in ask:
                if user_id.partition(":")[2] in failed:  # its server (ids.md §3)
                    continue  # keep what we knew; ask again next time
                self._learn(user_id, found.get(user_id))
            incomplete = result.get("incomplete")
            ask = [u for u in incomplete if u in ask] if isinstance(incomplete, list) else []
        self.touch()
        return {u: dict(state.devices.get(u, {})) for u in wanted}

    def _learn(self, user_id: str, objects: object) -> None:
        """Keep the checked identity keys of ``user_id``'s devices (their own signature).
        A device id seen before with other keys keeps the old ones: published keys never
        change (client.md §9 step 3), so new ones are a node's forgery."""
        state = self.state
        known = state.devices.get(user_id, {})
        devices: dict[str, KnownDevice] = {}
        for device_id, obj in (objects if isinstance(objects, dict) else {}).items():
            try:
                checked = check_device_keys(obj, user_id, device_id)
            except ProtocolError:
                log.warning("device keys of %s %s do not check out", user_id, device_id)
                continue
            device = KnownDevice(user_id, device_id, checked.curve25519, checked.ed25519)
            before = known.get(device_id)
            if before is not None and before != device:
                log.warning("device %s %s published other keys: ignored", user_id, device_id)
                device = before
            devices[device_id] = device
        state.devices[user_id] = devices
        state.outdated.discard(user_id)

    async def _ensure_olm_sessions(self, devices: list[KnownDevice]) -> list[KnownDevice]:
        """Make Olm sessions with the devices that have none (``claim_keys``); the devices
        that have one afterwards."""
        state = self.state
        lacking = [d for d in devices if not state.olm_sessions.get(d.curve25519)]
        for start in range(0, len(lacking), MAX_CLAIM_TARGETS):
            chunk = lacking[start : start + MAX_CLAIM_TARGETS]
            request: dict[str, dict[str, str]] = {}
            for device in chunk:
                request.setdefault(device.user_id, {})[device.device_id] = ONE_TIME_KEY_ALGORITHM
            claimed = (await self._ops.claim_keys(request)).get("one_time_keys")
            claimed = claimed if isinstance(claimed, dict) else {}
            for device in chunk:
                given = claimed.get(device.user_id, {}).get(device.device_id)
                published = DeviceKeys(
                    device.user_id, device.device_id, device.curve25519, device.ed25519, {}
                )
                try:
                    [key] = check_one_time_keys(given, published).values()
                    session = state.account.create_outbound_session(
                        device.curve25519, key["key"], _random
                    )
                except (ProtocolError, ValueError):
                    log.warning("no one-time key of %s %s", device.user_id, device.device_id)
                    continue
                state.olm_sessions.setdefault(device.curve25519, []).insert(0, session)
        return [d for d in devices if state.olm_sessions.get(d.curve25519)]

    # --- sending (§4.2, §4.4, §4.5) --------------------------------------------------------

    async def room_encrypted(self, room_id: str) -> bool:
        """True if the room's ``encryption`` state is set (seen in the stream, else asked)."""
        if room_id in self._rooms:
            return True
        for room in await self._ops.rooms():
            if room.encrypted:  # its rotation periods too, for a device that joined later
                policy = RotationPolicy.from_content(room.encryption or {})
                self._rooms.setdefault(room.room_id, policy)
        return room_id in self._rooms

    async def encrypt(self, room_id: str, type: str, content: JsonObject) -> JsonObject:
        """The ``encrypted`` content to send for ``type``/``content`` in ``room_id``, once
        every joined member's device holds the session key."""
        state = await self.ready()
        members = [m.user_id for m in await self._ops.members(room_id) if m.membership == "join"]
        by_user = await self.devices_of(members)
        targets = {
            device_name(user_id, device_id): device
            for user_id, devices in by_user.items()
            for device_id, device in devices.items()
            if (user_id, device_id) != (state.user_id, state.device_id)
        }
        now = self._clock_ms()
        outbound = state.outbound.get(room_id)
        policy = self._rooms.get(room_id, RotationPolicy())
        if outbound is None or needs_rotation(outbound, policy, now, targets):
            log.info("new outbound session room_id=%s", room_id)
            outbound = new_outbound(state, room_id, now)
        due = [d for n, d in targets.items() if outbound.shared_with.get(n) != d.curve25519]
        if due:
            reachable = await self._ensure_olm_sessions(due)
            key = room_key_content(room_id, outbound)
            messages: list[tuple[KnownDevice, JsonObject]] = [
                (device, olm_encrypt(state, device, ROOM_KEY, key)) for device in reachable
            ]
            await self.save()  # the Olm ratchets moved: never send from a state not kept
            for start in range(0, len(messages), MAX_SEND_TARGETS):
                batch: dict[str, dict[str, JsonObject]] = {}
                for device, sealed in messages[start : start + MAX_SEND_TARGETS]:
                    batch.setdefault(device.user_id, {})[device.device_id] = sealed
                await self._ops.send_to_device(ENCRYPTED, batch)
            for device, _ in messages:
                outbound.shared_with[device_name(device.user_id, device.device_id)] = (
                    device.curve25519
                )
        encrypted = encrypt_event(state, room_id, type, content)
        await self.save()  # the message index moved on before the event leaves
        return encrypted

    # --- receiving (§4.3, §4.6) ------------------------------------------------------------

    async def process(self, update: Update) -> list[Update]:
        """What the stream yields for ``update``: the update itself, decrypted where it
        was encrypted, after any :class:`Decrypted` events a room key it carried opens."""
        if isinstance(update, EventItem):
            return [await self._event(update)]
        if isinstance(update, ToDevice) and update.type == ENCRYPTED:
            return await self._to_device(update)
        if isinstance(update, KeyCounts):
            await self.ready()
            try:
                await self.top_up(update.one_time_key_counts)
            except KithClientError as exc:
                log.warning("could not upload one-time keys: %s", exc)
        elif isinstance(update, DeviceListUpdate):
            state = await self.ready()
            state.outdated.add(update.user_id)
            self.touch()
        return [update]

    async def _event(self, item: EventItem) -> EventItem:
        event = item.event
        if event.type == "encryption" and event.state_key == "":
            self._rooms[event.room_id] = RotationPolicy.from_content(event.content)
            return item
        if event.type == "member" and event.membership in {"leave", "ban"}:
            state = await self.ready()
            # §4.5: whoever leaves takes no key of what follows.
            if state.outbound.pop(event.room_id, None) is not None:
                self.touch()
            return item
        if event.type != ENCRYPTED:
            return item
        state = await self.ready()
        self._rooms.setdefault(event.room_id, RotationPolicy())
        decrypted, info = decrypt_event(state, event)
        if info.error == "missing_key":
            state.keep_pending(
                PendingEvent(event.room_id, info.sender_key, info.session_id, event.to_json())
            )
        self.touch()
        return EventItem(item.position, decrypted, info)

    async def _to_device(self, item: ToDevice) -> list[Update]:
        state = await self.ready()
        try:
            message = olm_decrypt(state, item.sender, item.sender_device, item.content)
        except DecryptionError as exc:
            log.warning("to-device message from %s not decrypted: %s", item.sender, exc)
            self.touch()
            return [item]
        # §4.3: the Ed25519 key inside is the one the sender's device published with the
        # Curve25519 key the Olm session runs on.
        device = state.device_by_curve_key(item.sender, message.sender_key)
        if device is None or device.ed25519 != message.sender_ed25519:
            state.outdated.add(item.sender)
            try:
                await self.devices_of([item.sender])
            except KithClientError as exc:  # the stream goes on; the message is refused
                log.warning("could not query %s's devices: %s", item.sender, exc)
            device = state.device_by_curve_key(item.sender, message.sender_key)
        if (
            device is None
            or device.ed25519 != message.sender_ed25519
            or device.device_id != item.sender_device
        ):
            log.warning("to-device message from %s: keys do not match its device", item.sender)
            self.touch()
            return [item]
        updates: list[Update] = []
        content = message.content
        if message.type == ROOM_KEY:
            try:
                key = accept_room_key(state, message)
            except DecryptionError as exc:
                log.warning("room key from %s refused: %s", item.sender, exc)
                key = None
            if key is not None:
                updates += self._open_pending(key.room_id, key.sender_key, key.session.session_id)
            content = {k: v for k, v in content.items() if k != "session_key"}
        self.touch()
        updates.append(
            ToDevice(
                item.position,
                item.sender,
                item.sender_device,
                message.type,
                content,
                sender_key=message.sender_key,
            )
        )
        return updates

    def _open_pending(self, room_id: str, sender_key: str, session_id: str) -> list[Update]:
        state = self.state
        opened: list[Update] = []
        for pending in state.take_pending(room_id, sender_key, session_id):
            event = Event.from_json(pending.event)
            decrypted, info = decrypt_event(state, event)
            if info.error == "missing_key":
                state.keep_pending(pending)
            elif info.error is None:
                opened.append(Decrypted(decrypted, info))
        return opened

    async def decrypt_page(self, page: HistoryPage) -> HistoryPage:
        """A ``history`` page with the events this device holds keys for decrypted; the
        others stay as they are (nothing is held for later: the stream does that)."""
        state = await self.ready()
        events = []
        for event in page.events:
            shown = event
            if event.type == ENCRYPTED:
                decrypted, info = decrypt_event(state, event)
                shown = decrypted if info.decrypted else event
            events.append(shown)
        self.touch()  # the indices read are recorded (§4.6 step 5)
        return replace(page, events=tuple(events))
