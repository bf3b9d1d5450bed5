"""A pytest plugin writing one JSON line per conformance test: what ``kith conformance``
reports. Use with ``-p tests.conformance.jsonl --jsonl FILE``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

_output: list[Path] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--jsonl FILE``: where the results go."""
    parser.addoption("--jsonl", default=None, help="write one JSON line per test to this file")


def pytest_configure(config: pytest.Config) -> None:
    """Start an empty results file."""
    path = config.getoption("--jsonl")
    if path:
        _output[:] = [Path(path)]
        _output[0].write_text("", encoding="utf-8")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """One line per test: its call, or a setup or teardown that did not pass."""
    if not _output or not (report.when == "call" or report.outcome != "passed"):
        return
    line: dict[str, Any] = {
        "test": report.nodeid,
        "outcome": report.outcome,
        "phase": report.when,
        "seconds": round(report.duration, 4),
    }
    if report.outcome != "passed":
        line["message"] = str(report.longrepr)[-2000:]
    with _output[0].open("a", encoding="utf-8") as out:
        out.write(json.dumps(line, sort_keys=True) + "\n")
