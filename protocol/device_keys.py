"""Devices' published keys as nodes handle them (spec/client.md §9, spec/federation.md §10):
identity key objects, signed one-time and fallback keys, and the answers of ``query_keys``
and ``claim_keys``.

A node checks what a device uploads — the object names the device, its keys decode, and the
device's own Ed25519 key signed it (signing.md §3) — so that what it hands out later is what
the device published. Every check raises ``RemoteProtocolError``: ``bad_params`` for a
shape, ``bad_base64``/``bad_key`` for a key, ``missing_signature``/``bad_signature`` for a
signature, ``forbidden`` for an object about another user or device. The answers of other
nodes are parsed here too, item by item: what does not check out is left out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import nacl.signing

from protocol.canonical_json import JsonObject, encode_trusted_json
from protocol.errors import ErrorCode, RemoteProtocolError
from protocol.ids import parse_user_id, validate_device_id
from protocol.signing import (
    canonical_signed_bytes,
    decode_verify_key,
    signature_of,
    verify_signature_bytes,
)

__all__ = [
    "MAX_ALGORITHMS",
    "MAX_CLAIM_TARGETS",
    "MAX_DEVICE_KEYS_BYTES",
    "MAX_ONE_TIME_KEY_BYTES",
    "MAX_QUERY_USERS",
    "MAX_STORED_ONE_TIME_KEYS",
    "MAX_UPLOADED_ONE_TIME_KEYS",
    "ONE_TIME_KEY_ALGORITHM",
    "DeviceKeys",
    "check_claim_request",
    "check_device_keys",
    "check_one_time_keys",
    "fit_answer",
    "parse_claim_answer",
    "parse_query_answer",
]

ONE_TIME_KEY_ALGORITHM: Final = "signed_curve25519"
"""The one algorithm of one-time and fallback keys: a Curve25519 key signed by the device."""
MAX_DEVICE_KEYS_BYTES: Final = 4096
"""Canonical JSON bytes of one identity key object."""
MAX_ONE_TIME_KEY_BYTES: Final = 1024
"""Canonical JSON bytes of one signed one-time or fallback key."""
MAX_UPLOADED_ONE_TIME_KEYS: Final = 200
"""One-time keys in one ``upload_keys``."""
MAX_STORED_ONE_TIME_KEYS: Final = 1000
"""Unclaimed one-time keys a node keeps for one device."""
MAX_ALGORITHMS: Final = 16
MAX_QUERY_USERS: Final = 1000
MAX_CLAIM_TARGETS: Final = 1000
"""Devices named in one ``claim_keys``."""

_ALGORITHM = re.compile(r"[a-z0-9_.]{1,64}")
_KEY_ID = re.compile(r"[A-Za-z0-9+/_-]{1,64}")


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.BAD_PARAMS, message)


def _object(value: Any, what: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise _bad(f"{what} is an object")
    return value


def _size(value: JsonObject, limit: int, what: str) -> None:
    if len(encode_trusted_json(value)) > limit:
        raise RemoteProtocolError(ErrorCode.TOO_LARGE, f"{what} is at most {limit} bytes")


def _curve_key(value: Any, what: str) -> str:
    """A Curve25519 or Ed25519 public key: unpadded base64 of 32 bytes."""
    if type(value) is not str:
        raise _bad(f"{what} is a string")
    decode_verify_key(value)  # bad_base64 / bad_key: the same rule for both kinds of key
    return value


def _verify_device_signature(
    obj: JsonObject, user_id: str, device_id: str, key: nacl.signing.VerifyKey
) -> None:
    """signing.md §3.3 with the device's key, named ``ed25519:<device id>``."""
    signature = signature_of(obj, user_id, f"ed25519:{device_id}")
    verify_signature_bytes(canonical_signed_bytes(obj), signature, key)


