"""The Megolm ratchet (spec/e2ee.md §3.1 to §3.3): four 32-byte parts and a 32-bit counter.

Part 3 moves on every message, part 2 every 2^8, part 1 every 2^16 and part 0 every 2^24
messages; when a slower part moves, every faster part is re-seeded from it. So the ratchet
can only be wound forwards, and winding it to any later index costs at most 1026 HMACs.

A :class:`Ratchet` is an immutable value: advancing returns a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from protocol.crypto.primitives import hkdf_sha256, hmac_sha256
from protocol.errors import ErrorCode, LocalProtocolError

__all__ = [
    "MAX_INDEX",
    "PART_BYTES",
    "RATCHET_BYTES",
    "MessageKeys",
    "Ratchet",
]

PARTS: Final = 4
PART_BYTES: Final = 32
RATCHET_BYTES: Final = PARTS * PART_BYTES
MAX_INDEX: Final = 0xFFFF_FFFF
"""The counter is an unsigned 32-bit integer; a session cannot go past it."""

_KEYS_INFO: Final = b"MEGOLM_KEYS"
_SALT_ZERO: Final = b"\x00"


def _hash(part: bytes, j: int) -> bytes:
    """H_j(A) = HMAC-SHA-256 keyed with A over the single byte j (§3.2)."""
    return hmac_sha256(part, bytes([j]))


def _shift(j: int) -> int:
    """Part j moves when the counter's bits from 8(3-j) upwards change."""
    return 8 * (PARTS - 1 - j)


@dataclass(frozen=True, slots=True)
class MessageKeys:
    """The keys of one message (§3.4): AES-256 key, HMAC-SHA-256 key and CBC IV."""

    aes_key: bytes
    mac_key: bytes
    iv: bytes


@dataclass(frozen=True, slots=True)
class Ratchet:
    """R = R0 ‖ R1 ‖ R2 ‖ R3 (128 bytes) at counter ``index``."""

    data: bytes
    index: int

    def __post_init__(self) -> None:
        if len(self.data) != RATCHET_BYTES:
            raise LocalProtocolError(ErrorCode.BAD_KEY, f"a ratchet is {RATCHET_BYTES} bytes")
        if not 0 <= self.index <= MAX_INDEX:
            raise LocalProtocolError(ErrorCode.BAD_KEY, "a ratchet index is a u32")

    def part(self, j: int) -> bytes:
        """R_j, the j-th 32-byte part."""
        return self.data[j * PART_BYTES : (j + 1) * PART_BYTES]

    def keys(self) -> MessageKeys:
        """AES key ‖ MAC key ‖ IV = HKDF(salt 0, R, "MEGOLM_KEYS", 80) (§3.4)."""
        okm = hkdf_sha256(self.data, salt=_SALT_ZERO, info=_KEYS_INFO, length=80)
        return MessageKeys(aes_key=okm[:32], mac_key=okm[32:64], iv=okm[64:80])

    def advance(self) -> Ratchet:
        """The ratchet one message later (§3.2)."""
        if self.index == MAX_INDEX:
            raise LocalProtocolError(ErrorCode.BAD_KEY, "the ratchet is at its last index")
        index = self.index + 1
        # h: the slowest part whose period boundary the new counter sits on.
        h = next((j for j in range(PARTS) if index % (1 << _shift(j)) == 0), PARTS - 1)
        return Ratchet(self._reseed_from(h, self._parts()), index)

    def advance_to(self, target: int) -> Ratchet:
        """The ratchet at ``target`` (≥ ``index``) in at most 1026 HMACs (§3.3).

        From the slowest part to the fastest: a part whose counter digit must move d steps
        is hashed in place d - 1 times, and on the last step re-seeds itself and every
        faster part; the faster digits then count from zero.
        """
        if not self.index <= target <= MAX_INDEX:
            raise LocalProtocolError(
                ErrorCode.BAD_KEY, f"cannot wind a ratchet from {self.index} back to {target}"
            )
        parts = self._parts()
        index = self.index
        for j in range(PARTS):
            shift = _shift(j)
            steps = (target >> shift) - (index >> shift)
            if steps == 0:
                continue
            for _ in range(steps - 1):
                parts[j] = _hash(parts[j], j)
            parts = list(self._split(self._reseed_from(j, parts)))
            index = target >> shift << shift
        return Ratchet(b"".join(parts), target)

    def _parts(self) -> list[bytes]:
        return list(self._split(self.data))

    @staticmethod
    def _split(data: bytes) -> tuple[bytes, ...]:
        return tuple(data[j * PART_BYTES : (j + 1) * PART_BYTES] for j in range(PARTS))

    @staticmethod
    def _reseed_from(h: int, parts: list[bytes]) -> bytes:
        """R_k = H_k(R_h) for k = 3 down to h; R_h itself last, so every k reads the old R_h."""
        out = list(parts)
        for k in range(PARTS - 1, h - 1, -1):
            out[k] = _hash(parts[h], k)
        return b"".join(out)
