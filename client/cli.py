"""The client's commands: ``kith chat`` for people; ``login``, ``register``, ``logout``,
``send`` and ``tail`` for scripts.

Every command keeps the device in a store file (``--store``, or ``$KITH_STORE``; see
``client.store``), so a script logs in once and then sends and tails without a password.
``send`` and ``tail`` write JSON lines on stdout, one object per line with a ``kind``.
Exit codes mean the same thing for every command:

=====  ==========================================================================
0      done
1      the node refused the request (the error's code is on stderr), or the store
       file is unusable
2      bad command line (click's usage errors)
3      not logged in: no token in the store, or the node refused it (signed out)
4      the node cannot be reached, or the connection dropped mid-request
=====  ==========================================================================
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from enum import IntEnum
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
import trio

from client.chat import run_chat
from client.errors import ClientError, ConnectError, ConnectionLostError, SessionClosedError
from client.session import Session, connect
from client.store import Store, StoreError
from client.updates import (
    CaughtUp,
    EventItem,
    Limited,
    Receipt,
    Retraction,
    SignedOut,
    TypingChanged,
    Update,
)
from protocol import JsonObject

__all__ = ["CLIENT_COMMANDS", "ExitCode", "chat", "login", "logout", "register", "send", "tail"]

T = TypeVar("T")

DEFAULT_STORE = Path(click.get_app_dir("kith")) / "client.json"
_NOT_LOGGED_IN_CODES = frozenset({"not_authenticated", "bad_credentials", "user_deactivated"})


EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 refused by the node (the code is on stderr) or unusable store;"
    " 2 bad command line; 3 not logged in (or signed out); 4 node unreachable."
)
"""The epilog of every command's ``--help``."""


class ExitCode(IntEnum):
    """What a client command's exit status means (see the module docstring)."""

    OK = 0
    REFUSED = 1
    USAGE = 2
    NOT_LOGGED_IN = 3
    UNREACHABLE = 4


class CommandFailedError(click.ClickException):
    """An ``Error: ...`` line on stderr, and exit code 1: the node refused."""

    exit_code = ExitCode.REFUSED


class NotLoggedInError(CommandFailedError):
    """Exit code 3: no usable device in the store."""

    exit_code = ExitCode.NOT_LOGGED_IN


class UnreachableError(CommandFailedError):
    """Exit code 4: the node cannot be reached."""

    exit_code = ExitCode.UNREACHABLE