@dataclass(frozen=True, slots=True)
class DeviceKeys:
    """A checked identity key object of one device."""

    user_id: str
    device_id: str
    curve25519: str
    ed25519: str
    obj: JsonObject
    """The object as uploaded (and as handed to others)."""

    @property
    def verify_key(self) -> nacl.signing.VerifyKey:
        """The device's Ed25519 key: it signs the device's one-time and fallback keys."""
        return decode_verify_key(self.ed25519)


def check_device_keys(
    obj: Any, user_id: str | None = None, device_id: str | None = None
) -> DeviceKeys:
    """client.md §9 steps 1-3 for an identity key object: its fields, its keys, its
    signature by its own Ed25519 key — and, when ``user_id``/``device_id`` are given, that
    it is theirs (``forbidden`` otherwise)."""
    obj = _object(obj, "device_keys")
    _size(obj, MAX_DEVICE_KEYS_BYTES, "device_keys")
    allowed = {"user_id", "device_id", "algorithms", "keys", "signatures", "unsigned"}
    if (
        not obj.keys() <= allowed
        or not {"user_id", "device_id", "algorithms", "keys"} <= obj.keys()
    ):
        raise _bad("device_keys has user_id, device_id, algorithms, keys and signatures")
    owner, device = obj["user_id"], obj["device_id"]
    if type(owner) is not str or type(device) is not str:
        raise _bad("device_keys names its user and device")
    parse_user_id(owner)
    validate_device_id(device)
    if (user_id is not None and owner != user_id) or (
        device_id is not None and device != device_id
    ):
        raise RemoteProtocolError(ErrorCode.FORBIDDEN, "device_keys of another user or device")
    algorithms = obj["algorithms"]
    if (
        type(algorithms) is not list
        or not 1 <= len(algorithms) <= MAX_ALGORITHMS
        or not all(type(a) is str and 1 <= len(a) <= 255 for a in algorithms)
    ):
        raise _bad(f"algorithms is a list of 1-{MAX_ALGORITHMS} names")
    keys = _object(obj["keys"], "keys")
    names = {f"curve25519:{device}", f"ed25519:{device}"}
    if set(keys) != names:
        raise _bad(f"keys holds exactly {sorted(names)}")
    curve = _curve_key(keys[f"curve25519:{device}"], "a curve25519 key")
    ed = _curve_key(keys[f"ed25519:{device}"], "an ed25519 key")
    if "unsigned" in obj:
        _object(obj["unsigned"], "unsigned")
    checked = DeviceKeys(owner, device, curve, ed, obj)
    _verify_device_signature(obj, owner, device, checked.verify_key)
    return checked


def _split_key_id(name: Any) -> tuple[str, str]:
    if type(name) is not str:
        raise _bad("a key id is a string")
    algorithm, colon, key_id = name.partition(":")
    if not colon or _ALGORITHM.fullmatch(algorithm) is None or _KEY_ID.fullmatch(key_id) is None:
        raise _bad(f"{name[:80]!r} is not '<algorithm>:<key id>'")
    return algorithm, key_id


def check_one_time_keys(
    keys: Any, device: DeviceKeys, *, fallback: bool = False
) -> dict[str, JsonObject]:
    """client.md §9 step 4: signed one-time keys (or the fallback key) of ``device``, by
    their ``"signed_curve25519:<id>"`` name, each signed by the device's Ed25519 key."""
    keys = _object(keys, "fallback_key" if fallback else "one_time_keys")
    if fallback and len(keys) != 1:
        raise _bad("fallback_key holds one key")
    checked: dict[str, JsonObject] = {}
    verify_key = device.verify_key
    for name, value in keys.items():
        algorithm, _ = _split_key_id(name)
        if algorithm != ONE_TIME_KEY_ALGORITHM:
            raise _bad(f"one-time keys are {ONE_TIME_KEY_ALGORITHM}, not {algorithm!r}")
        key = _object(value, name)
        _size(key, MAX_ONE_TIME_KEY_BYTES, name)
        wanted = {"key", "signatures", "fallback"} if fallback else {"key", "signatures"}
        if not key.keys() <= wanted | {"unsigned"} or not {"key", "signatures"} <= key.keys():
            raise _bad(f"{name} has {sorted(wanted)}")
        if fallback and key.get("fallback") is not True:
            raise _bad("a fallback key says fallback: true")
        _curve_key(key["key"], name)
        _verify_device_signature(key, device.user_id, device.device_id, verify_key)
        checked[name] = key
    return checked


