"""The node's signing key file: created once, atomically, never overwritten, strictly read."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import node.keys
from node.keys import (
    KEY_FILE_NAME,
    KeyFileError,
    NodeKey,
    generate_key,
    load_key,
    load_or_create_key,
    parse_key_file,
)
from protocol import decode_verify_key, derive_key_id, encode_base64, signing_key_from_seed

_KEY_LINE = re.compile(r"ed25519 k[0-9a-f]{8} [A-Za-z0-9+/]{43}\n")


def _key_line(seed: bytes) -> str:
    key_id = derive_key_id(signing_key_from_seed(seed).verify_key)
    return f"ed25519 {key_id} {encode_base64(seed)}\n"


def test_first_use_creates_the_folder_and_an_owner_only_key_file(tmp_path: Path) -> None:
    data = tmp_path / "nested" / "kith-data"
    key, created = load_or_create_key(data)
    assert created
    path = data / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _KEY_LINE.fullmatch(path.read_text("ascii"))
    assert path.read_text("ascii").split()[1] == key.key_id
    assert key.key_id == derive_key_id(key.verify_key)
    assert decode_verify_key(key.public_key) == key.verify_key


def test_second_use_loads_the_same_key_and_leaves_the_file_untouched(tmp_path: Path) -> None:
    first, _ = load_or_create_key(tmp_path)
    content = (tmp_path / KEY_FILE_NAME).read_bytes()
    second, created = load_or_create_key(tmp_path)
    assert not created
    assert second.key_id == first.key_id
    assert bytes(second.signing_key) == bytes(first.signing_key)
    assert (tmp_path / KEY_FILE_NAME).read_bytes() == content


def test_creation_leaves_no_temporary_file_behind(tmp_path: Path) -> None:
    load_or_create_key(tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == [KEY_FILE_NAME]


def test_a_key_written_concurrently_by_another_process_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = _key_line(bytes(range(32)))

    def generate_after_the_other_process() -> tuple[NodeKey, str]:
        (tmp_path / KEY_FILE_NAME).write_text(other, "ascii")
        return generate_key()

    monkeypatch.setattr(node.keys, "generate_key", generate_after_the_other_process)
    key, created = load_or_create_key(tmp_path)
    assert not created
    assert (tmp_path / KEY_FILE_NAME).read_text("ascii") == other
    assert key.key_id == other.split()[1]


def test_two_fresh_keys_differ() -> None:
    (first, _), (second, _) = generate_key(), generate_key()
    assert first.key_id != second.key_id


def test_repr_never_shows_the_seed(tmp_path: Path) -> None:
    key, _ = load_or_create_key(tmp_path)
    seed = (tmp_path / KEY_FILE_NAME).read_text("ascii").split()[2]
    assert seed not in repr(key)
    assert key.key_id in repr(key)


def test_key_file_without_final_newline_loads() -> None:
    line = _key_line(b"\x01" * 32)
    assert parse_key_file(line.rstrip("\n")).key_id == line.split()[1]


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("", "expected one line"),
        ("\n", "expected one line"),
        ("ed25519 kabc\n", "expected one line"),
        (_key_line(b"\x01" * 32) + "more\n", "expected one line"),
        (_key_line(b"\x01" * 32).replace(" ", "  ", 1), "expected one line"),
        (_key_line(b"\x01" * 32).replace("ed25519", "rsa"), "unsupported key algorithm"),
        (_key_line(b"\x01" * 32)[:-2] + "!\n", "not valid base64"),
        (_key_line(b"\x01" * 32).rstrip("\n") + "=\n", "not valid base64"),
        (f"ed25519 k00000000 {encode_base64(b'short')}\n", "the seed is 5 bytes"),
        ("ed25519 k00000000 " + encode_base64(bytes(32)) + "\n", "does not match the seed"),
    ],
)
def test_corrupt_key_file_is_refused_with_a_reason(content: str, complaint: str) -> None:
    with pytest.raises(KeyFileError, match=complaint):
        parse_key_file(content)


@given(st.text(max_size=120))
def test_any_key_file_text_loads_or_raises_key_file_error(text: str) -> None:
    try:
        key = parse_key_file(text)
    except KeyFileError as exc:
        assert "\n" not in str(exc)
    else:
        assert key.key_id == derive_key_id(key.verify_key)


def test_binary_key_file_is_reported_as_corrupt(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE_NAME).write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(KeyFileError, match="is corrupt: not ASCII text"):
        load_or_create_key(tmp_path)


def test_huge_key_file_is_reported_as_corrupt(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE_NAME).write_bytes(b"a" * 100_000)
    with pytest.raises(KeyFileError, match="is corrupt: too large"):
        load_key(tmp_path / KEY_FILE_NAME)


def test_unreadable_key_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE_NAME).mkdir()
    with pytest.raises(KeyFileError, match="cannot read key file"):
        load_or_create_key(tmp_path)


def test_data_folder_that_is_a_file_is_reported(tmp_path: Path) -> None:
    data = tmp_path / "kith-data"
    data.write_text("not a folder")
    with pytest.raises(KeyFileError, match="exists and is not a folder"):
        load_or_create_key(data)
