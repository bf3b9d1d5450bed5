"""What the client library raises, split by whose move it is next.

* :class:`ClientError` — the node answered a request with an error frame (spec/wire.md §2,
  §6). ``code`` is the stable code to act on (``not_found``, ``not_joined``, …); ``message``
  is for humans only. Params the library can check itself (the op's schema, spec/wire.md §5.2)
  are refused with the same codes before anything is sent.
* :class:`ConnectionLostError` — the connection dropped while a request that is not safe to
  repeat was in flight, so whether the node carried it out is unknown. Idempotent requests
  (reads, and ``send``/``redact``/``send_to_device`` with their transaction ids) are retried
  on the next connection instead, and raise this only when their answer was lost every
  time (``client.session.MAX_ATTEMPTS``).
* :class:`ConnectError` — the first connection of :func:`client.connect` could not be made.
* :class:`SessionClosedError` — the session was closed (or is closing): nothing more can be sent.

All four derive from :class:`KithClientError`, so an application can catch the family.
"""

from __future__ import annotations

from protocol import ErrorCode

__all__ = [
    "ClientError",
    "ConnectError",
    "ConnectionLostError",
    "KithClientError",
    "SessionClosedError",
]

SIGNED_OUT_CODES = frozenset({ErrorCode.BAD_CREDENTIALS.value, ErrorCode.USER_DEACTIVATED.value})
"""Answers to ``authenticate`` that mean the stored token is dead for good (client.md §2)."""


class KithClientError(Exception):
    """Base of every error the client library raises on purpose."""


class ClientError(KithClientError):
    """The node refused a request: ``code`` (spec/wire.md §6, rooms.md §7) and ``message``."""

    def __init__(self, code: str, message: str, *, op: str | None = None) -> None:
        super().__init__(f"{code}: {message}" if op is None else f"{op}: {code}: {message}")
        self.code = code
        self.message = message
        self.op = op


class ConnectionLostError(KithClientError):
    """The connection dropped before ``op`` was answered; its outcome is unknown."""

    def __init__(self, op: str) -> None:
        super().__init__(f"the connection dropped before {op!r} was answered")
        self.op = op


class ConnectError(KithClientError):
    """The node could not be reached (refused, unreachable, TLS or handshake failure)."""


class SessionClosedError(KithClientError):
    """The session is closed; open a new one with :func:`client.connect`."""
