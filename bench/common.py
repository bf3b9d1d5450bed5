"""Shared helpers for benchmarks: timing loops and JSON rows."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any


def emit(row: dict[str, Any]) -> None:
    """Print one JSON row with the machine context every row carries."""
    context = {
        "python": platform.python_version(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    print(json.dumps({**row, **context}, sort_keys=True), flush=True)


def rate(operation: Callable[[], object], *, seconds: float = 2.0, rounds: int = 5) -> float:
    """Best-of-``rounds`` operations per second of ``operation`` over about ``seconds``.

    The best round is reported because interference (other processes, GC) only ever makes
    a round slower; the best round is the closest to what the code itself costs.
    """
    batch = 1
    while True:  # calibrate a batch that takes at least 10 ms
        start = time.perf_counter()
        for _ in range(batch):
            operation()
        if time.perf_counter() - start >= 0.01:
            break
        batch *= 2
    best = 0.0
    per_round = seconds / rounds
    for _ in range(rounds):
        done = 0
        start = time.perf_counter()
        while time.perf_counter() - start < per_round:
            for _ in range(batch):
                operation()
            done += batch
        best = max(best, done / (time.perf_counter() - start))
    return best
