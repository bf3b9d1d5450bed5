"""Kith's error codes and the two exception types every protocol failure is raised as.

Errors are split by who is at fault (spec/wire.md §6):

* ``RemoteProtocolError`` — bytes or objects that arrived from elsewhere break the protocol
  (a peer, a client, a file). The receiver answers with an error frame carrying ``code``.
* ``LocalProtocolError`` — our own caller asked for something the protocol cannot express
  (encoding a float, signing with a malformed key id). That is a bug on our side.

Both carry a stable :class:`ErrorCode`; the message is for humans and may change.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ErrorCode",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
]


class ErrorCode(StrEnum):
    """Stable, machine-readable error codes (spec/wire.md §6). Never renumbered or reused."""

    BAD_JSON = "bad_json"
    """Not JSON of Kith's data model: syntax, floats, big integers, duplicate keys, bad UTF-8."""
    TOO_LARGE = "too_large"
    """A size or count limit was exceeded (document, frame, event, string, list)."""
    BAD_FRAME = "bad_frame"
    """Valid JSON, but not a valid frame envelope (spec/wire.md §2)."""
    UNKNOWN_OP = "unknown_op"
    """The op is not defined for this socket."""
    BAD_PARAMS = "bad_params"
    """The op is known but its params do not match its schema."""
    BAD_IDENTIFIER = "bad_identifier"
    """A server name, user, room, event, device or key id is malformed (spec/ids.md)."""
    BAD_BASE64 = "bad_base64"
    """Not unpadded, canonical base64 of the expected alphabet (spec/signing.md §1)."""
    BAD_KEY = "bad_key"
    """Key material of the wrong length."""
    BAD_EVENT = "bad_event"
    """An event's fields do not match spec/events.md §2."""
    MISSING_SIGNATURE = "missing_signature"
    """The required entity did not sign the object."""
    UNKNOWN_KEY = "unknown_key"
    """Signed, but only with keys the verifier does not know (fetch them, then retry)."""
    BAD_SIGNATURE = "bad_signature"
    """A signature by a known key does not verify."""
    NOT_AUTHENTICATED = "not_authenticated"
    """The request needs a connection bound to a device (spec/client.md §1)."""
    BAD_CREDENTIALS = "bad_credentials"
    """Unknown user, wrong password, or an access token that is not (or no longer) valid."""
    USER_DEACTIVATED = "user_deactivated"
    """The account was deactivated by the node's administrator."""
    REGISTRATION_CLOSED = "registration_closed"
    """The node does not register accounts this way (mode, or a wrong token)."""
    USER_EXISTS = "user_exists"
    """The user name is taken."""
    NOT_FOUND = "not_found"
    """No such room, event, device or user here."""
    FORBIDDEN = "forbidden"
    """The request is understood and refused for this user (not a rule of the room)."""
    RATE_LIMITED = "rate_limited"
    """Too many requests on this connection; slow down and retry."""
    TOO_MANY_CONNECTIONS = "too_many_connections"
    """The user or the node has as many connections as it allows."""
    CLOCK_SKEW = "clock_skew"
    """A signed statement's time is too far from the receiver's clock (spec/federation.md §2.2)."""
    UNREACHABLE = "unreachable"
    """Another node could not be asked: no link to it, or no answer in time."""
    BAD_MESSAGE = "bad_message"
    """An encrypted message or sealed state does not parse or authenticate (spec/e2ee.md)."""
    INTERNAL_ERROR = "internal_error"
    """The receiver failed; the request may be retried."""


class ProtocolError(Exception):
    """Base of every error the protocol layer raises; carries a stable ``code``.

    The code is an :class:`ErrorCode`, or — when a room's rules refuse an action — one of
    the reason codes of spec/rooms.md §7 (``protocol.rooms.RejectReason``).
    """

    def __init__(self, code: StrEnum, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message


class RemoteProtocolError(ProtocolError):
    """Input that came from elsewhere violates the protocol (answer with ``code``)."""


class LocalProtocolError(ProtocolError):
    """Our caller asked for something the protocol cannot express."""
