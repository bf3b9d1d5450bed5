"""Suite-wide settings: deterministic property tests unless asked otherwise.

``HYPOTHESIS_PROFILE=explore`` runs the property tests with fresh random examples and more
of them; the default profile is derandomized so every run of the suite is the same run.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import trio.testing
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "explore",
    derandomize=False,
    deadline=None,
    max_examples=5000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_addoption(parser: Any) -> None:
    """Options of the conformance suite (tests/conformance)."""
    group = parser.getgroup("kith conformance")
    group.addoption(
        "--impl",
        default="tests.conformance.kith_adapter:ADAPTER",
        help="module:attribute of the implementation adapter the algorithm tests check",
    )
    group.addoption(
        "--registration-token",
        default=None,
        help="registration token of the node given by --node-url (its registration mode "
        "must be 'token'); the client protocol tests register their users with it",
    )
    group.addoption(
        "--node-url",
        default=None,
        help="ws:// or wss:// base URL of a running node to check; default: start one",
    )


@pytest.fixture
def network_clock() -> trio.testing.MockClock:
    """A fake clock for tests that talk over real sockets and wait for timeouts.

    It jumps to the next deadline only after every task has been blocked for 100 ms of real
    time — long after an in-process socket has delivered, or a database thread has answered
    even on a loaded machine — so real work never counts as idle time, while timeouts of
    seconds or minutes pass at once.
    """
    return trio.testing.MockClock(autojump_threshold=0.1)
