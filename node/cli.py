"""The ``kith`` command: ``kith init`` prepares a data folder, ``kith serve`` runs a node,
``kith user ...`` manages accounts (``node.cli_users``).

``serve`` is the default job: ``kith`` alone serves with the built-in defaults, and
``kith --port 8000`` means ``kith serve --port 8000``. Every setting has a default, so no
configuration file is needed; ``<data folder>/kith.toml`` changes any of them
(``kith.example.toml`` documents each), and ``serve``'s options override the file. Errors a
user can fix (a corrupt key file, a port in use, a bad setting) end in one ``Error: ...``
line and exit code 1, never a traceback.
"""

from __future__ import annotations

import signal
from pathlib import Path

import click
import trio

import protocol
from client.cli import CLIENT_COMMANDS
from node.app import serve_node
from node.cli_conformance import conformance
from node.cli_keys import key
from node.cli_users import user
from node.config import (
    CONFIG_FILE_NAME,
    DEFAULT_DATA_DIR,
    DEFAULT_HOST,
    DEFAULT_PORT,
    ConfigError,
    NodeConfig,
    load_config,
)
from node.demo import demo
from node.keys import KEY_FILE_NAME, KeyFileError, NodeKey, load_or_create_key
from node.log import LEVELS, configure_logging, get_log
from node.transport.tls import TLSError
from node.transport.websocket import ListenError

__all__ = ["cli", "main"]

log = get_log(__name__)

_DEFAULT_COMMAND = "serve"
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _DefaultGroup(click.Group):
    """A group that runs ``serve`` when no command is named (Datasette's pattern)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        own = {name for param in self.get_params(ctx) for name in param.opts}
        if not args or (args[0].startswith("-") and args[0] not in own):
            args = [_DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


def _data_option() -> click.Option:
    return click.Option(
        ["--data", "data_dir"],
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_DATA_DIR,
        show_default=True,
        help=(
            f"Data folder: holds the node's signing key ({KEY_FILE_NAME}), its database and"
            f" its optional settings file ({CONFIG_FILE_NAME})."
        ),
    )


def _open_data_dir(data_dir: Path) -> tuple[NodeKey, bool]:
    try:
        return load_or_create_key(data_dir)
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(cls=_DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(protocol.__version__, prog_name="kith", message="%(prog)s %(version)s")
def cli() -> None:
    """Kith, a federated chat node.

    Run without a command to serve a node with the default settings
    (same as `kith serve`).
    """


@cli.command(params=[_data_option()])
def init(data_dir: Path) -> None:
    """Create the data folder and the node's signing key.

    Safe to run again: an existing key is kept, never replaced. Prints the key id and the
    public key, which peers pin to recognise this node.
    """
    key, created = _open_data_dir(data_dir)
    verb = "Created" if created else "Kept existing"
    click.echo(f"{verb} signing key in {data_dir / KEY_FILE_NAME}")
    click.echo(f"key id:     {key.key_id}")
    click.echo(f"public key: {key.public_key}")


_StartError = KeyFileError | ListenError | TLSError | ConfigError


@cli.command(params=[_data_option()])
@click.option(
    "--host",
    default=None,
    show_default=f"{DEFAULT_HOST}, or [listen] host",
    help="Address to listen on; 0.0.0.0 or :: to accept connections from other machines.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    show_default=f"{DEFAULT_PORT}, or [listen] port",
    help="TCP port to listen on; 0 picks a free one (see the event=listening log line).",
)
@click.option(
    "--server-name",
    default=None,
    show_default="localhost, or [server] name",
    help="The node's name: user ids are @name:<server name>. Keep it once users exist.",
)
@click.option(
    "--log-level",
    type=click.Choice(list(LEVELS)),
    default=None,
    show_default="info, or [log] level",
    help="Lowest level of the logfmt lines written to stderr.",
)
def serve(
    data_dir: Path,
    host: str | None,
    port: int | None,
    server_name: str | None,
    log_level: str | None,
) -> None:
    """Serve a node: WebSocket endpoints /client and /federation.

    Settings come from the data folder's kith.toml when there is one (see
    kith.example.toml); the options above override it. Creates the data folder and the
    signing key on first use, like `kith init`. Logs one logfmt line per event on stderr.
    Ctrl-C or SIGTERM stops it cleanly (exit code 0).
    """
    try:
        config = load_config(
            data_dir, host=host, port=port, server_name=server_name, log_level=log_level
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging(config.log_level)
    key, created = _open_data_dir(data_dir)
    if created:
        log.info("key_created", key_id=key.key_id, public_key=key.public_key)
    failure = trio.run(_serve_until_signalled, config)
    if failure is not None:
        raise click.ClickException(str(failure))
    log.info("stopped")


cli.add_command(user)
cli.add_command(key)
cli.add_command(conformance)
cli.add_command(demo)
for _command in CLIENT_COMMANDS:
    cli.add_command(_command)


async def _serve_until_signalled(config: NodeConfig) -> _StartError | None:
    """Serve until SIGINT or SIGTERM arrives, then stop every task of the node.

    Returns the error that kept the node from starting, if any, for a one-line message.
    """
    # The receiver exists before the node listens, so a signal sent as soon as
    # `event=listening` appears is always caught here rather than killing the process.
    with trio.open_signal_receiver(*_STOP_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:
            try:
                await nursery.start(serve_node, config)
            except (KeyFileError, ListenError, TLSError, ConfigError) as exc:
                return exc
            async for signum in signals:
                log.info("stopping", signal=signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
    return None


def main() -> None:
    """Entry point of the ``kith`` script and of ``python -m node``."""
    cli(prog_name="kith")
