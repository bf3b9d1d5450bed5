"""``wss://``: a node with a certificate serves its endpoints over TLS, for real, on loopback.

The certificate is made in the test with ``cryptography``: self-signed, for 127.0.0.1, and
the client trusts exactly it.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from trio_websocket import WebSocketConnection, wrap_client_stream

from node.app import serve_node
from node.cli import cli
from node.config import NodeConfig
from node.transport.tls import TLSError
from protocol import SUBPROTOCOL
from tests.node.session_client import Client, node_config
from tests.node.wsclient import TIMEOUT, call, ping


@dataclass(frozen=True)
class Certificate:
    """PEM files of a self-signed certificate for 127.0.0.1 and its key."""

    cert: Path
    key: Path


def _private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_certificate(
    folder: Path, *, key_password: bytes | None = None, dns_names: tuple[str, ...] = ()
) -> Certificate:
    """Write ``cert.pem`` and ``key.pem`` for 127.0.0.1 (and ``dns_names``) into ``folder``."""
    key = _private_key()
    # Certificates trusted together need distinct subjects (each is its own issuer).
    common_name = dns_names[0] if dns_names else "kith test node"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    *(x509.DNSName(name) for name in dns_names),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    paths = Certificate(folder / "cert.pem", folder / "key.pem")
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption()
        if key_password is None
        else serialization.BestAvailableEncryption(key_password)
    )
    paths.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return paths


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    """A fresh self-signed certificate in the test's folder."""
    return make_certificate(tmp_path / "tls")


def _trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))


@asynccontextmanager
async def connect_tls(
    port: int, context: ssl.SSLContext, path: str = "/client"
) -> AsyncIterator[WebSocketConnection]:
    """A ``wss://`` WebSocket to the node; the test owns (and closes) the TCP stream."""
    async with trio.open_nursery() as nursery:
        tcp = await trio.open_tcp_stream("127.0.0.1", port)
        stream = trio.SSLStream(tcp, context, server_hostname="127.0.0.1", https_compatible=True)
        async with stream:
            ws = await wrap_client_stream(
                nursery, stream, f"127.0.0.1:{port}", path, subprotocols=[SUBPROTOCOL]
            )
            try:
                yield ws
            finally:
                with trio.move_on_after(TIMEOUT):
                    await ws.aclose()


def _tls_config(tmp_path: Path, certificate: Certificate) -> NodeConfig:
    return node_config(tmp_path, tls_cert=certificate.cert, tls_key=certificate.key)


@pytest.mark.parametrize("path", ["/client", "/federation"])
async def test_node_with_a_certificate_answers_ping_over_wss(
    nursery: trio.Nursery, tmp_path: Path, certificate: Certificate, path: str
) -> None:
    port = await nursery.start(serve_node, _tls_config(tmp_path, certificate))
    with trio.fail_after(TIMEOUT):
        async with connect_tls(port, _trusting(certificate.cert), path) as ws:
            assert ws.subprotocol == SUBPROTOCOL
            assert await call(ws, ping(1)) == {"id": 1, "result": {}}


async def test_register_and_authenticate_work_over_wss(
    nursery: trio.Nursery, tmp_path: Path, certificate: Certificate
) -> None:
    port = await nursery.start(serve_node, _tls_config(tmp_path, certificate))
    context = _trusting(certificate.cert)
    with trio.fail_after(TIMEOUT):
        async with connect_tls(port, context) as ws:
            registered = await Client(ws).register("alice")
        async with connect_tls(port, context) as ws:
            result = await Client(ws).result(
                "authenticate", access_token=registered["access_token"]
            )
    assert result == {"user_id": "@alice:localhost", "device_id": registered["device_id"]}


async def test_listening_line_reports_a_wss_url(
    nursery: trio.Nursery,
    tmp_path: Path,
    certificate: Certificate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="node"):
        port = await nursery.start(serve_node, _tls_config(tmp_path, certificate))
    (listening,) = [r for r in caplog.records if r.msg == "listening"]
    assert listening.kith_fields["url"] == f"wss://127.0.0.1:{port}"  # type: ignore[attr-defined]


async def test_plain_websocket_to_a_tls_node_is_not_upgraded_and_tls_clients_are_served(
    nursery: trio.Nursery, tmp_path: Path, certificate: Certificate
) -> None:
    port = await nursery.start(serve_node, _tls_config(tmp_path, certificate))
    with trio.fail_after(TIMEOUT):
        async with await trio.open_tcp_stream("127.0.0.1", port) as plain:
            await plain.send_all(
                b"GET /client HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            # While the plain-text client waits (until the node's handshake timeout drops
            # it), TLS clients are served as usual.
            async with connect_tls(port, _trusting(certificate.cert)) as ws:
                assert await call(ws, ping(2)) == {"id": 2, "result": {}}
            received = b""
            with trio.move_on_after(0.2):
                while chunk := await plain.receive_some():
                    received += chunk
            assert b"HTTP/1.1 101" not in received


async def test_client_that_does_not_trust_the_certificate_fails_its_tls_handshake(
    nursery: trio.Nursery, tmp_path: Path, certificate: Certificate
) -> None:
    port = await nursery.start(serve_node, _tls_config(tmp_path, certificate))
    stranger = make_certificate(tmp_path / "other")
    with trio.fail_after(TIMEOUT):
        tcp = await trio.open_tcp_stream("127.0.0.1", port)
        stream = trio.SSLStream(tcp, _trusting(stranger.cert), server_hostname="127.0.0.1")
        async with stream:
            with pytest.raises(trio.BrokenResourceError) as raised:
                await stream.do_handshake()
    assert isinstance(raised.value.__cause__, ssl.SSLCertVerificationError)


async def test_missing_certificate_file_stops_the_start_with_tls_error(
    nursery: trio.Nursery, tmp_path: Path, certificate: Certificate
) -> None:
    config = node_config(tmp_path, tls_cert=tmp_path / "nope.pem", tls_key=certificate.key)
    with pytest.raises(TLSError, match=r"cannot read TLS file .*nope\.pem: not found"):
        await nursery.start(serve_node, config)


async def test_key_of_another_certificate_stops_the_start_with_tls_error(
    nursery: trio.Nursery, tmp_path: Path, certificate: Certificate
) -> None:
    other = make_certificate(tmp_path / "other")
    config = node_config(tmp_path, tls_cert=certificate.cert, tls_key=other.key)
    with pytest.raises(TLSError, match="cannot use TLS certificate"):
        await nursery.start(serve_node, config)


async def test_encrypted_key_is_refused_instead_of_prompting(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    locked = make_certificate(tmp_path / "locked", key_password=b"hunter22")
    config = node_config(tmp_path, tls_cert=locked.cert, tls_key=locked.key)
    with pytest.raises(TLSError, match="encrypted"):
        await nursery.start(serve_node, config)


def test_serve_with_an_unusable_certificate_fails_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "kith-data"
    data.mkdir()
    (data / "kith.toml").write_text(
        '[listen]\nport = 0\ntls_cert = "missing.pem"\ntls_key = "missing.key"\n'
    )
    result = CliRunner().invoke(cli, ["serve"], prog_name="kith")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert "missing.pem: not found" in line
