"""``kith conformance``: check a node against the spec with the conformance suite.

Runs ``tests/conformance`` of this source tree against a node URL (``--registration-token``
lets the client protocol tests make users and rooms; ``--server-name`` tells the federation
tests, which act as a fake peer node, whom they are talking to; ``--peer-listen`` and
``--peer-name`` give the fake peer an address the node can dial, for the tests of the links
the node opens itself) and writes one JSON line per test. The suite needs the test
dependencies (``make test`` installs them).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

__all__ = ["conformance"]

SUITE = Path(__file__).resolve().parents[1] / "tests" / "conformance"


@click.command()
@click.argument("url")
@click.option("--registration-token", help="The node's registration token (mode 'token').")
@click.option(
    "--server-name",
    help="The node's server name, for the federation tests "
    "(default: read from a user registered with the token).",
)
@click.option(
    "--peer-listen",
    metavar="HOST:PORT",
    help="Where a fake peer listens for the links the node opens itself. Add "
    '`"<peer name>" = "HOST:PORT"` to the node\'s [peers] first; without this option '
    "those tests do not run.",
)
@click.option(
    "--peer-name",
    metavar="NAME",
    help="The fake peer's server name, as the node's [peers] maps it "
    "(default: peer.conformance.test).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("conformance.jsonl"),
    show_default=True,
    help="Where to write the results, one JSON line per test.",
)
def conformance(
    url: str,
    *,
    registration_token: str | None,
    server_name: str | None,
    peer_listen: str | None,
    peer_name: str | None,
    output: Path,
) -> None:
    """Check the node at URL (ws://host:port) against spec/ and spec/vectors.

    Exit code 0 when every test passed, 1 otherwise.
    """
    if not SUITE.is_dir():
        raise click.ClickException("the conformance suite ships with Kith's source tree")
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(SUITE),
        "-q",
        "-p",
        "tests.conformance.jsonl",
        "--jsonl",
        str(output),
        "--node-url",
        url,
        "-o",
        "addopts=",
    ]
    if registration_token:
        command += ["--registration-token", registration_token]
    if server_name:
        command += ["--server-name", server_name]
    if peer_listen:
        command += ["--peer-listen", peer_listen]
    if peer_name:
        command += ["--peer-name", peer_name]
    code = subprocess.call(command, cwd=SUITE.parents[1])
    click.echo(f"results: {output}")
    sys.exit(0 if code == 0 else 1)
