"""``kith key``: the administrator's signing key commands — show and rotate.

``show`` prints the key object the node publishes to its peers (spec/federation.md §1.1),
made now, as one line of canonical JSON. ``rotate`` makes a new signing key that the node
takes when it next starts, retiring the current one then and keeping its seed to co-sign
every later key object (§1.4).

Both read the key file (``<data>/signing.key``) directly, so they work with the node
stopped or running. Errors end in one ``Error: ...`` line and exit code 1.
"""

from __future__ import annotations

from pathlib import Path

import click

from node.clock import now_ms as _now_ms
from node.config import DEFAULT_DATA_DIR, ConfigError, load_config
from node.keys import KEY_FILE_NAME, KeyFileError, load_keyring, prepare_rotation
from protocol import encode_canonical_json

__all__ = ["key"]


def _data_option() -> click.Option:
    return click.Option(
        ["--data", "data_dir"],
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_DATA_DIR,
        show_default=True,
        help=f"The node's data folder (its signing keys are in {KEY_FILE_NAME} there).",
    )


def _check_key_file(data_dir: Path) -> Path:
    """The key file's path, or a one-line error saying how to create it."""
    if not data_dir.is_dir():
        raise click.ClickException(
            f"data folder {data_dir} does not exist (create it with: kith init --data {data_dir})"
        )
    path = data_dir / KEY_FILE_NAME
    if not path.exists():
        raise click.ClickException(
            f"no signing key in {data_dir} (create one with: kith init --data {data_dir})"
        )
    return path


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def key() -> None:
    """Show or rotate the node's signing keys (spec/federation.md §1)."""


@key.command(params=[_data_option()])
def show(data_dir: Path) -> None:
    """Print the node's key object, as peers receive it, on one line.

    The object is canonical JSON made now, signed by the current key and by every retired
    key whose seed the node keeps. The server name comes from the data folder's kith.toml.
    """
    path = _check_key_file(data_dir)
    try:
        server_name = load_config(data_dir).server_name
        ring = load_keyring(path)
    except (ConfigError, KeyFileError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(encode_canonical_json(ring.key_object(server_name, _now_ms())).decode())


@key.command(params=[_data_option()])
def rotate(data_dir: Path) -> None:
    """Make a new signing key, for the node to take when it next starts.

    A running node goes on signing with its current key; when it starts again it takes the
    new key and retires the current one at that moment (the retired key stays in the key
    file with its seed: every later key object lists it with its retirement time and is
    co-signed by it, so peers that pinned the old object accept the new one); restart the
    node to rotate now.
    """
    _check_key_file(data_dir)
    try:
        ring = prepare_rotation(data_dir)
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from None
    assert ring.next is not None
    click.echo(f"New key id:     {ring.next.key_id}")
    click.echo(f"public key:     {ring.next.public_key}")
    click.echo(f"Current key id: {ring.current.key_id} (retired when the node next starts)")
    click.echo(
        "The node takes the new key when it starts: restart it to rotate now. Until then it"
        " signs with the current key, which stays valid."
    )
