"""The reference Kith client library and terminal client (spec/client.md)."""
