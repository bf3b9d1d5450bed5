"""``kith user``: the administrator's account commands — add, list, passwd, deactivate.

They open the node's database file directly (``<data>/kith.db``) with the same accounts
service the node uses, so they work with the node stopped or running beside it: SQLite's WAL
lets both write, and the node checks ``deactivated`` on every login and authenticate and
re-checks its signed-in connections every ``session_check_interval_s`` (``[accounts]``).
User ids take the server name and the password cost from the data folder's ``kith.toml``.

Passwords come from ``--password-file`` (its first line ending is dropped) or are asked for
twice on the terminal, hidden. Errors end in one ``Error: ...`` line and exit code 1.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TypeVar

import click
import trio

from node.app import DATABASE_FILE_NAME
from node.config import DEFAULT_DATA_DIR, ConfigError, NodeConfig, load_config
from node.services.accounts import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, Accounts, User
from node.storage.db import Database
from protocol import ProtocolError, parse_user_id

__all__ = ["user"]

T = TypeVar("T")


def _data_option() -> click.Option:
    return click.Option(
        ["--data", "data_dir"],
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_DATA_DIR,
        show_default=True,
        help=f"The node's data folder (its database is {DATABASE_FILE_NAME} there).",
    )


def _password_file_option() -> click.Option:
    return click.Option(
        ["--password-file"],
        type=click.File("r", encoding="utf-8"),
        default=None,
        help="Read the password from this file ('-' for stdin) instead of asking for it.",
    )


def _config(data_dir: Path) -> NodeConfig:
    if not data_dir.is_dir():
        raise click.ClickException(
            f"data folder {data_dir} does not exist (create it with: kith init --data {data_dir})"
        )
    try:
        return load_config(data_dir)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _check_name(config: NodeConfig, name: str) -> str:
    """The user id for ``name``, before asking for a password that would be wasted."""
    try:
        return str(parse_user_id(f"@{name}:{config.server_name}"))
    except ProtocolError:
        raise click.ClickException(
            f"{name!r} is not a valid user name: 1-64 of a-z 0-9 . _ = -"
        ) from None


def _read_password(password_file: IO[str] | None) -> str:
    if password_file is not None:
        text = password_file.read()
        password = text.removesuffix("\n").removesuffix("\r")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, type=str)
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise click.ClickException(
            f"a password has {MIN_PASSWORD_CHARS}-{MAX_PASSWORD_CHARS:,} characters"
        )
    return password


def _with_accounts(config: NodeConfig, job: Callable[[Accounts], Awaitable[T]]) -> T:
    """Run ``job`` on the node's accounts; protocol and database errors become one line."""

    async def main() -> T:
        db = await Database.open(
            config.data_dir / DATABASE_FILE_NAME, synchronous=config.storage_synchronous
        )
        try:
            accounts = Accounts(db, config.server_name, password_cost=config.password_cost)
            stranger = await accounts.check_server_name()
            if stranger is not None:
                raise click.ClickException(
                    f"the database holds {stranger}, but the server name is"
                    f" {config.server_name!r}: set [server] name in kith.toml"
                )
            return await job(accounts)
        finally:
            await db.aclose()

    try:
        return trio.run(main)
    except ProtocolError as exc:
        raise click.ClickException(exc.message) from None
    except sqlite3.Error as exc:
        raise click.ClickException(
            f"database {config.data_dir / DATABASE_FILE_NAME}: {exc}"
        ) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def user() -> None:
    """Manage the node's user accounts (also while the node runs)."""


@user.command(params=[_data_option(), _password_file_option()])
@click.argument("name")
@click.option("--admin", is_flag=True, help="Make the user an administrator of the node.")
def add(data_dir: Path, password_file: IO[str] | None, name: str, admin: bool) -> None:
    """Create the user NAME (the part before ':' of @NAME:server).

    Asks for the password twice unless --password-file is given.
    """
    config = _config(data_dir)
    _check_name(config, name)
    password = _read_password(password_file)
    user_id = _with_accounts(config, lambda a: a.create_user(name, password, admin=admin))
    click.echo(f"Created {'administrator' if admin else 'user'} {user_id}")


def _format_ts(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _table(users: list[User]) -> list[str]:
    rows = [("USER", "ADMIN", "STATUS", "DEVICES", "CREATED")]
    rows += [
        (
            u.user_id,
            "yes" if u.admin else "no",
            "deactivated" if u.deactivated else "active",
            str(u.devices),
            _format_ts(u.created_ts),
        )
        for u in users
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


@user.command("list", params=[_data_option()])
def list_users(data_dir: Path) -> None:
    """List every user: admin, active or deactivated, devices, created."""
    config = _config(data_dir)
    users = _with_accounts(config, lambda a: a.users())
    if not users:
        click.echo("No users yet (add one with: kith user add NAME).")
        return
    for line in _table(users):
        click.echo(line)


@user.command(params=[_data_option(), _password_file_option()])
@click.argument("name")
@click.option(
    "--revoke-devices",
    is_flag=True,
    help="Also sign out all the user's devices (when the old password may be known).",
)
def passwd(data_dir: Path, password_file: IO[str] | None, name: str, revoke_devices: bool) -> None:
    """Set a new password for the user NAME.

    The user's devices stay signed in unless --revoke-devices is given.
    """
    config = _config(data_dir)
    user_id = _check_name(config, name)
    password = _read_password(password_file)
    revoked = _with_accounts(
        config, lambda a: a.change_password(name, password, revoke_devices=revoke_devices)
    )
    click.echo(f"Changed the password of {user_id}")
    if revoke_devices:
        click.echo(f"Revoked {revoked} device(s)")


@user.command(params=[_data_option()])
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def deactivate(data_dir: Path, name: str, yes: bool) -> None:
    """Deactivate the user NAME for good: no login, every device signed out.

    There is no undo, and the name is never given to anyone else.
    """
    config = _config(data_dir)
    user_id = _check_name(config, name)
    if not yes:
        click.confirm(f"Deactivate {user_id} for good?", abort=True)
    result = _with_accounts(config, lambda a: a.deactivate(name))
    if result.already:
        click.echo(f"{user_id} was already deactivated")
        return
    click.echo(f"Deactivated {user_id}; signed out {len(result.device_ids)} device(s)")
