"""Structured logs: one logfmt line per event on stderr.

A line reads ``ts=2026-11-26T23:05:23.123Z level=info event=listening port=7447 ...``:
the UTC time to the millisecond, the level, a short ``snake_case`` event name, then the
event's fields in the order they were given. Values that hold spaces, quotes, ``=``,
backslashes or control characters (or are empty) are written as JSON strings, so every
line stays one line and parses back unambiguously. A traceback rides along as the quoted
``traceback`` field of its event.

Lines are machine-read: the conformance suite starts ``kith serve --port 0`` and takes the
bound port from the ``event=listening`` line, so each line is flushed as it is written.
Never pass a secret (a seed, a token) as a field.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Final, TextIO

__all__ = [
    "LEVELS",
    "ROOT_LOGGER",
    "EventLog",
    "LogfmtFormatter",
    "configure_logging",
    "format_value",
    "get_log",
]

ROOT_LOGGER: Final = "node"
"""Every module of the node logs below this logger name."""

LEVELS: Final[Mapping[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

_FIELDS_ATTR: Final = "kith_fields"
_NEEDS_QUOTES: Final = frozenset(' "=\\') | frozenset(map(chr, range(0x20))) | {"\x7f"}


def format_value(value: object) -> str:
    """One logfmt value: bare when that is unambiguous, else a JSON string literal."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, Enum):
        text = str(value.value)
    else:
        text = str(value)
    if text and _NEEDS_QUOTES.isdisjoint(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _timestamp(created: float) -> str:
    moment = datetime.fromtimestamp(created, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class LogfmtFormatter(logging.Formatter):
    """Render a record as ``ts=... level=... event=... key=value ...`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
        }
        extra = getattr(record, _FIELDS_ATTR, None)
        if isinstance(extra, dict):
            fields["event"] = record.msg
            # A field named like one of the line's own keeps both: ``ts`` stays the time.
            fields.update({(f"{k}_" if k in fields else k): v for k, v in extra.items()})
        else:
            # A record from plain ``logging`` calls (a library below us): keep its text.
            fields["event"] = "log"
            fields["logger"] = record.name
            fields["message"] = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            fields["error"] = f"{type(error).__name__}: {error}"
            lines = traceback.format_exception(*record.exc_info)
            fields["traceback"] = "".join(lines).rstrip("\n")
        return " ".join(f"{key}={format_value(value)}" for key, value in fields.items())


class EventLog:
    """Log named events with fields: ``log.info("listening", port=7447)``."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    @property
    def name(self) -> str:
        """The underlying ``logging`` logger's name."""
        return self._logger.name

    def is_enabled_for(self, level: int) -> bool:
        """Whether an event at ``level`` would be written (skip costly fields otherwise)."""
        return self._logger.isEnabledFor(level)

    def _log(self, level: int, event: str, fields: dict[str, object], exc_info: bool) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(
                level, event, exc_info=exc_info, extra={_FIELDS_ATTR: fields}, stacklevel=3
            )

    def debug(self, event: str, **fields: object) -> None:
        """Detail for whoever is debugging; off by default."""
        self._log(logging.DEBUG, event, fields, False)

    def info(self, event: str, **fields: object) -> None:
        """A change an operator wants to see: listening, stopped, a key created."""
        self._log(logging.INFO, event, fields, False)

    def warning(self, event: str, **fields: object) -> None:
        """Something is off but the node carries on."""
        self._log(logging.WARNING, event, fields, False)

    def error(self, event: str, **fields: object) -> None:
        """A failure the node survived; someone should look."""
        self._log(logging.ERROR, event, fields, False)

    def exception(self, event: str, **fields: object) -> None:
        """An ``error`` carrying the exception being handled and its traceback."""
        self._log(logging.ERROR, event, fields, True)


def get_log(name: str) -> EventLog:
    """The event log for module ``name`` (pass ``__name__``)."""
    return EventLog(name)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time, flushing every line."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)  # StreamHandler.emit flushes after each record


def configure_logging(level: str = "info") -> None:
    """Send the node's events at ``level`` and above to stderr as logfmt lines.

    Idempotent: calling it again replaces the handler instead of adding a second one.
    Libraries' own loggers are left alone (their warnings still reach stderr through
    ``logging``'s last-resort handler).
    """
    logger = logging.getLogger(ROOT_LOGGER)
    for handler in list(logger.handlers):
        if isinstance(handler, _StderrHandler):
            logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(LogfmtFormatter())
    logger.addHandler(handler)
    logger.setLevel(LEVELS[level])
    logger.propagate = False
