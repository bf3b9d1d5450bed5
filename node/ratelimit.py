"""Requests per connection: a token bucket (spec/client.md §7, ``rate_limited``).

A bucket holds up to ``burst`` tokens and gains ``rate`` tokens a second; each request takes
one, and a request that finds the bucket empty is refused without effect. So a client may
send ``burst`` requests at once, then ``rate`` a second for as long as it likes. Time is
``trio.current_time()``: tests drive the bucket with trio's ``MockClock``.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

__all__ = ["RateLimit", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The settings of every connection's bucket."""

    rate: float
    """Tokens gained per second."""
    burst: int
    """Most tokens a bucket holds: the longest run of requests sent at once."""

    def __post_init__(self) -> None:
        if not self.rate > 0 or self.burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")

    def bucket(self) -> TokenBucket:
        """A full bucket for a new connection."""
        return TokenBucket(self)


class TokenBucket:
    """One connection's allowance of requests."""

    __slots__ = ("_limit", "_tokens", "_updated")

    def __init__(self, limit: RateLimit) -> None:
        self._limit = limit
        self._tokens = float(limit.burst)
        self._updated = trio.current_time()

    @property
    def tokens(self) -> float:
        """Requests that would be allowed right now (fractional between refills)."""
        self._refill()
        return self._tokens

    def _refill(self) -> None:
        now = trio.current_time()
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self._limit.burst), self._tokens + elapsed * self._limit.rate)
        self._updated = now

    def take(self) -> bool:
        """Spend one token if there is one; False (and nothing spent) when empty."""
        # _refill inlined: this runs on every request of every client connection.
        now = trio.current_time()
        limit = self._limit
        tokens = self._tokens + max(0.0, now - self._updated) * limit.rate
        self._updated = now
        if tokens > limit.burst:
            tokens = float(limit.burst)
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True
