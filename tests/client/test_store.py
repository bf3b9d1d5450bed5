"""The client's store file: round trips, mode 0600, atomic replacement, refusal of files it
did not write, and no token in a ``repr``."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.store import Store, StoreError, write_atomically

TOKEN = "t0ken-that-must-stay-secret-aaaaaaaaaaaaaaaaa"


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that would leave new files world-readable, to prove the store overrides it."""
    old = os.umask(0)
    yield
    os.umask(old)


def _logged_in(path: Path | None) -> Store:
    store = Store(path)
    store.remember_login("ws://127.0.0.1:7447", "@alice:localhost", "DEVICE0001", TOKEN)
    store.cursor = 42
    return store


def test_a_missing_file_is_an_empty_store(tmp_path: Path) -> None:
    store = Store.load(tmp_path / "none.json")
    assert not store.logged_in
    assert (store.url, store.user_id, store.cursor) == (None, None, None)
    assert not (tmp_path / "none.json").exists()  # nothing is written until saved


def test_a_saved_store_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "alice.json"
    _logged_in(path).save()
    loaded = Store.load(path)
    assert loaded == _logged_in(path)
    assert loaded.logged_in
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


@pytest.mark.usefixtures("open_umask")
def test_the_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "alice.json"
    _logged_in(path).save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)  # even a file someone loosened is written back tight
    _logged_in(path).save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_failed_write_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "alice.json"
    _logged_in(path).save()
    before = path.read_bytes()

    def broken_rename(source: str, target: object) -> None:
        raise OSError("disk pulled out")

    monkeypatch.setattr(os, "replace", broken_rename)
    store = _logged_in(path)
    store.cursor = 99
    with pytest.raises(OSError, match="disk pulled out"):
        store.save()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["alice.json"]  # no temporary file left behind


def test_writes_replace_the_file_in_one_step(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    write_atomically(path, b"old")
    inode = path.stat().st_ino
    write_atomically(path, b"new")
    assert path.read_bytes() == b"new"
    assert path.stat().st_ino != inode  # a new file renamed over, never rewritten in place
    assert os.listdir(tmp_path) == ["f.json"]


@pytest.mark.parametrize(
    "contents",
    [
        "not json",
        "[]",
        '{"format": 2}',
        '{"format": 1, "cursor": "7"}',
        '{"format": 1, "cursor": -1}',
        '{"format": 1, "access_token": 5}',
    ],
)
def test_a_file_the_store_did_not_write_is_refused(tmp_path: Path, contents: str) -> None:
    path = tmp_path / "odd.json"
    path.write_text(contents)
    with pytest.raises(StoreError, match=r"odd\.json"):
        Store.load(path)


def test_the_token_is_never_in_a_repr(tmp_path: Path) -> None:
    store = _logged_in(tmp_path / "a.json")
    assert TOKEN not in repr(store)
    assert TOKEN not in str(store)
    assert TOKEN in json.loads(store.dumps())["access_token"]


def test_a_new_login_keeps_the_cursor_only_for_the_same_device() -> None:
    store = _logged_in(None)
    store.remember_login("ws://127.0.0.1:7447", "@alice:localhost", "DEVICE0001", "new token")
    assert store.cursor == 42
    store.remember_login("ws://127.0.0.1:7447", "@alice:localhost", "DEVICE0002", "other")
    assert store.cursor is None


def test_forgetting_the_device_keeps_where_and_who() -> None:
    store = _logged_in(None)
    store.forget_device()
    assert not store.logged_in
    assert (store.access_token, store.device_id, store.cursor) == (None, None, None)
    assert (store.url, store.user_id) == ("ws://127.0.0.1:7447", "@alice:localhost")
    store.save()  # a store without a path keeps nothing, and says nothing
