"""Reconnection delays: exponential, capped, jittered — and the same for the same seed."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.backoff import Backoff


def test_the_same_seed_gives_the_same_delays() -> None:
    first = Backoff(rng=random.Random(3))
    second = Backoff(rng=random.Random(3))
    assert [first.delay(n) for n in range(10)] == [second.delay(n) for n in range(10)]


def test_delays_double_until_the_maximum_without_jitter() -> None:
    backoff = Backoff(initial=0.5, maximum=10.0, jitter=0.0)
    assert [backoff.delay(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


@given(failures=st.integers(min_value=0, max_value=10_000), seed=st.integers())
def test_a_jittered_delay_stays_within_its_share_of_the_base(failures: int, seed: int) -> None:
    backoff = Backoff(initial=0.5, maximum=30.0, jitter=0.5, rng=random.Random(seed))
    base = min(30.0, 0.5 * 2.0 ** min(failures, 64))
    assert base * 0.5 <= backoff.delay(failures) <= base


@pytest.mark.parametrize(
    "settings",
    [
        {"initial": 0.0},
        {"initial": 5.0, "maximum": 1.0},
        {"factor": 0.5},
        {"jitter": 1.5},
    ],
)
def test_nonsense_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(**settings)  # type: ignore[arg-type]
