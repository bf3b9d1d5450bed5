"""Kith test suite: protocol, node, client, integration and conformance tests."""