def _run(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main`` under trio, turning the library's errors into exit codes."""
    try:
        return trio.run(main)
    except (ConnectError, ConnectionLostError, SessionClosedError) as exc:
        raise UnreachableError(str(exc)) from None
    except ClientError as exc:
        failure = NotLoggedInError if exc.code in _NOT_LOGGED_IN_CODES else CommandFailedError
        raise failure(f"{exc.code}: {exc.message}") from None
    except StoreError as exc:
        raise CommandFailedError(str(exc)) from None


def _load_store(path: Path) -> Store:
    try:
        return Store.load(path)
    except StoreError as exc:
        raise CommandFailedError(str(exc)) from None


def _logged_in_store(path: Path) -> Store:
    store = _load_store(path)
    if not store.logged_in or store.url is None:
        raise NotLoggedInError(
            f"not logged in (no device in {path}): run `kith login URL USERNAME` first"
        )
    return store


def _require_login(session: Session) -> None:
    """The stored token was refused while connecting: say so with exit code 3."""
    if not session.logged_in:
        raise NotLoggedInError("the node no longer accepts this device's token: log in again")


def _emit(value: JsonObject) -> None:
    """One JSON line on stdout, UTF-8 as it is, flushed (a reader may be waiting)."""
    click.echo(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    sys.stdout.flush()


store_option = click.option(
    "--store",
    "store_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="KITH_STORE",
    default=DEFAULT_STORE,
    show_default=True,
    help="The device's store file (node URL, ids, token, stream cursor); $KITH_STORE.",
)


def _read_password(password_file: TextIO | None, *, confirm: bool) -> str:
    if password_file is not None:
        return password_file.readline().rstrip("\r\n")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    return value


def _username_default(store: Store) -> str | None:
    return store.user_id[1:].partition(":")[0] if store.user_id else None


# --- login, register, logout ------------------------------------------------------------------


def _account_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for decorate in reversed(
        (
            click.argument("url"),
            click.argument("username"),
            store_option,
            click.option(
                "--password-file",
                type=click.File("r"),
                help="Read the password from the first line of this file ('-': stdin)"
                " instead of prompting.",
            ),
            click.option(
                "--device-name", default="kith", show_default=True, help="The device's name."
            ),
        )
    ):
        function = decorate(function)
    return function


async def _sign_in(
    url: str, store: Store, username: str, password: str, device_name: str, *, register: bool
) -> Session:
    async with connect(url, store=store) as session:
        if register:
            await session.register(username, password, device_name=device_name)
        else:
            same_user = _username_default(store) == username and store.url == url
            device_id = store.device_id if same_user else None
            await session.login(username, password, device_id=device_id, device_name=device_name)
        return session


@click.command(epilog=EXIT_CODES_HELP)
@_account_options
def login(
    *, url: str, username: str, store_path: Path, password_file: TextIO | None, device_name: str
) -> None:
    """Log in to the node at URL as USERNAME and keep the device in the store.

    Logging in again as the same user keeps the same device (a new token for it). Exit
    code 3 if the user name or password is wrong.
    """
    store = _load_store(store_path)
    password = _read_password(password_file, confirm=False)
    session = _run(lambda: _sign_in(url, store, username, password, device_name, register=False))
    click.echo(f"logged in as {session.user_id} (device {session.device_id}); store {store_path}")


@click.command(epilog=EXIT_CODES_HELP)
@_account_options
@click.option("--registration-token", help="The node's registration token, if it asks for one.")
def register(
    *,
    url: str,
    username: str,
    store_path: Path,
    password_file: TextIO | None,
    device_name: str,
    registration_token: str | None,
) -> None:
    """Create the account USERNAME on the node at URL, log in, keep the device in the store.

    Exit code 1 if the node refuses (registration_closed, user_exists, bad_identifier).
    """
    store = _load_store(store_path)
    password = _read_password(password_file, confirm=password_file is None)

    async def main() -> Session:
        async with connect(url, store=store) as session:
            await session.register(
                username,
                password,
                registration_token=registration_token,
                device_name=device_name,
            )
            return session

    session = _run(main)
    click.echo(f"registered {session.user_id} (device {session.device_id}); store {store_path}")


@click.command(epilog=EXIT_CODES_HELP)
@store_option
def logout(*, store_path: Path) -> None:
    """End this device: the node revokes its token and the store forgets it."""
    store = _logged_in_store(store_path)

    async def main() -> None:
        async with connect(store=store) as session:
            _require_login(session)
            await session.logout()

    _run(main)
    click.echo("logged out")


# --- send and tail --------------------------------------------------------------------------


async def _room_id(session: Session, room: str) -> str:
    """A room id, or the id of the one joined room with that name."""
    if room.startswith("!"):
        return room
    named = [r.room_id for r in await session.rooms() if r.name == room and r.membership == "join"]
    if len(named) != 1:
        problem = "no joined room" if not named else f"{len(named)} joined rooms"
        raise CommandFailedError(f"{problem} named {room!r}: use the room id")
    return named[0]


@click.command(epilog=EXIT_CODES_HELP)
@store_option
@click.argument("room")
@click.argument("text")
def send(*, store_path: Path, room: str, text: str) -> None:
    """Send TEXT to ROOM (a room id, or the name of a joined room); '-' reads TEXT from stdin.

    Prints {"kind": "sent", "room_id": ..., "event_id": ...}. If the connection drops, the
    message is sent again with the same transaction id: it is never stored twice.
    """
    store = _logged_in_store(store_path)
    if text == "-":
        text = sys.stdin.read().removesuffix("\n")

    async def main() -> JsonObject:
        async with connect(store=store) as session:
            _require_login(session)
            room_id = await _room_id(session, room)
            event_id = await session.send(room_id, text)
            return {"kind": "sent", "room_id": room_id, "event_id": event_id}

    _emit(_run(main))


def _about_room(update: Update, room_id: str) -> bool:
    """Whether ``update`` concerns ``room_id`` (updates about no room always do)."""
    if isinstance(update, EventItem | Retraction | Receipt | TypingChanged):
        return update.room_id == room_id
    if isinstance(update, Limited):
        return room_id in update.rooms
    return True


@click.command(epilog=EXIT_CODES_HELP)
@store_option
@click.argument("room", required=False)
@click.option(
    "--until-caught-up", is_flag=True, help="Stop after the catch-up (the caught_up line)."
)
def tail(*, store_path: Path, room: str | None, until_caught_up: bool) -> None:
    """Print the device's stream as JSON lines: catch-up first, then live updates.

    Each line has a "kind": event, retraction, receipt, to_device, limited, caught_up,
    presence, typing, reconnecting or signed_out. With ROOM, only what concerns that room
    (and what concerns no room). Each line printed is acknowledged: the next run starts
    after it. Runs until Ctrl-C or SIGTERM (exit 0), or until the device is signed out
    (exit 3).
    """
    store = _logged_in_store(store_path)

    async def main() -> ExitCode:
        async with connect(store=store) as session:
            _require_login(session)
            room_id = await _room_id(session, room) if room is not None else None
            with _stop_signals() as signals:
                async with trio.open_nursery() as nursery:
                    if signals is not None:
                        nursery.start_soon(_cancel_on_signal, signals, nursery.cancel_scope)
                    code = await _print_stream(session, room_id, until_caught_up=until_caught_up)
                    nursery.cancel_scope.cancel()
                    return code
        return ExitCode.OK  # stopped by a signal

    code = _run(main)
    if code is ExitCode.NOT_LOGGED_IN:
        raise NotLoggedInError("this device was signed out")


def _stop_signals() -> AbstractContextManager[AsyncIterator[int] | None]:
    """SIGINT and SIGTERM, to stop cleanly — where trio can catch them (the main thread).

    Elsewhere (the command run from a worker thread, as tests do) whoever runs it stops it.
    """
    if threading.current_thread() is threading.main_thread():
        return trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
    return contextlib.nullcontext()


async def _cancel_on_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    async for _ in signals:
        scope.cancel()
        return


async def _print_stream(
    session: Session, room_id: str | None, *, until_caught_up: bool
) -> ExitCode:
    updates = session.sync()
    async for update in updates:
        if room_id is None or _about_room(update, room_id):
            _emit(update.to_json())
        updates.mark_processed()  # printed and flushed: the next run starts after it
        if isinstance(update, SignedOut):
            return ExitCode.NOT_LOGGED_IN
        if until_caught_up and isinstance(update, CaughtUp):
            await session.ack()
            return ExitCode.OK
    return ExitCode.OK


# --- chat -------------------------------------------------------------------------------------


@click.command(epilog=EXIT_CODES_HELP)
@store_option
@click.option("--url", help="The node's ws:// or wss:// URL (needed until the store has one).")
@click.option("--register", "new_account", is_flag=True, help="Create the account first.")
@click.option("--registration-token", help="The node's registration token, if it asks for one.")
@click.option("--device-name", default="kith chat", show_default=True, help="The device's name.")
def chat(
    *,
    store_path: Path,
    url: str | None,
    new_account: bool,
    registration_token: str | None,
    device_name: str,
) -> None:
    """Chat in the terminal: rooms, live messages, presence, typing. /help lists commands.

    Logs in with the store's device, or asks for a user name and password (with
    --register, creates the account). Plain lines are sent to the current room. Ends with
    /quit, Ctrl-D or Ctrl-C (exit 0), or when the device is signed out (exit 3).
    """
    store = _load_store(store_path)
    url = url or store.url
    if url is None:
        raise click.UsageError("no node yet: give --url ws://host:port")

    async def ask(text: str, *, hide: bool = False, default: str | None = None) -> str:
        def prompt() -> str:
            value: str = click.prompt(
                text, hide_input=hide, default=default, confirmation_prompt=hide and new_account
            )
            return value

        return await trio.to_thread.run_sync(prompt)

    async def main() -> bool:
        async with connect(url, store=store) as session:
            if new_account or not session.logged_in:
                username = await ask("User name", default=_username_default(store))
                password = await ask("Password", hide=True)
                if new_account:
                    await session.register(
                        username,
                        password,
                        registration_token=registration_token,
                        device_name=device_name,
                    )
                else:
                    await session.login(username, password, device_name=device_name)
            click.echo(f"signed in as {session.user_id} on {session.url}")
            await run_chat(session)
            return session.logged_in

    try:
        still_logged_in = _run(main)
    except KeyboardInterrupt:
        click.echo()
        return
    if not still_logged_in:
        raise NotLoggedInError("this device was signed out")


CLIENT_COMMANDS = (chat, login, register, logout, send, tail)
"""The commands ``node.cli`` adds to ``kith``."""
