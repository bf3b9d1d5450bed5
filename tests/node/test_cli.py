"""The ``kith`` command in-process: init, version, help, and errors without tracebacks."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from node.cli import cli
from node.keys import KEY_FILE_NAME, load_key


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner whose working directory is a fresh folder (for the ./kith-data default)."""
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def _run(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(cli, list(args), prog_name="kith")


def _init_output(result: Result) -> dict[str, str]:
    """``key id`` and ``public key`` from ``kith init``'s output."""
    fields = {}
    for line in result.output.splitlines():
        name, colon, value = line.partition(":")
        if colon and name in {"key id", "public key"}:
            fields[name] = value.strip()
    return fields


def test_version_prints_kith_and_the_protocol_version(runner: CliRunner) -> None:
    result = _run(runner, "--version")
    assert result.exit_code == 0
    assert result.output == "kith 0.1.0\n"


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["--help"], ["Commands:", "init", "serve", "--version"]),
        (["-h"], ["Commands:", "init", "serve", "--version"]),
        (["init", "--help"], ["--data", "kith-data", "signing.key"]),
        (["serve", "--help"], ["--host", "--port", "--data", "--log-level", "127.0.0.1", "7447"]),
    ],
)
def test_help_documents_every_option(
    runner: CliRunner, args: list[str], mentions: list[str]
) -> None:
    result = _run(runner, *args)
    assert result.exit_code == 0
    for word in mentions:
        assert word in result.output


def test_init_creates_an_owner_only_key_and_prints_its_id_and_public_key(
    runner: CliRunner, tmp_path: Path
) -> None:
    result = _run(runner, "init", "--data", "node-a")
    assert result.exit_code == 0, result.output
    path = tmp_path / "node-a" / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = load_key(path)
    assert _init_output(result) == {"key id": key.key_id, "public key": key.public_key}


def test_init_defaults_to_kith_data_in_the_working_directory(
    runner: CliRunner, tmp_path: Path
) -> None:
    result = _run(runner, "init")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "kith-data" / KEY_FILE_NAME).is_file()


def test_init_twice_keeps_the_same_key(runner: CliRunner, tmp_path: Path) -> None:
    first = _run(runner, "init")
    content = (tmp_path / "kith-data" / KEY_FILE_NAME).read_bytes()
    second = _run(runner, "init")
    assert second.exit_code == 0
    assert _init_output(second) == _init_output(first)
    assert (tmp_path / "kith-data" / KEY_FILE_NAME).read_bytes() == content
    assert "Kept existing" in second.output


def _corrupt_key(data: Path) -> None:
    data.mkdir()
    (data / KEY_FILE_NAME).write_text("ed25519 kdeadbeef not-base64!\n")


@pytest.mark.parametrize("command", [["init"], ["serve"], []])
def test_corrupt_key_file_fails_with_one_line_and_exit_code_1(
    runner: CliRunner, tmp_path: Path, command: list[str]
) -> None:
    _corrupt_key(tmp_path / "kith-data")
    result = _run(runner, *command)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert "signing.key is corrupt: the seed is not valid base64" in line


def test_serve_on_a_taken_port_fails_with_one_line_and_exit_code_1(runner: CliRunner) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # No command name: the group's default job is `serve`.
        result = _run(runner, "--port", str(port), "--data", "node-a")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"Error: cannot listen on 127.0.0.1:{port}" in result.output


def test_serve_refuses_a_port_out_of_range(runner: CliRunner) -> None:
    result = _run(runner, "serve", "--port", "70000")
    assert result.exit_code == 2
    assert "70000" in result.output


def test_unknown_command_is_an_error_not_a_serve(runner: CliRunner) -> None:
    result = _run(runner, "sevre")
    assert result.exit_code == 2
    assert "No such command" in result.output
