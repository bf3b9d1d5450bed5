"""The node's wall clock, in the unit the protocol speaks: milliseconds since the epoch.

Services take a ``clock_ms`` callable defaulting to :func:`now_ms`, so tests can pass a
fake one; this is the one place that reads the real clock for them.
"""

from __future__ import annotations

import time

__all__ = ["now_ms"]


def now_ms() -> int:
    """Milliseconds since the Unix epoch (``origin_server_ts``, ``ts``, ``expired_ts``...)."""
    return time.time_ns() // 1_000_000
