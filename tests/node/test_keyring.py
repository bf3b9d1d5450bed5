"""The node's key ring: the multi-line key file, rotation, and the key object it signs.

A key is never lost: rotation replaces the file atomically under a lock, so a crash leaves
the old file or the new one, and concurrent rotations all take effect. The single-line file
of earlier versions loads unchanged.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from node.app import serve_node
from node.config import NodeConfig
from node.keys import (
    KEY_FILE_NAME,
    MAX_RETIRED_KEYS,
    KeyFileError,
    KeyRing,
    NodeKey,
    RetiredKey,
    apply_pending_rotation,
    load_key,
    load_keyring,
    load_or_create_key,
    load_or_create_keyring,
    parse_key_file,
    parse_keyring,
    prepare_rotation,
    rotate_key,
)
from protocol import derive_key_id, encode_base64, signing_key_from_seed
from protocol.canonical_json import MAX_SAFE_INTEGER
from protocol.federation.keys import MAX_OLD_KEYS, parse_key_object, pin

T0 = 1_767_225_600_000
SERVER = "a.example"


def _node_key(label: str) -> NodeKey:
    signing_key = signing_key_from_seed(hashlib.sha256(label.encode()).digest())
    return NodeKey(derive_key_id(signing_key.verify_key), signing_key)


def _seed(key: NodeKey) -> str:
    return encode_base64(bytes(key.signing_key))


def _current_line(key: NodeKey) -> str:
    return f"ed25519 {key.key_id} {_seed(key)}\n"


def _old_line(key: NodeKey, expired_ts: int) -> str:
    return f"ed25519-old {key.key_id} {_seed(key)} {expired_ts}\n"


A, B, C = _node_key("A"), _node_key("B"), _node_key("C")


# --- the file format ------------------------------------------------------------------------


def test_a_single_line_file_of_earlier_versions_is_a_ring_without_retired_keys() -> None:
    ring = parse_keyring(_current_line(A))
    assert ring == KeyRing(A)
    assert parse_key_file(_current_line(A)) == A


def test_retired_keys_load_with_their_seeds_and_times() -> None:
    ring = parse_keyring(_current_line(C) + _old_line(B, T0) + _old_line(A, T0 - 1))
    assert ring.current == C
    assert ring.old == (RetiredKey(B, T0), RetiredKey(A, T0 - 1))
    assert parse_key_file(ring.file_text()) == C


def test_the_current_line_may_come_anywhere() -> None:
    ring = parse_keyring(_old_line(A, 0) + _current_line(B))
    assert (ring.current, ring.old) == (B, (RetiredKey(A, 0),))


def test_a_ring_written_and_read_back_is_the_same_ring() -> None:
    ring = KeyRing(C, (RetiredKey(B, T0), RetiredKey(A, 0)))
    assert parse_keyring(ring.file_text()) == ring
    assert ring.file_text().count("\n") == 3


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (_old_line(A, T0), "expected one current key .* found 0"),
        (_current_line(A) + _current_line(B), "expected one current key .* found 2"),
        (_current_line(A) + _old_line(A, T0), r"key .* is listed twice \(line 2\)"),
        (_current_line(A) + _old_line(B, T0) + _old_line(B, 1), r"listed twice \(line 3\)"),
        (_current_line(A) + "\n" + _old_line(B, T0), r"expected one line per key: .* \(line 2\)"),
        (_current_line(A) + _old_line(B, T0).replace(f" {T0}", ""), "line 2"),
        (_current_line(A).replace("\n", f" {T0}\n"), "expected one line per key"),
        (_current_line(A) + "rsa-old x y 1\n", r"unsupported key algorithm 'rsa-old' \(line 2\)"),
        (_current_line(A) + _old_line(B, T0).replace(str(T0), "0" + str(T0)), "expired_ts"),
        (_current_line(A) + _old_line(B, T0).replace(str(T0), "-1"), "expired_ts"),
        (_current_line(A) + _old_line(B, T0).replace(str(T0), "soon"), "expired_ts"),
        (_current_line(A) + _old_line(B, MAX_SAFE_INTEGER + 1), "expired_ts"),
        (_current_line(A) + _old_line(B, T0).replace("ed25519-old k", "ed25519-old x"), "match"),
        (_current_line(A).replace("\n", "\r\n"), "expected one line per key"),
    ],
)
def test_a_corrupt_key_ring_is_refused_with_a_reason(content: str, complaint: str) -> None:
    with pytest.raises(KeyFileError, match=complaint):
        parse_keyring(content)


@given(st.lists(st.text(max_size=60), max_size=4).map("\n".join))
def test_any_key_ring_text_loads_or_raises_one_line(text: str) -> None:
    try:
        ring = parse_keyring(text)
    except KeyFileError as exc:
        assert "\n" not in str(exc)
    else:
        assert all(key.key_id == derive_key_id(key.verify_key) for key in ring.all_keys())


def test_a_full_key_file_fits_the_size_limit(tmp_path: Path) -> None:
    old = tuple(RetiredKey(_node_key(str(n)), T0 - n) for n in range(MAX_RETIRED_KEYS))
    (tmp_path / KEY_FILE_NAME).write_text(KeyRing(A, old).file_text(), "ascii")
    assert len(load_keyring(tmp_path / KEY_FILE_NAME).old) == MAX_RETIRED_KEYS


def test_more_retired_keys_than_the_most_kept_is_corrupt() -> None:
    old = tuple(RetiredKey(_node_key(str(n)), T0) for n in range(MAX_RETIRED_KEYS + 1))
    with pytest.raises(KeyFileError, match="retired keys"):
        parse_keyring(KeyRing(A, old).file_text())


# --- rotation -------------------------------------------------------------------------------


def test_rotation_retires_the_current_key_with_its_seed_and_time(tmp_path: Path) -> None:
    first, _ = load_or_create_key(tmp_path)
    ring = rotate_key(tmp_path, T0)
    assert ring.current != first
    assert ring.old == (RetiredKey(first, T0),)
    assert load_keyring(tmp_path / KEY_FILE_NAME) == ring
    assert load_or_create_key(tmp_path) == (ring.current, False)
    assert load_key(tmp_path / KEY_FILE_NAME) == ring.current


def test_rotations_keep_every_key_newest_first(tmp_path: Path) -> None:
    ring, created = load_or_create_keyring(tmp_path)
    assert created
    assert ring.old == ()
    keys = [ring.current]
    for n in range(1, 4):
        ring = rotate_key(tmp_path, T0 + n)
        keys.append(ring.current)
    assert [r.key for r in ring.old] == keys[2::-1]
    assert [r.expired_ts for r in ring.old] == [T0 + 3, T0 + 2, T0 + 1]


def test_the_rotated_key_file_is_owner_only_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    load_or_create_key(tmp_path)
    rotate_key(tmp_path, T0)
    assert stat.S_IMODE((tmp_path / KEY_FILE_NAME).stat().st_mode) == 0o600
    assert [path.name for path in tmp_path.iterdir()] == [KEY_FILE_NAME]


def test_a_rotation_that_fails_to_replace_the_file_leaves_it_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_or_create_key(tmp_path)
    before = (tmp_path / KEY_FILE_NAME).read_bytes()

    def disk_full(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("node.keys.os.replace", disk_full)
    with pytest.raises(KeyFileError, match=r"cannot rotate key file .*No space left"):
        rotate_key(tmp_path, T0)
    assert (tmp_path / KEY_FILE_NAME).read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == [KEY_FILE_NAME]


def test_concurrent_rotations_all_take_effect(tmp_path: Path) -> None:
    first, _ = load_or_create_key(tmp_path)
    made: list[NodeKey] = []
    lock = threading.Lock()

    def rotate_three_times(worker: int) -> None:
        for n in range(3):
            ring = rotate_key(tmp_path, T0 + worker * 10 + n)
            with lock:
                made.append(ring.current)

    threads = [threading.Thread(target=rotate_three_times, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ring = load_keyring(tmp_path / KEY_FILE_NAME)
    assert len(ring.old) == 18
    assert {key.key_id for key in ring.all_keys()} == {first.key_id} | {k.key_id for k in made}


def test_rotating_without_a_key_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"no key file .* kith init"):
        rotate_key(tmp_path, T0)
    with pytest.raises(KeyFileError, match="no key file"):
        rotate_key(tmp_path / "missing", T0)


def test_rotating_a_corrupt_key_file_refuses_and_keeps_it(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE_NAME).write_text("ed25519 kdeadbeef not-base64!\n")
    with pytest.raises(KeyFileError, match="is corrupt"):
        rotate_key(tmp_path, T0)
    assert (tmp_path / KEY_FILE_NAME).read_text() == "ed25519 kdeadbeef not-base64!\n"


def test_a_full_ring_refuses_another_rotation() -> None:
    old = tuple(RetiredKey(_node_key(str(n)), T0) for n in range(MAX_RETIRED_KEYS))
    with pytest.raises(KeyFileError, match=f"{MAX_RETIRED_KEYS} retired keys"):
        KeyRing(A, old).rotated(B, T0)


def test_a_new_key_must_be_new() -> None:
    with pytest.raises(KeyFileError, match="already in use"):
        KeyRing(A, (RetiredKey(B, 0),)).rotated(B, T0)


@pytest.mark.parametrize("now_ms", [-1, MAX_SAFE_INTEGER + 1])
def test_a_rotation_time_must_be_a_time(now_ms: int) -> None:
    with pytest.raises(ValueError, match="not a time"):
        KeyRing(A).rotated(B, now_ms)


# --- the key object -------------------------------------------------------------------------


def test_the_key_object_lists_retired_keys_and_is_signed_by_all(tmp_path: Path) -> None:
    load_or_create_key(tmp_path)
    rotate_key(tmp_path, T0 - 2)
    ring = rotate_key(tmp_path, T0 - 1)
    keys = parse_key_object(ring.key_object(SERVER, T0))
    assert set(keys.verify_keys) == {ring.current.key_id}
    assert {k: ts for k, (_, ts) in keys.old_verify_keys.items()} == {
        r.key.key_id: r.expired_ts for r in ring.old
    }
    assert keys.signed_by == {key.key_id for key in ring.all_keys()}


def test_a_peer_that_missed_every_rotation_follows_the_chain(tmp_path: Path) -> None:
    ring, _ = load_or_create_keyring(tmp_path)
    first_pin = parse_key_object(ring.key_object(SERVER, T0))
    for n in range(1, 4):
        ring = rotate_key(tmp_path, T0 + n)
    latest = parse_key_object(ring.key_object(SERVER, T0 + 10))
    assert pin(first_pin, latest) is latest


def test_every_retired_key_is_listed_and_co_signs() -> None:
    """An event signed with any retired key must stay verifiable (§1.3), so the key
    object lists them all — as many as a key file may hold (§1.1 allows as many)."""
    assert MAX_RETIRED_KEYS <= MAX_OLD_KEYS
    ring = KeyRing(_node_key("first"))
    first_pin = parse_key_object(ring.key_object(SERVER, T0))
    for n in range(40):
        ring = ring.rotated(_node_key(f"rotation {n}"), T0 + n)
    obj = ring.key_object(SERVER, T0 + 1000)
    keys = parse_key_object(obj)
    assert len(keys.old_verify_keys) == 40
    assert min(ts for _, ts in keys.old_verify_keys.values()) == T0
    assert len(obj["signatures"][SERVER]) == 1 + 40
    assert pin(first_pin, keys) is keys


def test_a_fresh_folder_gets_an_owner_only_single_line_file(tmp_path: Path) -> None:
    ring, created = load_or_create_keyring(tmp_path / "new")
    path = tmp_path / "new" / KEY_FILE_NAME
    assert created
    assert path.read_text("ascii") == _current_line(ring.current)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path / "new") == [KEY_FILE_NAME]


# --- rotation prepared for the next start (kith key rotate) ---------------------------------


def test_a_prepared_key_waits_in_the_file_and_is_taken_at_the_next_start(tmp_path: Path) -> None:
    first, _ = load_or_create_key(tmp_path)
    prepared = prepare_rotation(tmp_path)
    assert (prepared.current, prepared.old) == (first, ())
    assert prepared.next is not None
    assert "ed25519-next " in (tmp_path / KEY_FILE_NAME).read_text()
    assert load_keyring(tmp_path / KEY_FILE_NAME) == prepared
    # Key objects made meanwhile still name only the current key: it stays valid.
    keys = parse_key_object(prepared.key_object(SERVER, T0))
    assert set(keys.verify_keys) == {first.key_id}
    assert keys.old_verify_keys == {}
    started = apply_pending_rotation(tmp_path, T0)
    assert started.current == prepared.next
    assert started.old == (RetiredKey(first, T0),)
    assert started.next is None
    assert load_keyring(tmp_path / KEY_FILE_NAME) == started
    assert apply_pending_rotation(tmp_path, T0 + 1) == started  # nothing waits: no change


def test_only_one_key_may_wait(tmp_path: Path) -> None:
    load_or_create_key(tmp_path)
    prepare_rotation(tmp_path)
    with pytest.raises(KeyFileError, match="already waits"):
        prepare_rotation(tmp_path)
    text = (tmp_path / KEY_FILE_NAME).read_text()
    extra = text + text.splitlines()[1].replace(text.splitlines()[1].split()[1], "x") + "\n"
    with pytest.raises(KeyFileError):
        parse_keyring(extra)


def test_an_immediate_rotation_takes_the_waiting_key(tmp_path: Path) -> None:
    load_or_create_key(tmp_path)
    prepared = prepare_rotation(tmp_path)
    assert rotate_key(tmp_path, T0).current == prepared.next


async def test_a_node_takes_the_waiting_key_when_it_starts(tmp_path: Path) -> None:
    config = NodeConfig(host="127.0.0.1", port=0, data_dir=tmp_path)
    with trio.fail_after(10):
        async with trio.open_nursery() as running:
            await running.start(serve_node, config)
            prepared = prepare_rotation(tmp_path)  # the running node keeps its key
            running.cancel_scope.cancel()
        assert load_keyring(tmp_path / KEY_FILE_NAME) == prepared
        async with trio.open_nursery() as again:
            await again.start(serve_node, config)
            ring = load_keyring(tmp_path / KEY_FILE_NAME)
            assert ring.current == prepared.next
            assert [r.key for r in ring.old] == [prepared.current]
            again.cancel_scope.cancel()
