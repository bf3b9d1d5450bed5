"""``wss://``: the library speaks TLS when the URL says so, and checks the certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trio

import client
from node.app import serve_node
from tests.client.helpers import TIMEOUT, caught_up, signed_up, updates_until
from tests.node.session_client import node_config
from tests.node.test_tls import make_certificate


async def test_a_session_over_wss_with_a_trusted_certificate(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    certificate = make_certificate(tmp_path / "tls")
    config = node_config(tmp_path, tls_cert=certificate.cert, tls_key=certificate.key)
    port = await nursery.start(serve_node, config)
    url = f"wss://127.0.0.1:{port}"
    trusting = ssl.create_default_context(cafile=str(certificate.cert))
    with trio.fail_after(TIMEOUT):
        async with signed_up(url, "alice", ssl_context=trusting) as alice:
            room_id = await alice.create_room(name="secure")
            await alice.send(room_id, "über TLS 🔒")
            seen = await updates_until(alice.sync(), caught_up)
            assert any(
                isinstance(u, client.EventItem) and u.event.body == "über TLS 🔒" for u in seen
            )
        with pytest.raises(client.ConnectError, match="certificate"):
            async with client.connect(url):  # the system's trust store does not know it
                pass
