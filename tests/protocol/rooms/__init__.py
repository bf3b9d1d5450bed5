"""Tests of rooms: authorization, causal order and state resolution."""
