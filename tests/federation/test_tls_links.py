"""Links over ``wss://``: a peer's certificate must be valid for its server name, whatever
address ``[peers]`` gives (spec/federation.md §2.1)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from node.app import serve_node
from node.config import ConfigError, NodeConfig
from tests.faultproxy import FaultProxy
from tests.node.chat_client import is_membership, is_message, items_until, say
from tests.node.session_client import Client
from tests.node.test_tls import Certificate, connect_tls, make_certificate

TIMEOUT = 20


@asynccontextmanager
async def user(port: int, name: str, trusted: Path) -> AsyncIterator[Client]:
    """A new user of the node at ``port``, over wss://."""
    context = ssl.create_default_context(cafile=str(trusted))
    async with connect_tls(port, context) as ws:
        connection = Client(ws)
        await connection.register(name)
        yield connection


async def start_tls_pair(
    nursery: trio.Nursery, tmp_path: Path, *, b_certificate_name: str
) -> tuple[int, int]:
    """Nodes a.test and b.test serving wss:// with certificates for their names (b's for
    ``b_certificate_name``), each trusting both certificates (``peers-ca.pem``); their ports."""
    certificates: dict[str, Certificate] = {
        "a": make_certificate(tmp_path / "tls-a", dns_names=("a.test",)),
        "b": make_certificate(tmp_path / "tls-b", dns_names=(b_certificate_name,)),
    }
    trusted = tmp_path / "peers-ca.pem"
    trusted.write_bytes(b"".join(c.cert.read_bytes() for c in certificates.values()))
    proxies = {letter: FaultProxy("127.0.0.1", 0) for letter in "ab"}
    for proxy in proxies.values():
        await nursery.start(proxy.serve)
    ports = []
    for letter, other in (("a", "b"), ("b", "a")):
        config = NodeConfig(
            host="127.0.0.1",
            port=0,
            data_dir=tmp_path / letter,
            server_name=f"{letter}.test",
            password_cost="min",
            registration_mode="open",
            tls_cert=certificates[letter].cert,
            tls_key=certificates[letter].key,
            federation_ca_file=trusted,
            peers={f"{other}.test": f"wss://127.0.0.1:{proxies[other].port}"},
        )
        port = await nursery.start(serve_node, config)
        proxies[letter].target_port = port
        ports.append(port)
    return ports[0], ports[1]


async def test_nodes_link_over_wss_when_certificates_name_the_servers(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        port_a, port_b = await start_tls_pair(nursery, tmp_path, b_certificate_name="b.test")
        trusted = tmp_path / "peers-ca.pem"
        async with user(port_a, "alice", trusted) as alice, user(port_b, "bob", trusted) as bob:
            await alice.result("sync")
            await bob.result("sync")
            room_id = (await alice.result("create_room", invite=["@bob:b.test"]))["room_id"]
            await items_until(bob, is_membership("@bob:b.test", "invite"))
            await bob.result("join", room_id=room_id)
            await items_until(alice, is_membership("@bob:b.test", "join"))
            await say(alice, room_id, "over TLS")
            await items_until(bob, is_message("over TLS"))


async def test_a_certificate_for_another_name_gets_no_link(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        # b's certificate is trusted and valid for 127.0.0.1 — the address a dials — but
        # names c.test, not b.test: a must not take it for b.
        port_a, _ = await start_tls_pair(nursery, tmp_path, b_certificate_name="c.test")
        async with user(port_a, "alice", tmp_path / "peers-ca.pem") as alice:
            room_id = (await alice.result("create_room"))["room_id"]
            code = await alice.error("invite", room_id=room_id, user_id="@bob:b.test")
            assert code == "not_found"


async def test_an_unreadable_ca_file_is_a_configuration_error(tmp_path: Path) -> None:
    config = NodeConfig(
        host="127.0.0.1",
        port=0,
        data_dir=tmp_path / "a",
        federation_ca_file=tmp_path / "missing.pem",
    )
    with pytest.raises(BaseExceptionGroup) as caught:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_node, config)
    assert caught.group_contains(ConfigError, match="ca_file", depth=None)