def check_claim_request(value: Any) -> None:
    """``one_time_keys`` of ``claim_keys``: user → device → algorithm, at most
    :data:`MAX_CLAIM_TARGETS` devices (a params check: ``bad_params``/``too_large``)."""
    targets = 0
    for user_id, devices in _object(value, "one_time_keys").items():
        parse_user_id(user_id)
        for device_id, algorithm in _object(devices, user_id).items():
            validate_device_id(device_id)
            if type(algorithm) is not str or _ALGORITHM.fullmatch(algorithm) is None:
                raise _bad("each device maps to an algorithm name")
            targets += 1
    if targets > MAX_CLAIM_TARGETS:
        raise RemoteProtocolError(ErrorCode.TOO_LARGE, f"at most {MAX_CLAIM_TARGETS} devices")


# --- answers of other nodes (federation.md §10) ------------------------------------------


def parse_query_answer(
    answer: Any, server_name: str, wanted: frozenset[str]
) -> dict[str, dict[str, JsonObject]]:
    """A peer's ``query_keys`` result: the identity key objects of ``wanted`` users of
    ``server_name`` that check out (each user's and device's own); others are left out.
    ``bad_params`` if the answer is not a map of users to maps of devices at all."""
    devices = _object(_object(answer, "the answer").get("devices"), "devices")
    found: dict[str, dict[str, JsonObject]] = {}
    for user_id, by_device in devices.items():
        if user_id not in wanted or parse_user_id(user_id).server_name != server_name:
            continue
        for device_id, obj in _object(by_device, user_id).items():
            try:
                check_device_keys(obj, user_id, device_id)
            except RemoteProtocolError:
                continue
            found.setdefault(user_id, {})[device_id] = obj
    return found


def parse_claim_answer(
    answer: Any, server_name: str, wanted: Mapping[str, Mapping[str, str]]
) -> dict[str, dict[str, dict[str, JsonObject]]]:
    """A peer's ``claim_keys`` result: one well-formed key for each asked-for device of a
    user of ``server_name``, of the asked algorithm; anything else is left out. (The
    claiming device checks the key's signature with the identity key it queried.)"""
    claimed = _object(_object(answer, "the answer").get("one_time_keys"), "one_time_keys")
    found: dict[str, dict[str, dict[str, JsonObject]]] = {}
    for user_id, by_device in claimed.items():
        asked = wanted.get(user_id)
        if asked is None or parse_user_id(user_id).server_name != server_name:
            continue
        for device_id, given in _object(by_device, user_id).items():
            keys = _object(given, device_id)
            if device_id not in asked or len(keys) != 1:
                continue
            [(name, key)] = keys.items()
            try:
                algorithm, _ = _split_key_id(name)
                key = _object(key, name)
                _size(key, MAX_ONE_TIME_KEY_BYTES, name)
                _curve_key(key.get("key"), name)
            except RemoteProtocolError:
                continue
            if algorithm == asked[device_id]:
                found.setdefault(user_id, {})[device_id] = {name: key}
    return found


def fit_answer(
    devices: Mapping[str, Mapping[str, JsonObject]], budget: int
) -> tuple[dict[str, dict[str, JsonObject]], list[str]]:
    """Keep whole users, in order, while their device objects fit ``budget`` bytes; the
    users left out are listed, to be asked for again (client.md §9 ``incomplete``)."""
    kept: dict[str, dict[str, JsonObject]] = {}
    left: list[str] = []
    used = 0
    for user_id, by_device in devices.items():
        cost = len(encode_trusted_json({user_id: dict(by_device)}))
        if left or (used + cost > budget and kept):
            left.append(user_id)
            continue
        kept[user_id] = dict(by_device)
        used += cost
    return kept, left
