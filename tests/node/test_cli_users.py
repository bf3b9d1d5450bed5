"""``kith user add|list|passwd|deactivate`` on a real database in a temporary data folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from click.testing import CliRunner, Result

from node.app import DATABASE_FILE_NAME
from node.cli import cli
from node.config import CONFIG_FILE_NAME, load_config
from node.services.accounts import Accounts
from node.storage.db import Database
from protocol import ProtocolError
from tests.node.session_client import client, node_config, signed_out, start_node
from tests.node.wsclient import TIMEOUT

PASSWORD = "correct horse battery"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data folder whose kith.toml asks for cheap password hashes."""
    folder = tmp_path / "kith-data"
    folder.mkdir()
    (folder / CONFIG_FILE_NAME).write_text('[passwords]\ncost = "min"\n')
    return folder


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password.txt"
    path.write_text(PASSWORD + "\n")
    return path


def _kith(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="kith", input=input)


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    return line


def _check_password(data: Path, name: str, password: str) -> str:
    """``check_password`` against the folder's database: the user id, or the error code."""

    async def check() -> str:
        config = load_config(data)
        db = await Database.open(data / DATABASE_FILE_NAME)
        try:
            accounts = Accounts(db, config.server_name, password_cost=config.password_cost)
            return await accounts.check_password(name, password)
        except ProtocolError as exc:
            return exc.code.value
        finally:
            await db.aclose()

    return trio.run(check)


def _add(data: Path, password_file: Path, name: str, *more: str) -> Result:
    return _kith(
        "user", "add", name, "--data", str(data), "--password-file", str(password_file), *more
    )


# --- add ------------------------------------------------------------------------------------


def test_add_with_a_password_file_creates_a_user_who_can_log_in(
    data: Path, password_file: Path
) -> None:
    result = _add(data, password_file, "alice")
    assert result.exit_code == 0, result.output
    assert result.output == "Created user @alice:localhost\n"
    assert _check_password(data, "alice", PASSWORD) == "@alice:localhost"


