"""Unit and property tests of the pure protocol core."""
