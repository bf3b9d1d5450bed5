"""Device keys as a device makes them (spec/client.md §9), for the conformance checks: an
Olm account's identity keys, one-time keys and fallback key, each signed by the account."""

from __future__ import annotations

import os
from typing import Any

from protocol.crypto.olm_account import Account
from protocol.signing import canonical_signed_bytes


class DeviceKeys:
    """One device's Olm account and the key objects ``upload_keys`` carries."""

    def __init__(self, user_id: str, device_id: str) -> None:
        self.user_id = user_id
        self.device_id = device_id
        self.account = Account.create(os.urandom)

    def _signed(self, obj: dict[str, Any]) -> dict[str, Any]:
        signature = self.account.sign(canonical_signed_bytes(obj))
        return {**obj, "signatures": {self.user_id: {f"ed25519:{self.device_id}": signature}}}

    def identity(self) -> dict[str, Any]:
        """The identity key object, signed."""
        device = self.device_id
        return self._signed(
            {
                "user_id": self.user_id,
                "device_id": device,
                "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
                "keys": {
                    f"curve25519:{device}": self.account.curve25519_key,
                    f"ed25519:{device}": self.account.ed25519_key,
                },
            }
        )

    def one_time(self, count: int) -> dict[str, dict[str, Any]]:
        """``count`` new signed one-time keys."""
        self.account.generate_one_time_keys(count, os.urandom)
        keys = {
            f"signed_curve25519:{key_id}": self._signed({"key": key})
            for key_id, key in self.account.one_time_keys.items()
        }
        self.account.mark_keys_as_published()
        return keys

    def fallback(self) -> dict[str, dict[str, Any]]:
        """A new signed fallback key."""
        self.account.generate_fallback_key(os.urandom)
        [(key_id, key)] = self.account.fallback_key.items()
        self.account.mark_keys_as_published()
        return {f"signed_curve25519:{key_id}": self._signed({"key": key, "fallback": True})}
