"""Benchmarks: one script per scenario, each printing JSON rows (never timed asserts)."""