def test_add_asks_for_the_password_twice_without_showing_it(data: Path) -> None:
    result = _kith("user", "add", "bob", "--data", str(data), input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert "Repeat for confirmation" in result.output
    assert _check_password(data, "bob", PASSWORD) == "@bob:localhost"


def test_add_with_two_different_passwords_asks_again(data: Path) -> None:
    answers = f"{PASSWORD}\nsomething else\n{PASSWORD}\n{PASSWORD}\n"
    result = _kith("user", "add", "bob", "--data", str(data), input=answers)
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    assert _check_password(data, "bob", PASSWORD) == "@bob:localhost"


def test_add_uses_the_server_name_of_kith_toml(data: Path, password_file: Path) -> None:
    (data / CONFIG_FILE_NAME).write_text(
        '[server]\nname = "chat.example"\n[passwords]\ncost = "min"\n'
    )
    result = _add(data, password_file, "alice", "--admin")
    assert result.output == "Created administrator @alice:chat.example\n"


def test_adding_a_taken_name_fails(data: Path, password_file: Path) -> None:
    assert _add(data, password_file, "alice").exit_code == 0
    assert "@alice:localhost is taken" in _one_error_line(_add(data, password_file, "alice"))


@pytest.mark.parametrize("name", ["Alice", "al ice", "x" * 65, ""])
def test_add_refuses_a_bad_name_before_asking_for_a_password(data: Path, name: str) -> None:
    result = _kith("user", "add", name, "--data", str(data))
    assert "is not a valid user name" in _one_error_line(result)
    assert "Password" not in result.output


@pytest.mark.parametrize("password", ["short", "x" * 1025])
def test_add_refuses_a_password_of_the_wrong_length(
    data: Path, tmp_path: Path, password: str
) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(password)
    line = _one_error_line(_add(data, path, "alice"))
    assert "a password has 8-1,024 characters" in line


def test_password_file_keeps_everything_but_its_last_line_ending(
    data: Path, tmp_path: Path
) -> None:
    path = tmp_path / "spaces.txt"
    path.write_text("  spaced out  \r\n")
    assert _add(data, path, "alice").exit_code == 0
    assert _check_password(data, "alice", "  spaced out  ") == "@alice:localhost"


def test_missing_data_folder_is_an_error_not_a_new_database(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    result = _kith("user", "list", "--data", str(missing))
    assert "does not exist" in _one_error_line(result)
    assert not missing.exists()


def test_bad_kith_toml_is_one_error_line(data: Path) -> None:
    (data / CONFIG_FILE_NAME).write_text("[passwords]\ncost = 'cheap'\n")
    assert "[passwords] cost" in _one_error_line(_kith("user", "list", "--data", str(data)))


def test_users_of_another_server_name_are_detected(data: Path, password_file: Path) -> None:
    assert _add(data, password_file, "alice").exit_code == 0
    (data / CONFIG_FILE_NAME).write_text('[server]\nname = "renamed.example"\n')
    line = _one_error_line(_kith("user", "list", "--data", str(data)))
    assert "@alice:localhost" in line
    assert "renamed.example" in line


# --- list -----------------------------------------------------------------------------------


def test_list_without_users_says_how_to_add_one(data: Path) -> None:
    result = _kith("user", "list", "--data", str(data))
    assert result.exit_code == 0
    assert "kith user add" in result.output


def test_list_shows_each_user_with_admin_status_and_devices(
    data: Path, password_file: Path
) -> None:
    _add(data, password_file, "bob")
    _add(data, password_file, "alice", "--admin")
    _kith("user", "deactivate", "bob", "--yes", "--data", str(data))
    result = _kith("user", "list", "--data", str(data))
    assert result.exit_code == 0
    header, alice, bob = result.output.splitlines()
    assert header.split() == ["USER", "ADMIN", "STATUS", "DEVICES", "CREATED"]
    assert alice.split()[:4] == ["@alice:localhost", "yes", "active", "0"]
    assert bob.split()[:4] == ["@bob:localhost", "no", "deactivated", "0"]
    assert alice.endswith("UTC")


# --- passwd ---------------------------------------------------------------------------------


def test_passwd_sets_a_new_password(data: Path, password_file: Path, tmp_path: Path) -> None:
    _add(data, password_file, "alice")
    new = tmp_path / "new.txt"
    new.write_text("a brand new password\n")
    result = _kith("user", "passwd", "alice", "--data", str(data), "--password-file", str(new))
    assert result.exit_code == 0, result.output
    assert result.output == "Changed the password of @alice:localhost\n"
    assert _check_password(data, "alice", PASSWORD) == "bad_credentials"
    assert _check_password(data, "alice", "a brand new password") == "@alice:localhost"


def test_passwd_can_revoke_every_device(data: Path, password_file: Path) -> None:
    _add(data, password_file, "alice")
    result = _kith(
        "user", "passwd", "alice", "--revoke-devices", "--data", str(data),
        "--password-file", str(password_file),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Revoked 0 device(s)" in result.output


def test_passwd_of_an_unknown_user_fails(data: Path, password_file: Path) -> None:
    result = _kith(
        "user", "passwd", "nobody", "--data", str(data), "--password-file", str(password_file)
    )
    assert "no user @nobody:localhost" in _one_error_line(result)


# --- deactivate -----------------------------------------------------------------------------


def test_deactivate_asks_for_confirmation_and_stops_login(data: Path, password_file: Path) -> None:
    _add(data, password_file, "alice")
    result = _kith("user", "deactivate", "alice", "--data", str(data), input="y\n")
    assert result.exit_code == 0, result.output
    assert "Deactivate @alice:localhost for good?" in result.output
    assert "Deactivated @alice:localhost; signed out 0 device(s)" in result.output
    assert _check_password(data, "alice", PASSWORD) == "user_deactivated"


def test_deactivate_answered_no_changes_nothing(data: Path, password_file: Path) -> None:
    _add(data, password_file, "alice")
    result = _kith("user", "deactivate", "alice", "--data", str(data), input="n\n")
    assert result.exit_code == 1
    assert "Aborted" in result.output
    assert _check_password(data, "alice", PASSWORD) == "@alice:localhost"


def test_deactivate_twice_says_so_and_succeeds(data: Path, password_file: Path) -> None:
    _add(data, password_file, "alice")
    assert _kith("user", "deactivate", "alice", "-y", "--data", str(data)).exit_code == 0
    again = _kith("user", "deactivate", "alice", "-y", "--data", str(data))
    assert again.exit_code == 0
    assert again.output == "@alice:localhost was already deactivated\n"


def test_deactivate_an_unknown_user_fails(data: Path) -> None:
    result = _kith("user", "deactivate", "nobody", "--yes", "--data", str(data))
    assert "no user @nobody:localhost" in _one_error_line(result)


# --- help -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["user", "--help"], ["add", "list", "passwd", "deactivate"]),
        (["user", "add", "--help"], ["NAME", "--admin", "--password-file", "--data"]),
        (["user", "list", "--help"], ["--data"]),
        (["user", "passwd", "--help"], ["NAME", "--password-file", "--revoke-devices", "--data"]),
        (["user", "deactivate", "--help"], ["NAME", "--yes", "--data", "no undo"]),
        (["--help"], ["user"]),
    ],
)
def test_help_documents_every_user_command_and_option(args: list[str], mentions: list[str]) -> None:
    result = _kith(*args)
    assert result.exit_code == 0
    for word in mentions:
        assert word in result.output


# --- beside a running node --------------------------------------------------------------------


async def test_deactivate_beside_a_running_node_signs_out_its_connections(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    config = node_config(tmp_path, session_check_interval_s=0.05)
    port = await start_node(nursery, config)
    (config.data_dir / CONFIG_FILE_NAME).write_text('[passwords]\ncost = "min"\n')
    with trio.fail_after(TIMEOUT):
        async with client(port) as alice:
            await alice.register("alice")
            # The command runs its own trio loop, so on a thread of its own, as beside a node.
            args = ("user", "deactivate", "alice", "--yes", "--data", str(config.data_dir))
            result = await trio.to_thread.run_sync(lambda: _kith(*args))
            assert result.exit_code == 0, result.output
            assert "signed out 1 device(s)" in result.output
            assert await alice.notice() == signed_out("user_deactivated")
        async with client(port) as again:
            assert await again.error("login", username="alice", password=PASSWORD) == (
                "user_deactivated"
            )
