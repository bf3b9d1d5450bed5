"""Password hashing with Argon2id (spec/client.md §2: passwords are stored only as hashes).

Argon2id is slow and memory-hungry on purpose, so every hash and every check runs on a worker
thread, at most ``MAX_CONCURRENT_HASHES`` at a time: the event loop never stalls, and a burst
of logins cannot make the node allocate ``MEMLIMIT_INTERACTIVE`` (64 MiB) per request at once.

Checking a password for a user who does not exist runs the same computation against a dummy
hash of the same cost, so ``bad_credentials`` takes as long for an unknown user as for a
wrong password: timing does not tell which user names exist (spec/client.md §2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import nacl.exceptions
import trio
from nacl.pwhash import argon2id

__all__ = ["COSTS", "MAX_CONCURRENT_HASHES", "Cost", "PasswordHasher"]

MAX_CONCURRENT_HASHES: Final = 4


@dataclass(frozen=True, slots=True)
class Cost:
    """Argon2id's work factors: passes over memory, and memory in bytes."""

    opslimit: int
    memlimit: int


COSTS: Final = {
    "interactive": Cost(argon2id.OPSLIMIT_INTERACTIVE, argon2id.MEMLIMIT_INTERACTIVE),
    # libsodium's minimum: no protection at all against guessing. For tests only.
    "min": Cost(argon2id.OPSLIMIT_MIN, argon2id.MEMLIMIT_MIN),
}
"""The ``[passwords] cost`` setting's values (node.config.PASSWORD_COSTS)."""

_DUMMY_PASSWORD: Final = b"kith: no such user"


class PasswordHasher:
    """Hashes and checks passwords off the event loop, at one configured cost."""

    def __init__(self, cost: str = "interactive") -> None:
        self._cost = COSTS[cost]
        self._limiter = trio.CapacityLimiter(MAX_CONCURRENT_HASHES)
        self._dummy: bytes | None = None

    async def hash(self, password: str) -> str:
        """The Argon2id hash string of ``password`` (it embeds the salt and the cost)."""
        digest = await trio.to_thread.run_sync(
            self._hash_sync, password.encode(), limiter=self._limiter
        )
        return digest.decode("ascii")

    def _hash_sync(self, password: bytes) -> bytes:
        return argon2id.str(password, opslimit=self._cost.opslimit, memlimit=self._cost.memlimit)

    async def warm_up(self) -> None:
        """Make the dummy hash now, so even the first unknown user costs one check, not two."""
        if self._dummy is None:
            self._dummy = await trio.to_thread.run_sync(
                self._hash_sync, _DUMMY_PASSWORD, limiter=self._limiter
            )

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; with no stored hash, as slow and False."""
        if stored is None:
            await self.warm_up()
            assert self._dummy is not None
            await trio.to_thread.run_sync(
                _check, self._dummy, password.encode(), limiter=self._limiter
            )
            return False
        return await trio.to_thread.run_sync(
            _check, stored.encode("ascii"), password.encode(), limiter=self._limiter
        )


def _check(stored: bytes, password: bytes) -> bool:
    try:
        return bool(argon2id.verify(stored, password))
    except (nacl.exceptions.InvalidkeyError, nacl.exceptions.RuntimeError):
        # InvalidkeyError: wrong password. RuntimeError: a malformed stored hash — refuse.
        return False
