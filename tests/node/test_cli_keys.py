"""``kith key show|rotate`` in-process, on a temporary data folder, with a fixed clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from node.cli import cli
from node.config import CONFIG_FILE_NAME
from node.keys import KEY_FILE_NAME, apply_pending_rotation, load_keyring, load_or_create_key
from protocol import encode_canonical_json
from protocol.federation.keys import parse_key_object, pin

NOW = 1_767_225_600_000


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("node.cli_keys._now_ms", lambda: NOW)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data folder with a key, for a node named b.example."""
    folder = tmp_path / "kith-data"
    load_or_create_key(folder)
    (folder / CONFIG_FILE_NAME).write_text('[server]\nname = "b.example"\n')
    return folder


def _kith(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="kith")


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    return line


def test_show_prints_the_key_object_as_one_line_of_canonical_json(data: Path) -> None:
    result = _kith("key", "show", "--data", str(data))
    assert result.exit_code == 0, result.output
    (line,) = result.output.splitlines()
    obj = json.loads(line)
    assert encode_canonical_json(obj).decode() == line
    keys = parse_key_object(obj)
    ring = load_keyring(data / KEY_FILE_NAME)
    assert (keys.server_name, keys.ts) == ("b.example", NOW)
    assert set(keys.verify_keys) == {ring.current.key_id}
    assert dict(keys.old_verify_keys) == {}


def test_rotate_prepares_a_key_for_the_next_start_and_says_so(data: Path) -> None:
    before = load_keyring(data / KEY_FILE_NAME)
    result = _kith("key", "rotate", "--data", str(data))
    assert result.exit_code == 0, result.output
    after = load_keyring(data / KEY_FILE_NAME)
    assert after.current == before.current  # a running node's key stays valid
    assert after.old == ()
    assert after.next is not None
    assert f"New key id:     {after.next.key_id}" in result.output
    assert f"Current key id: {before.current.key_id} (retired when the node next starts)" in (
        result.output
    )
    assert "restart" in result.output
    again = _kith("key", "rotate", "--data", str(data))
    assert "already waits for the node to start" in _one_error_line(again)


def test_after_rotations_show_lists_the_old_keys_and_a_peer_accepts_the_new_object(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = parse_key_object(json.loads(_kith("key", "show", "--data", str(data)).output))
    for n in (1, 2):
        assert _kith("key", "rotate", "--data", str(data)).exit_code == 0
        apply_pending_rotation(data, NOW + n)  # what the node does when it starts
    monkeypatch.setattr("node.cli_keys._now_ms", lambda: NOW + 3)
    latest = parse_key_object(json.loads(_kith("key", "show", "--data", str(data)).output))
    assert len(latest.old_verify_keys) == 2
    assert latest.old_verify_keys[next(iter(first.verify_keys))][1] == NOW + 1
    assert pin(first, latest) is latest


def test_show_without_a_kith_toml_names_the_node_localhost(tmp_path: Path) -> None:
    load_or_create_key(tmp_path)
    result = _kith("key", "show", "--data", str(tmp_path))
    assert json.loads(result.output)["server_name"] == "localhost"


@pytest.mark.parametrize("command", ["show", "rotate"])
def test_a_missing_data_folder_says_how_to_create_it(tmp_path: Path, command: str) -> None:
    line = _one_error_line(_kith("key", command, "--data", str(tmp_path / "nope")))
    assert "does not exist (create it with: kith init" in line


@pytest.mark.parametrize("command", ["show", "rotate"])
def test_a_folder_without_a_key_says_how_to_create_one(tmp_path: Path, command: str) -> None:
    line = _one_error_line(_kith("key", command, "--data", str(tmp_path)))
    assert "no signing key in" in line
    assert not (tmp_path / KEY_FILE_NAME).exists()


@pytest.mark.parametrize("command", ["show", "rotate"])
def test_a_corrupt_key_file_fails_with_one_line(data: Path, command: str) -> None:
    (data / KEY_FILE_NAME).write_text("ed25519 kdeadbeef not-base64!\n")
    line = _one_error_line(_kith("key", command, "--data", str(data)))
    assert "signing.key is corrupt: the seed is not valid base64" in line
    assert (data / KEY_FILE_NAME).read_text() == "ed25519 kdeadbeef not-base64!\n"


def test_show_with_a_bad_setting_fails_with_one_line(data: Path) -> None:
    (data / CONFIG_FILE_NAME).write_text('[server]\nname = "Not A Name"\n')
    line = _one_error_line(_kith("key", "show", "--data", str(data)))
    assert "server" in line


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["--help"], ["key"]),
        (["key", "--help"], ["show", "rotate"]),
        (["key", "show", "--help"], ["--data", "kith-data", "canonical JSON"]),
        (["key", "rotate", "--help"], ["--data", "signing.key", "restart"]),
    ],
)
def test_help_documents_the_key_commands(args: list[str], mentions: list[str]) -> None:
    result = _kith(*args)
    assert result.exit_code == 0
    for word in mentions:
        assert word in result.output
