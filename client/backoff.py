"""How long to wait before the next reconnection attempt: exponential backoff with jitter.

The ``n``-th consecutive failure waits ``min(maximum, initial * factor**n)`` seconds, less a
random part of up to ``jitter`` of it. The randomness spreads out the clients of a node
that restarts, so they do not all knock at the same instant (the "thundering herd"); the
random generator is an argument, so tests use a seeded one and get the same delays every run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Delays between reconnection attempts; :meth:`delay` is pure given the generator."""

    initial: float = 0.5
    """Seconds before the first retry (before jitter)."""
    maximum: float = 30.0
    """The longest wait, however many attempts failed."""
    factor: float = 2.0
    jitter: float = 0.5
    """The fraction of each delay that is random: 0.5 waits between 50% and 100% of it."""
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("Backoff needs 0 < initial <= maximum")
        if self.factor < 1:
            raise ValueError("Backoff.factor must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("Backoff.jitter is a fraction in [0, 1]")

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failed attempts (0 = the first)."""
        # factor**failures overflows a float long after the maximum is reached: cap the
        # exponent instead of the result.
        exponent = min(failures, 64)
        base = min(self.maximum, self.initial * self.factor**exponent)
        return base * (1 - self.jitter * self.rng.random())
