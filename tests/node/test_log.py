"""Structured logs: one parseable logfmt line per event, flushed to stderr."""

from __future__ import annotations

import logging
import re
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.log import LogfmtFormatter, configure_logging, format_value, get_log
from protocol import Endpoint
from tests.node.logfmt import parse_logfmt

_LINE_START = re.compile(r"^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(\w+) event=(\w+)")


def _record(event: str, level: int = logging.INFO, /, **fields: object) -> logging.LogRecord:
    record = logging.LogRecord("node.test", level, __file__, 1, event, None, None)
    record.kith_fields = fields
    return record


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("listening", "listening"),
        (7447, "7447"),
        ("ws://127.0.0.1:7447", "ws://127.0.0.1:7447"),
        ("/client,/federation", "/client,/federation"),
        ("two words", '"two words"'),
        ("", '""'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a=b", '"a=b"'),
        ("line\nbreak", '"line\\nbreak"'),
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (Endpoint.FEDERATION, "federation"),
        ("ünïcode", "ünïcode"),
    ],
)
def test_values_are_bare_unless_quoting_is_needed(value: object, text: str) -> None:
    assert format_value(value) == text


def test_line_starts_with_utc_millisecond_time_level_and_event() -> None:
    line = LogfmtFormatter().format(_record("listening", port=7447, host="127.0.0.1"))
    match = _LINE_START.match(line)
    assert match is not None, line
    assert match.groups() == ("info", "listening")
    assert line.endswith(" port=7447 host=127.0.0.1")


def test_timestamp_is_utc_with_milliseconds() -> None:
    record = _record("stopped")
    record.created = 1795734323.1234  # 2026-11-26T23:05:23.123Z
    line = LogfmtFormatter().format(record)
    assert line.startswith("ts=2026-11-26T23:05:23.123Z level=info event=stopped")


def test_exception_is_logged_on_one_line_with_its_traceback() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = _record("handler_failed", logging.ERROR, op="ping")
        record.exc_info = sys.exc_info()
    line = LogfmtFormatter().format(record)
    assert "\n" not in line
    fields = parse_logfmt(line)
    assert fields["level"] == "error"
    assert fields["error"] == "RuntimeError: boom"
    assert fields["traceback"].startswith("Traceback (most recent call last):\n")
    assert fields["traceback"].endswith("RuntimeError: boom")


def test_records_from_plain_logging_keep_their_message() -> None:
    record = logging.LogRecord(
        "trio-websocket", logging.WARNING, __file__, 1, "odd %s", ("x",), None
    )
    fields = parse_logfmt(LogfmtFormatter().format(record))
    assert fields["event"] == "log"
    assert fields["logger"] == "trio-websocket"
    assert fields["message"] == "odd x"


_KEYS = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True).filter(
    lambda key: key not in {"ts", "level", "event"}
)


@given(st.dictionaries(_KEYS, st.text(), max_size=6))
def test_any_fields_read_back_unchanged(fields: dict[str, str]) -> None:
    line = LogfmtFormatter().format(_record("probe", **fields))
    assert "\n" not in line
    parsed = parse_logfmt(line)
    assert parsed.pop("event") == "probe"
    assert parsed.pop("level") == "info"
    parsed.pop("ts")
    assert parsed == fields


def test_configured_logging_writes_flushed_lines_to_stderr_at_or_above_the_level(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info")
    configure_logging("info")  # idempotent: still one line per event
    log = get_log("node.test")
    log.debug("hidden", detail=1)
    log.info("shown", port=1)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert parse_logfmt(err[0])["event"] == "shown"


def test_debug_level_shows_debug_events(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug")
    get_log("node.test").debug("detail", conn=3)
    (line,) = capsys.readouterr().err.splitlines()
    assert parse_logfmt(line)["conn"] == "3"


def test_a_field_named_like_the_line_s_own_keys_does_not_replace_them() -> None:
    line = LogfmtFormatter().format(_record("pinned", ts=1795749219471, level="x", event="y"))
    assert _LINE_START.match(line) is not None
    fields = parse_logfmt(line)
    assert (fields["event"], fields["level"]) == ("pinned", "info")
    assert (fields["ts_"], fields["level_"], fields["event_"]) == ("1795749219471", "x", "y")
