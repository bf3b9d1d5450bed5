"""Tests of the node: real sockets on 127.0.0.1, port 0, bounded by ``trio.fail_after``."""
