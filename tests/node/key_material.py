"""Real device keys for tests of client.md §9: an Olm account's identity keys, one-time keys
and fallback key, signed by the account as a device publishes them."""

from __future__ import annotations

import os
from typing import Any

from protocol.crypto.olm_account import Account
from protocol.signing import canonical_signed_bytes

ALGORITHMS = ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"]


def new_account() -> Account:
    """A fresh Olm account (a device's keys)."""
    return Account.create(os.urandom)


def _signed(account: Account, obj: dict[str, Any], user_id: str, device_id: str) -> dict[str, Any]:
    signature = account.sign(canonical_signed_bytes(obj))
    return {**obj, "signatures": {user_id: {f"ed25519:{device_id}": signature}}}


def device_keys(account: Account, user_id: str, device_id: str) -> dict[str, Any]:
    """The device's identity key object, signed by its Ed25519 key."""
    obj = {
        "user_id": user_id,
        "device_id": device_id,
        "algorithms": ALGORITHMS,
        "keys": {
            f"curve25519:{device_id}": account.curve25519_key,
            f"ed25519:{device_id}": account.ed25519_key,
        },
    }
    return _signed(account, obj, user_id, device_id)


def one_time_keys(
    account: Account, user_id: str, device_id: str, count: int
) -> dict[str, dict[str, Any]]:
    """``count`` new one-time keys, signed, as ``upload_keys`` carries them."""
    account.generate_one_time_keys(count, os.urandom)
    keys = {
        f"signed_curve25519:{key_id}": _signed(account, {"key": key}, user_id, device_id)
        for key_id, key in account.one_time_keys.items()
    }
    account.mark_keys_as_published()
    return keys


def fallback_key(account: Account, user_id: str, device_id: str) -> dict[str, dict[str, Any]]:
    """A new fallback key, signed."""
    account.generate_fallback_key(os.urandom)
    [(key_id, key)] = account.fallback_key.items()
    account.mark_keys_as_published()
    obj = {"key": key, "fallback": True}
    return {f"signed_curve25519:{key_id}": _signed(account, obj, user_id, device_id)}
